"""Two renderers for CSS scenes.

`render_2d`: flat shapes on white, 64x64 like TIRG's own 2D drawer (rectangle / circle / triangle).
`render_3d`: CLEVR-like shaded solids on a floor, seen in perspective from above-front, ray cast in
numpy with diffuse + specular light and cast shadows, supersampled 2x. Each image gets a small seeded
jitter of object placement, rotation and light, so two renders of one scene are alike but not
pixel-identical (as two photographs would be).
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from tirg.scenes.scene import Scene, SceneObject

RGB = {"gray": (87, 87, 87), "red": (173, 35, 35), "blue": (42, 75, 215), "green": (29, 105, 20),
       "brown": (129, 74, 25), "purple": (129, 38, 192), "cyan": (41, 208, 208), "yellow": (255, 238, 51)}
RGB_2D = {**RGB, "red": (244, 35, 35), "green": (29, 205, 20)}  # the 2D drawer's brighter values


def render_2d(scene: Scene, size: int = 64, supersample: int = 4) -> Image.Image:
    big = size * supersample
    image = Image.new("RGB", (big, big), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for obj in scene:
        row, col = divmod(obj.cell, 3)
        cy, cx = (row + 0.5) / 3 * big, (col + 0.5) / 3 * big
        s = big / 16 * (2 if obj.size == "large" else 1)
        box = [cx - s, cy - s, cx + s, cy + s]
        if obj.shape == "cube":
            draw.rectangle(box, fill=RGB_2D[obj.color])
        elif obj.shape == "sphere":
            draw.ellipse(box, fill=RGB_2D[obj.color])
        else:
            draw.polygon([(cx, cy - s), (cx - s, cy + s), (cx + s, cy + s)], fill=RGB_2D[obj.color])
    return image.resize((size, size), Image.Resampling.BOX)


# -- 3D ---------------------------------------------------------------------------------------------
CELL_SPACING = 1.6
RADIUS = {"small": 0.42, "large": 0.7}
CAMERA = np.array([0.0, 7.6, 5.4])
LOOK_AT = np.array([0.0, 0.0, 0.25])
FOV_DEG = 44.0
_FLOOR_RGB = np.array([0.78, 0.78, 0.76])


def _camera_rays(size: int) -> np.ndarray:
    forward = LOOK_AT - CAMERA
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    half = np.tan(np.radians(FOV_DEG) / 2)
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    u, v = np.meshgrid(coords * half, -coords * half)
    rays = forward[None, None] + u[..., None] * right + v[..., None] * up
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    return rays.reshape(-1, 3)


class _Solid:
    """One object placed in the world: centre on the floor, radius, rotation about the vertical."""

    def __init__(self, obj: SceneObject, rng: np.random.Generator):
        row, col = divmod(obj.cell, 3)
        jitter = rng.uniform(-0.12, 0.12, size=2)
        self.x = (col - 1) * CELL_SPACING + jitter[0]
        self.z = (row - 1) * CELL_SPACING + jitter[1]
        self.r = RADIUS[obj.size]
        self.shape = obj.shape
        self.angle = rng.uniform(0, np.pi / 2)
        self.color = np.array(RGB[obj.color]) / 255.0
        self.shiny = obj.shape == "sphere" or rng.random() < 0.3

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance along each ray to the first hit (inf where none) and the surface normal there."""
        local_o = origins - np.array([self.x, 0.0, self.z])
        if self.shape == "sphere":
            return _sphere(local_o - [0, self.r, 0], dirs, self.r)
        if self.shape == "cylinder":
            return _cylinder(local_o, dirs, self.r, 2 * self.r)
        c, s = np.cos(self.angle), np.sin(self.angle)
        rot = np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])
        t, n = _box(local_o @ rot.T - [0, self.r, 0], dirs @ rot.T, self.r)
        return t, n @ rot


def _sphere(o, d, r):
    b = np.einsum("ij,ij->i", o, d)
    c = np.einsum("ij,ij->i", o, o) - r * r
    disc = b * b - c
    t = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
    t = np.where(t > 1e-4, t, np.inf)
    normal = (o + t[:, None] * d) / r
    return t, normal


