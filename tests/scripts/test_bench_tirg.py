import json
from argparse import Namespace

from tests.scripts.helpers import load_script


def test_the_newest_run_is_the_last_finished_not_the_last_month_name(tmp_path):
    """Run names start with a month ("Nov30_...", "Dec01_..."): as text, November sorts after December."""
    bench = load_script("bench_tirg")
    options = {"num_iters": 10, "loss": "batch_based_classification", "learning_rate_decay_frequency": 5,
               "precision": "fp32"}
    for name, finished, recall in (("Dec01_09-00-00_css3d_tirg", "2026-12-01T09:00:00+00:00", 80.0),
                                   ("Nov30_09-00-00_css3d_tirg", "2026-11-30T09:00:00+00:00", 70.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(
            {"options": options, "finished_at": finished, "test": {"R@1": recall}, "wall_time_s": 60}))
    args = Namespace(num_iters=10, loss="batch_based_classification", decay=5, precision="fp32")
    newest = bench.finished_run(tmp_path, "tirg", args)
    assert newest["run"] == "Dec01_09-00-00_css3d_tirg" and newest["test"]["R@1"] == 80.0
