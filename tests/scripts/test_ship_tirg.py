"""ship_tirg: a trained run becomes an fp16 checkpoint with a card whose recall is that of the shipped
weights (checked here by evaluating the shipped file again)."""
import json

import torch

from tests.scripts.helpers import run_script
from tirg.checkpoint import load_model
from tirg.data import CSSDataset, ImageNormalizer
from tirg.evaluate import evaluate
from tirg.main import main as train


def train_tiny(tiny_css, runs, comment: str, iterations: int, *extra: str):
    assert train(["--dataset_path", str(tiny_css), "--num_iters", str(iterations), "--batch_size", "16",
                  "--image_size", "32", "--embed_dim", "32", "--eval_every", str(iterations), "--runs_dir", str(runs),
                  "--comment", comment, "--threads", "1", *extra]) == 0
    return next(runs.glob(f"*{comment}")) / "checkpoint.pt"


def ship(checkpoint, tiny_css, out) -> dict:
    """Run ship_tirg.py on `checkpoint` into `out`; the card it wrote."""
    result = run_script("ship_tirg.py", str(checkpoint), "--dataset_path", str(tiny_css), "--out", str(out),
                        "--threads", "1", env=None)
    assert result.returncode == 0, result.stderr
    return json.loads(out.with_suffix(".json").read_text())


def test_a_run_is_shipped_in_fp16_with_a_card_of_its_measured_recall(tiny_css, tmp_path):
    checkpoint = train_tiny(tiny_css, tmp_path / "runs", "_ship", 20)
    out = tmp_path / "models" / "tirg-css.pt"
    card = ship(checkpoint, tiny_css, out)

    weights = torch.load(out, weights_only=True)["state_dict"]
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.float16}
    assert out.stat().st_size < 0.6 * checkpoint.stat().st_size
    shipped = load_model(out)
    test_set = CSSDataset(tiny_css, "test", 32)
    recall = evaluate(shipped, test_set, ImageNormalizer(shipped.config.image_mean, shipped.config.image_std,
                                                         torch.device("cpu")))
    assert card["test"] == {k: round(v, 2) for k, v in recall.items()}
    [stage] = card["training"]["stages"]
    assert card["training"]["iterations"] == 20 and "--num_iters=20" in stage["command"]
    assert "R@1" in out.with_suffix(".md").read_text()


def test_a_continued_run_is_carded_with_every_stage_that_made_it(tiny_css, tmp_path):
    first = train_tiny(tiny_css, tmp_path / "runs", "_first", 20)
    second = train_tiny(tiny_css, tmp_path / "runs", "_second", 10, "--checkpoint", str(first),
                        "--learning_rate", "0.001")
    out = tmp_path / "tirg.pt"
    training = ship(second, tiny_css, out)["training"]
    assert [stage["run"] for stage in training["stages"]] == [first.parent.name, second.parent.name]
    assert training["iterations"] == 30
    assert f"--checkpoint={first}" in training["stages"][1]["command"]
    assert "--learning_rate=0.001" in training["stages"][1]["command"]
    assert "--checkpoint" not in training["stages"][0]["command"]


def test_a_run_continued_from_a_shipped_model_is_carded_with_the_stages_of_that_model(tiny_css, tmp_path):
    """Training that starts from a shipped file (here with --freeze_image_encoder) keeps the history of the
    file it started from, read from that file's card, even when the new model replaces the file."""
    first = train_tiny(tiny_css, tmp_path / "runs", "_first", 20)
    out = tmp_path / "models" / "tirg-css.pt"
    ship(first, tiny_css, out)
    second = train_tiny(tiny_css, tmp_path / "runs", "_frozen", 10, "--checkpoint", str(out),
                        "--freeze_image_encoder", "--learning_rate", "0.001")
    training = ship(second, tiny_css, out)["training"]
    assert [stage["run"] for stage in training["stages"]] == [first.parent.name, second.parent.name]
    assert training["iterations"] == 30
    assert "--freeze_image_encoder" in training["stages"][1]["command"]
    assert f"--checkpoint={out}" in training["stages"][1]["command"]
    assert "--freeze_image_encoder" not in training["stages"][0]["command"]