def _box(o, d, h):
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(d) < 1e-9, 1e-9, d)
        t1, t2 = (-h - o) * inv, (h - o) * inv
    tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
    near, far = tmin.max(axis=1), tmax.min(axis=1)
    t = np.where((far >= near) & (near > 1e-4), near, np.inf)
    axis = tmin.argmax(axis=1)
    normal = np.zeros_like(o)
    normal[np.arange(len(o)), axis] = -np.sign(d[np.arange(len(o)), axis])
    return t, normal


def _cylinder(o, d, r, height):
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = 2 * (o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2])
    c = o[:, 0] ** 2 + o[:, 2] ** 2 - r * r
    disc = b * b - 4 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
        y_side = o[:, 1] + t_side * d[:, 1]
        t_side = np.where((disc > 0) & (t_side > 1e-4) & (y_side >= 0) & (y_side <= height), t_side, np.inf)
        t_top = (height - o[:, 1]) / d[:, 1]
    p_top = o + t_top[:, None] * d
    on_top = (t_top > 1e-4) & (p_top[:, 0] ** 2 + p_top[:, 2] ** 2 <= r * r)
    t_top = np.where(on_top, t_top, np.inf)
    t = np.minimum(t_side, t_top)
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    side_normal = np.stack([p[:, 0] / r, np.zeros(len(p)), p[:, 2] / r], axis=1)
    normal = np.where((t_top <= t_side)[:, None], [0.0, 1.0, 0.0], side_normal)
    return t, normal


def render_3d(scene: Scene, size: int = 64, seed: int = 0, supersample: int = 2) -> Image.Image:
    rng = np.random.default_rng(seed)
    solids = [_Solid(obj, rng) for obj in sorted(scene)]
    light = np.array([rng.uniform(-0.6, -0.2), 1.0, rng.uniform(0.3, 0.7)])
    light /= np.linalg.norm(light)
    big = size * supersample
    dirs = _camera_rays(big)
    origins = np.broadcast_to(CAMERA, dirs.shape)

    depth = np.where(dirs[:, 1] < 0, -CAMERA[1] / np.minimum(dirs[:, 1], -1e-9), np.inf)
    normal = np.tile([0.0, 1.0, 0.0], (len(dirs), 1))
    albedo = np.tile(_FLOOR_RGB, (len(dirs), 1))
    shininess = np.zeros(len(dirs))
    for solid in solids:
        t, n = solid.intersect(origins, dirs)
        closer = t < depth
        depth = np.where(closer, t, depth)
        normal[closer], albedo[closer], shininess[closer] = n[closer], solid.color, 0.6 if solid.shiny else 0.15

    hit = np.isfinite(depth)
    points = origins + np.where(hit, depth, 0)[:, None] * dirs
    lit = np.ones(len(dirs))
    shadow_origins = points + normal * 1e-3
    for solid in solids:
        t, _ = solid.intersect(shadow_origins, np.broadcast_to(light, dirs.shape))
        lit = np.where(np.isfinite(t), np.minimum(lit, 0.35), lit)
    diffuse = np.clip(np.einsum("ij,j->i", normal, light), 0, 1) * lit
    half_vector = light[None] - dirs
    half_vector /= np.linalg.norm(half_vector, axis=1, keepdims=True)
    specular = shininess * np.clip(np.einsum("ij,ij->i", normal, half_vector), 0, 1) ** 40 * (lit > 0.5)
    color = albedo * (0.35 + 0.75 * diffuse[:, None]) + specular[:, None]
    color[~hit] = [0.85, 0.85, 0.85]
    pixels = (np.clip(color, 0, 1) * 255).astype(np.uint8).reshape(big, big, 3)
    return Image.fromarray(pixels).resize((size, size), Image.Resampling.BOX)


RENDERERS = {"2d": lambda scene, size, seed: render_2d(scene, size),
             "3d": lambda scene, size, seed: render_3d(scene, size, seed)}
