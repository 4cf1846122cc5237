"""Your own triplets: a folder of images plus triplets.jsonl, read like CSS by the tirg CLI."""
import json
import shutil

import pytest
import torch

from tirg.combiner import file_weights_id, load_combiner
from tirg.data import CSSDataset
from tirg.main import main
from tirg.triplets import TripletDataset

ROOT_CONFIGS = "webserver/encoders/model_configs/tiny-clip.json"


def triplet_folder(tiny_css, out):
    """The generated scenes' queries as triplets, under file names of our own (sub-folders, .png)."""
    rows = []
    for split in ("train", "test"):
        css = CSSDataset(tiny_css, split, load_images=False)
        for query in css.queries[:60 if split == "train" else 30]:
            for index in (query.source, query.target):
                name = out / split / f"scene-{index}.png"
                if not name.exists():
                    name.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(css.image_path(index), name)
            rows.append({"source": f"{split}/scene-{query.source}.png", "text": query.text,
                         "target": f"{split}/scene-{query.target}.png", "split": split})
    (out / "triplets.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return rows


def test_a_triplet_folder_reads_as_a_split(tiny_css, tmp_path):
    rows = triplet_folder(tiny_css, tmp_path)
    test = TripletDataset(tmp_path, "test", image_size=32)
    assert len(test.queries) == 30 and test.pixels.shape == (len(test), 3, 32, 32)
    first = test.queries[0]
    assert (test.names[first.source], first.text) == (rows[60]["source"], rows[60]["text"])
    assert test.texts() == sorted({row["text"] for row in rows[60:]})


@pytest.mark.parametrize("line, message", [
    ("not json", "not JSON"),
    ('{"source": "a.png", "target": "b.png"}', "needs the strings text"),
    ('{"source": "a.png", "text": "x", "target": "b.png", "split": "dev"}', "train or test"),
    ('{"source": "a.png", "text": "x", "target": "nowhere.png"}', "not under"),
])
def test_a_bad_triplet_file_is_refused_with_its_line(tmp_path, line, message):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "triplets.jsonl").write_text(line + "\n")
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        TripletDataset(tmp_path, "train", load_images=False)


def test_the_cli_trains_tirg_and_a_clip_combiner_on_triplets(tiny_css, tmp_path, clip_checkpoint, capsys):
    data = tmp_path / "triplets"
    triplet_folder(tiny_css, data)
    common = ["--dataset=triplets", f"--dataset_path={data}", "--runs_dir", str(tmp_path / "runs"), "--threads=1"]
    assert main(common + ["--model=tirg", "--num_iters=4", "--eval_every=4", "--image_size=32", "--embed_dim=32",
                          "--batch_size=8", "--train_eval_queries=10"]) == 0
    assert '"R@1"' in capsys.readouterr().out
    assert main(common + ["--model=clip_combiner", "--num_iters=6", "--eval_every=3", "--clip_model=tiny-clip",
                          f"--clip_pretrained={clip_checkpoint}", f"--clip_config={ROOT_CONFIGS}",
                          "--export", str(tmp_path / "out")]) == 0
    combiner = load_combiner(tmp_path / "out" / "combiner.pt")
    assert (combiner.config.clip_model, combiner.config.clip_weights) == ("tiny-clip", file_weights_id(clip_checkpoint))
    results = json.loads(next((tmp_path / "runs").glob("*_clip_combiner/results.json")).read_text())
    assert results["test_queries"] == 30 and [h["step"] for h in results["history"]] == [3, 6]
    assert set(results) >= {"image_only", "text_only", "sum", "combiner", "sum_sweep_test"}
    assert torch.load(tmp_path / "out" / "combiner.pt", weights_only=True)["meta"]["sum_weight"] in \
        [round(0.1 * i, 1) for i in range(11)]
