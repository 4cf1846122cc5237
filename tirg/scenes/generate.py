"""Build a CSS-format data set: scenes, modifications, labels, captions and rendered images.

Layout (as the original `CSSDataset/`):
    css_toy_dataset_novel2_small.dup.npy   pickled dict {"train": split, "test": split, ...}
    images/css_{split}_{%06d}.png
    captions.json                          {"css_{split}_{%06d}.png": caption}
A split holds `objects_img` (per image, a list of object records), `mods` (each {"from": [ids],
"to": [ids], "to_str": text}, where to[k] is from[k] with the text applied), `labels` (identical scenes
share a label) and `captions`.

Each split grows trees of scenes: a root is a random scene, and every scene gets up to
`children_per_scene` distinct random modifications whose results are new images, breadth first, until
the split has its image count. Every image but the roots is a query's target. The branching matters:
an image-only model can find a target by looking for the source's one-change neighbours (its children
and its parent). With 2 children per scene the image alone found it at R@1 15 by raw pixels and 36.7
for an ideal image-only model (scripts/probe_css_leak.py, 17k test images); with 15 (every tree of 16
a root and its 15 one-change variants) those fall to about 5 and 6.7, as the paper's image-only 6.3,
and the text is what picks the variant the query asks for.

In "train", a few (colour, shape) pairs never appear ("novel" in the name): the test split has them.
"""
from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tirg.scenes.render import RENDERERS
from tirg.scenes.scene import COLORS, SHAPES, Scene, SceneObject, SceneSampler, caption, scene_key

DATA_FILE = "css_toy_dataset_novel2_small.dup.npy"
CHILDREN_PER_SCENE = 15


@dataclass
class GeneratedSplit:
    scenes: list[Scene]
    edges: list[tuple[int, str, int]]  # (from image, modification text, to image)


def choose_held_out(seed: int, count: int = 3) -> frozenset:
    pairs = [(c, s) for c in COLORS for s in SHAPES]
    return frozenset(random.Random(seed).sample(pairs, count))


def grow_split(sampler: SceneSampler, images: int, roots: int,
               children_per_scene: int = CHILDREN_PER_SCENE) -> GeneratedSplit:
    """`roots` trees of about images/roots scenes each, grown breadth-first."""
    scenes: list[Scene] = []
    edges: list[tuple[int, str, int]] = []
    for tree in range(roots):
        tree_end = images * (tree + 1) // roots
        scenes.append(sampler.random_scene())
        queue = deque([len(scenes) - 1])
        while queue and len(scenes) < tree_end:
            parent = queue.popleft()
            for mod in _distinct_modifications(sampler, scenes[parent], children_per_scene):
                if len(scenes) >= tree_end:
                    break
                scenes.append(mod.target)
                edges.append((parent, mod.text, len(scenes) - 1))
                queue.append(len(scenes) - 1)
    return GeneratedSplit(scenes, edges)


def _distinct_modifications(sampler: SceneSampler, scene: Scene, count: int) -> list:
    mods: dict[str, object] = {}
    for _ in range(4 * count):
        mod = sampler.random_modification(scene)
        mods.setdefault(mod.text, mod)
        if len(mods) == count:
            break
    return list(mods.values())


def split_record(split: GeneratedSplit) -> dict:
    mods: dict[str, dict] = {}
    for source, text, target in split.edges:
        entry = mods.setdefault(text, {"from": [], "to": [], "to_str": text})
        entry["from"].append(source)
        entry["to"].append(target)
    label_of: dict[tuple, int] = {}
    labels = [label_of.setdefault(scene_key(scene), len(label_of)) for scene in split.scenes]
    return {"objects_img": [[obj.to_record() for obj in sorted(scene)] for scene in split.scenes],
            "mods": list(mods.values()), "labels": labels,
            "captions": [caption(scene) for scene in split.scenes]}


def _render_one(job: tuple) -> None:
    renderer, objects, size, seed, path = job
    scene = Scene(SceneObject.from_record(record) for record in objects)
    RENDERERS[renderer](scene, size, seed).save(path)


def generate(out: Path, *, train_images: int, test_images: int, renderer: str = "3d", image_size: int = 64,
             seed: int = 0, roots_fraction: float = 1 / 16, children_per_scene: int = CHILDREN_PER_SCENE,
             workers: int = 2, progress: Callable[[int], None] | None = None) -> dict:
    """Write the data set under `out`; returns the data dict. Same arguments, same files."""
    held_out = choose_held_out(seed)
    data: dict = {"renderer": renderer, "image_size": image_size, "seed": seed,
                  "children_per_scene": children_per_scene, "held_out": sorted(held_out)}
    for index, (split, count) in enumerate((("train", train_images), ("test", test_images))):
        sampler = SceneSampler(random.Random(seed * 1000 + index), held_out if split == "train" else frozenset())
        roots = max(1, int(count * roots_fraction)) if count else 0
        data[split] = split_record(grow_split(sampler, count, roots, children_per_scene))
    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    np.save(out / DATA_FILE, np.array(data, dtype=object), allow_pickle=True)  # as the original
    captions = {f"css_{split}_{i:06d}.png": text for split in ("train", "test")
                for i, text in enumerate(data[split]["captions"])}
    (out / "captions.json").write_text(json.dumps(captions, indent=0))
    _render_all(out, data, renderer, image_size, seed, workers, progress)
    return data


def _render_all(out, data, renderer, image_size, seed, workers, progress) -> None:
    jobs = []
    for split in ("train", "test"):
        for i, objects in enumerate(data[split]["objects_img"]):
            path = out / "images" / f"css_{split}_{i:06d}.png"
            image_seed = int(np.random.SeedSequence([seed, split == "test", i]).generate_state(1)[0])
            jobs.append((renderer, objects, image_size, image_seed, path))
    if workers <= 1:
        for job in jobs:
            _render_one(job)
            if progress:
                progress(1)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(_render_one, jobs, chunksize=64):
            if progress:
                progress(1)
