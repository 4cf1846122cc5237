import json

import numpy as np
import torch

from tirg.checkpoint import read_checkpoint
from tirg.main import main


def test_a_short_training_run_lowers_the_loss_logs_and_exports(tiny_css, tmp_path):
    export_dir = tmp_path / "export"
    code = main(["--dataset_path", str(tiny_css), "--num_iters", "60", "--batch_size", "16", "--image_size", "32",
                 "--embed_dim", "64", "--eval_every", "30", "--runs_dir", str(tmp_path / "runs"),
                 "--comment", "_test", "--export", str(export_dir), "--learning_rate", "0.01"])
    assert code == 0
    run_dir = next((tmp_path / "runs").iterdir())
    assert run_dir.name.endswith("_test")
    result = json.loads((run_dir / "results.json").read_text())
    assert np.mean(result["last_losses"][-20:]) < np.mean(result["first_losses"][:20])
    assert set(result["test"]) == {"R@1", "R@5", "R@10", "R@50", "R@100"}
    assert len(result["history"]) == 2 and (run_dir / "checkpoint.pt").exists()
    assert any(p.name.startswith("events.out.tfevents") for p in run_dir.iterdir())
    gallery = np.load(export_dir / "img.npy")
    assert gallery.shape == (80, 64) and (export_dir / "tirg.pt").exists()
    assert len(list((export_dir / "images").iterdir())) == 80


def test_bf16_training_keeps_fp32_weights_and_lowers_the_loss(tiny_css, tmp_path):
    code = main(["--dataset_path", str(tiny_css), "--num_iters", "60", "--batch_size", "16", "--image_size", "32",
                 "--embed_dim", "64", "--eval_every", "60", "--runs_dir", str(tmp_path / "runs"),
                 "--loss", "batch_based_classification", "--precision", "bf16", "--threads", "1"])
    assert code == 0
    run_dir = next((tmp_path / "runs").iterdir())
    result = json.loads((run_dir / "results.json").read_text())
    assert result["options"]["precision"] == "bf16"
    assert np.mean(result["last_losses"][-20:]) < np.mean(result["first_losses"][:20])
    weights = read_checkpoint(run_dir / "checkpoint.pt")["state_dict"]
    assert all(t.dtype == torch.float32 for t in weights.values() if t.is_floating_point())
