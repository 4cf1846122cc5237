import pickle
import random

import numpy as np

from tirg.data import DATA_FILE, CSSDataset
from tirg.scenes.render import render_2d
from tirg.scenes.scene import Scene, SceneObject


def test_the_loader_reads_the_generated_format(tiny_css):
    dataset = CSSDataset(tiny_css, "test", image_size=32)
    assert dataset.images.shape == (len(dataset), 3, 32, 32)
    assert len(dataset.queries) >= 0.8 * len(dataset)
    batch = dataset.sample_queries(8, random.Random(0))
    assert len(batch) == 8 and batch[0].source == batch[1].source and batch[0].text != batch[1].text


def test_the_loader_reads_a_file_in_the_original_layout(tmp_path):
    """As the original: a Python-2-era pickle (protocol 2, byte strings), 2D shape names, (y, x) float
    positions, no `labels` key (each image is its own label)."""
    objects = [[{"size": "large", "color": "red", "shape": "rectangle", "pos": (1 / 6, 1 / 6)}],
               [{"size": "large", "color": "red", "shape": "rectangle", "pos": (1 / 6, 1 / 6)},
                {"size": "small", "color": "cyan", "shape": "triangle", "pos": (0.5, 0.5)}]]
    split = {"objects_img": objects, "mods": [{"from": [0], "to": [1], "to_str": "add cyan cylinder to center"}]}
    with (tmp_path / DATA_FILE).open("wb") as handle:
        pickle.dump(np.array({"train": split, "test": split}, dtype=object), handle, protocol=2)
    (tmp_path / DATA_FILE).write_bytes(_as_npy(tmp_path / DATA_FILE))
    (tmp_path / "images").mkdir()
    for i, scene_objects in enumerate(objects):
        scene = Scene(SceneObject.from_record(r) for r in scene_objects)
        render_2d(scene, 64).save(tmp_path / "images" / f"css_test_{i:06d}.png")
    dataset = CSSDataset(tmp_path, "test", image_size=32)
    assert list(dataset.labels) == [0, 1]
    assert [(q.source, q.text, q.target) for q in dataset.queries] == [(0, "add cyan cylinder to center", 1)]
    assert SceneObject.from_record(dataset.objects[1][1]) == SceneObject(4, "small", "cyan", "cylinder")
    assert dataset.images.shape == (2, 3, 32, 32)


def _as_npy(pickle_path):
    """Wrap the pickle as np.save writes an object array (what the original file is)."""
    data = pickle.loads(pickle_path.read_bytes())
    buffer = pickle_path.with_suffix(".tmp.npy")
    np.save(buffer, data, allow_pickle=True)
    return buffer.read_bytes()
