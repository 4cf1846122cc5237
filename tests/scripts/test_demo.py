"""The offline demo command: generates scenes, indexes them into a CLIP and a TIRG collection (and
Fashion-MNIST into `fashion`), resumes without re-indexing, re-encodes after a model change. The demo served
with its defaults is tested by tests/test_readme.py, which runs the README's examples against it."""
import os

from tests.conftest import ROOT
from tests.images import FASHION_MNIST
from tests.scripts.helpers import run_script, script_env


def test_index_only_makes_both_collections_and_a_second_run_adds_nothing(tmp_path, clip_checkpoint,
                                                                         tirg_checkpoint):
    env = script_env(tmp_path / "data", clip_checkpoint, TIRG_CHECKPOINT=str(tirg_checkpoint))
    args = ("--dir", str(tmp_path / "demo"), "--scenes", "30", "--fashion", "40", "--index-only")
    first = run_script("demo.py", *args, env=env)
    assert first.returncode == 0, first.stderr
    assert len(list((tmp_path / "demo" / "scenes" / "images").glob("css_test_*.png"))) == 30
    assert "images (clip): added 30, already indexed 0, failed 0; holds 30 images" in first.stdout
    assert "scenes (tirg): added 30, already indexed 0, failed 0; holds 30 images" in first.stdout
    if FASHION_MNIST.exists():
        assert "fashion (clip): added 40, already indexed 0, failed 0; holds 40 images" in first.stdout

    second = run_script("demo.py", *args, env=env)
    assert second.returncode == 0, second.stderr
    assert "rendering" not in second.stderr
    assert "images (clip): added 0, already indexed 30, failed 0; holds 30 images" in second.stdout
    assert "scenes (tirg): added 0, already indexed 30, failed 0; holds 30 images" in second.stdout
    if FASHION_MNIST.exists():
        assert "fashion (clip): added 0, already indexed 40, failed 0; holds 40 images" in second.stdout


def test_a_changed_tirg_model_re_encodes_the_demo_collection(tmp_path, clip_checkpoint, tirg_checkpoint):
    """After a newer model is shipped (here: another TIRG checkpoint), the next start re-encodes the
    stored scenes instead of serving a collection the server refuses."""
    args = ("--dir", str(tmp_path / "demo"), "--scenes", "20", "--fashion", "0", "--index-only")
    data = tmp_path / "data"
    first = run_script("demo.py", *args, env=script_env(data, clip_checkpoint, TIRG_CHECKPOINT=str(tirg_checkpoint)))
    assert first.returncode == 0, first.stderr

    shipped = ROOT / "models" / "tirg-css.pt"
    second = run_script("demo.py", *args, env=script_env(data, clip_checkpoint, TIRG_CHECKPOINT=str(shipped)))
    assert second.returncode == 0, second.stderr
    assert "scenes: re-encoded (it held vectors from tirg/" in second.stdout
    assert "images: re-encoded" not in second.stdout
    assert "scenes (tirg): added 0, already indexed 20, failed 0; holds 20 images" in second.stdout

    third = run_script("demo.py", *args, env=script_env(data, clip_checkpoint, TIRG_CHECKPOINT=str(shipped)))
    assert third.returncode == 0, third.stderr
    assert "re-encoded" not in third.stdout  # the collection now records the shipped model


def test_a_missing_model_file_is_one_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MILVUS_", "MYSQL_", "TIRG_", "CLIP_"))}
    env.update(CLIP_MODEL="css-clip", CLIP_PRETRAINED=str(ROOT / "models" / "css-clip.pt"),
               TIRG_CHECKPOINT=str(tmp_path / "missing.pt"), DATA_DIR=str(tmp_path / "data"))
    result = run_script("demo.py", "--dir", str(tmp_path / "demo"), "--scenes", "5", "--fashion", "0", "--index-only",
                        env=env)
    assert result.returncode == 2 and "missing.pt" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "demo" / "scenes").exists()  # stopped before rendering anything
