"""Scenes and the three modification kinds of the CSS dataset, with its wording.

A scene is a set of objects on a 3x3 grid, at most one per cell. Object records use the original
file's keys: `size` (small/large), `color` (8 CLEVR colours), `shape` (cube/sphere/cylinder; the 2D
renderer draws them as rectangle/circle/triangle, the names the original files use) and `pos`
((y, x) of the cell centre, as fractions of the image).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

COLORS = ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
SHAPES = ("cube", "sphere", "cylinder")
SIZES = ("small", "large")
POSITIONS = ("top-left", "top-center", "top-right", "middle-left", "center", "middle-right",
             "bottom-left", "bottom-center", "bottom-right")
SHAPE_FROM_2D = {"rectangle": "cube", "circle": "sphere", "triangle": "cylinder"}
SHAPE_TO_2D = {v: k for k, v in SHAPE_FROM_2D.items()}
ADDED_SIZE = "small"  # "add red cube to top-left" names no size: added objects are always small


@dataclass(frozen=True, order=True)
class SceneObject:
    cell: int  # 0..8, row-major from top-left
    size: str
    color: str
    shape: str

    def to_record(self) -> dict:
        row, col = divmod(self.cell, 3)
        return {"size": self.size, "color": self.color, "shape": self.shape,
                "pos": ((row + 0.5) / 3, (col + 0.5) / 3)}

    @classmethod
    def from_record(cls, record: dict) -> SceneObject:
        y, x = record["pos"]
        row, col = min(2, max(0, int(float(y) * 3))), min(2, max(0, int(float(x) * 3)))
        shape = SHAPE_FROM_2D.get(record["shape"], record["shape"])
        return cls(row * 3 + col, record["size"], record["color"], shape)


Scene = frozenset  # of SceneObject; frozen so identical scenes compare (and hash) equal


def scene_key(scene: Scene) -> tuple:
    return tuple(sorted(scene))


def caption(scene: Scene) -> str:
    parts = [f"a {o.size} {o.color} {o.shape} at {POSITIONS[o.cell]}" for o in sorted(scene)]
    return ", ".join(parts) if parts else "an empty scene"


@dataclass(frozen=True)
class Modification:
    kind: str  # add | remove | change
    text: str
    target: Scene


def add_text(color: str, shape: str, cell: int) -> str:
    return f"add {color} {shape} to {POSITIONS[cell]}"


def remove_text(obj: SceneObject) -> str:
    return f"remove {POSITIONS[obj.cell]} {obj.color} object"


def change_text(obj: SceneObject, new_color: str) -> str:
    return f"make {POSITIONS[obj.cell]} {obj.color} object {new_color}"


class SceneSampler:
    """Random scenes and modifications, never using a held-out (color, shape) pair when `allowed` says no."""

    def __init__(self, rng: random.Random, held_out: frozenset = frozenset(), max_objects: int = 5):
        self.rng = rng
        self.held_out = held_out
        self.max_objects = max_objects

    def allowed(self, color: str, shape: str) -> bool:
        return (color, shape) not in self.held_out

    def random_object(self, cell: int) -> SceneObject:
        while True:
            color, shape = self.rng.choice(COLORS), self.rng.choice(SHAPES)
            if self.allowed(color, shape):
                return SceneObject(cell, self.rng.choice(SIZES), color, shape)

    def random_scene(self) -> Scene:
        count = self.rng.randint(1, self.max_objects - 1)
        return Scene(self.random_object(cell) for cell in self.rng.sample(range(9), count))

    def random_modification(self, scene: Scene) -> Modification:
        kinds = ["change"]
        if len(scene) < self.max_objects:
            kinds.append("add")
        if len(scene) > 1:
            kinds.append("remove")
        kind = self.rng.choice(kinds)
        return getattr(self, f"_{kind}")(scene)

    def _add(self, scene: Scene) -> Modification:
        free = [c for c in range(9) if c not in {o.cell for o in scene}]
        cell = self.rng.choice(free)
        obj = self.random_object(cell)
        obj = SceneObject(cell, ADDED_SIZE, obj.color, obj.shape)
        return Modification("add", add_text(obj.color, obj.shape, cell), Scene(scene | {obj}))

    def _remove(self, scene: Scene) -> Modification:
        obj = self.rng.choice(sorted(scene))
        return Modification("remove", remove_text(obj), Scene(scene - {obj}))

    def _change(self, scene: Scene) -> Modification:
        obj = self.rng.choice(sorted(scene))
        colors = [c for c in COLORS if c != obj.color and self.allowed(c, obj.shape)]
        new = SceneObject(obj.cell, obj.size, self.rng.choice(colors), obj.shape)
        return Modification("change", change_text(obj, new.color), Scene((scene - {obj}) | {new}))


def apply_text(scene: Scene, text: str) -> Scene:
    """Apply a modification given as text (used to check generated data: `to` = `from` + text)."""
    words = text.split()
    by_cell = {o.cell: o for o in scene}
    if words[0] == "add":  # add COLOR SHAPE to POS
        cell = POSITIONS.index(words[4])
        if cell in by_cell:
            raise ValueError(f"{text!r}: cell occupied")
        return Scene(scene | {SceneObject(cell, ADDED_SIZE, words[1], words[2])})
    if words[0] == "remove":  # remove POS COLOR object
        obj = by_cell[POSITIONS.index(words[1])]
        if obj.color != words[2]:
            raise ValueError(f"{text!r}: no {words[2]} object there")
        return Scene(scene - {obj})
    if words[0] == "make":  # make POS COLOR object NEWCOLOR
        obj = by_cell[POSITIONS.index(words[1])]
        if obj.color != words[2]:
            raise ValueError(f"{text!r}: no {words[2]} object there")
        return Scene((scene - {obj}) | {SceneObject(obj.cell, obj.size, words[4], obj.shape)})
    raise ValueError(f"unknown modification {text!r}")
