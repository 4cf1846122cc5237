"""The demo CLIP trainer: a short run on a tiny generated set (and a few Fashion-MNIST images, where
installed) lowers the loss, evaluates on the held-out splits, and writes fp16 weights the server's encoder
loads, with a model card."""
import json

import torch

from tests.images import FASHION_MNIST, LABELS
from tests.scripts.helpers import run_script
from tirg.scenes.generate import generate
from webserver.encoders.clip import ClipEncoder


def test_a_short_run_trains_saves_fp16_and_writes_a_card(tmp_path):
    data = tmp_path / "CSSDataset"
    generate(data, train_images=128, test_images=48, renderer="2d", image_size=64, seed=4, workers=1)
    out = tmp_path / "models" / "css-clip.pt"
    result = run_script("train_demo_clip.py", "--dataset_path", str(data), "--out", str(out), "--epochs", "8",
                        "--batch_size", "32", "--warmup", "2", "--threads", "1", "--fashion_per_epoch", "32", env=None)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(out.with_suffix(".json").read_text())
    fashion = FASHION_MNIST.exists()
    assert metrics["steps"] == (40 if fashion else 32) and metrics["last_loss"] < metrics["first_loss"]
    assert set(metrics["test"]) == {"R@1", "R@5", "R@10"} and metrics["test_images"] == 48
    card = out.with_suffix(".md").read_text()
    assert "text -> image" in card and f"R@1 {metrics['test']['R@1']}" in card
    if fashion:
        precision = metrics["fashion"]["precision_at_10"]
        assert set(precision) == set(LABELS) and metrics["fashion"]["test_images"] == 10000
        assert "| precision@10 | " + " | ".join(str(precision[n]) for n in LABELS) + " |" in card

    weights = torch.load(out, weights_only=True)["state_dict"]
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.float16}
    encoder = ClipEncoder("css-clip", str(out), device="cpu")
    assert encoder.encode_texts(["a small red cube at center"]).shape == (1, 128)
