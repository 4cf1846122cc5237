import json

from tirg.data import DATA_FILE, read_css_file
from tirg.scenes.generate import choose_held_out, generate
from tirg.scenes.scene import Scene, SceneObject, apply_text, caption


def scenes_of(split):
    return [Scene(SceneObject.from_record(r) for r in objects) for objects in split["objects_img"]]


def test_every_target_is_its_source_with_the_modification_applied(tiny_css):
    data = read_css_file(tiny_css / DATA_FILE)
    for name in ("train", "test"):
        scenes = scenes_of(data[name])
        pairs = [(f, mod["to_str"], t) for mod in data[name]["mods"]
                 for f, t in zip(mod["from"], mod["to"], strict=True)]
        assert len(pairs) >= 0.8 * len(scenes)  # almost every image is a query source
        for source, text, target in pairs:
            assert apply_text(scenes[source], text) == scenes[target], text
            assert scenes[source] != scenes[target]


def test_labels_group_exactly_the_identical_scenes(tiny_css):
    split = read_css_file(tiny_css / DATA_FILE)["test"]
    scenes, labels = scenes_of(split), split["labels"]
    for i in range(len(scenes)):
        for j in range(i + 1, len(scenes)):
            assert (labels[i] == labels[j]) == (scenes[i] == scenes[j])


def test_held_out_combinations_never_appear_in_training(tiny_css):
    data = read_css_file(tiny_css / DATA_FILE)
    held_out = {tuple(pair) for pair in data["held_out"]}
    assert held_out == set(choose_held_out(data["seed"]))
    train_pairs = {(o.color, o.shape) for scene in scenes_of(data["train"]) for o in scene}
    assert not train_pairs & held_out


def test_images_and_captions_are_written_for_every_scene(tiny_css):
    data = read_css_file(tiny_css / DATA_FILE)
    captions = json.loads((tiny_css / "captions.json").read_text())
    for name in ("train", "test"):
        for i, scene in enumerate(scenes_of(data[name])):
            assert (tiny_css / "images" / f"css_{name}_{i:06d}.png").exists()
            assert captions[f"css_{name}_{i:06d}.png"] == caption(scene) == data[name]["captions"][i]


def test_the_same_seed_gives_the_same_data(tmp_path):
    a = generate(tmp_path / "a", train_images=30, test_images=20, renderer="3d", image_size=16, seed=5, workers=1)
    b = generate(tmp_path / "b", train_images=30, test_images=20, renderer="3d", image_size=16, seed=5, workers=1)
    assert a["train"] == b["train"] and a["test"] == b["test"]
    image = "images/css_test_000003.png"
    assert (tmp_path / "a" / image).read_bytes() == (tmp_path / "b" / image).read_bytes()


def test_a_split_of_zero_images_stays_empty(tmp_path):
    """The demo renders only a test split; an empty train split must not still grow a root scene."""
    data = generate(tmp_path, train_images=0, test_images=12, renderer="2d", image_size=32, workers=1)
    assert data["train"]["objects_img"] == [] and data["train"]["mods"] == []
    assert len(data["test"]["objects_img"]) == 12
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [f"css_test_{i:06d}.png" for i in range(12)]
