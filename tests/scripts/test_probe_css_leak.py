"""The generator keeps the image alone from answering: the ideal image-only model's R@1 (ranking the
source's one-change neighbours first) is near the paper's image-only figure (6.3), where the former
two-children trees let it reach ~37."""
import json

import pytest

from tests.scripts.helpers import run_script
from tirg.scenes.generate import generate


@pytest.mark.parametrize("children, low, high", [(None, 0, 10), (2, 30, 45)])
def test_the_image_only_ceiling_follows_the_branching(tmp_path, children, low, high):
    data = tmp_path / "css"
    extra = {} if children is None else {"children_per_scene": children}
    generate(data, train_images=64, test_images=640, renderer="2d", image_size=16, seed=2, workers=1, **extra)
    out = tmp_path / "probe.json"
    result = run_script("probe_css_leak.py", "--dataset_path", str(data), "--out", str(out), env=None)
    assert result.returncode == 0, result.stderr
    probe = json.loads(out.read_text())
    assert low <= probe["image_only_ceiling_R@1"] <= high
    assert set(probe["pixels"]) == {"R@1", "R@5", "R@10", "R@50", "R@100"}
