"""The offline demo command: generates scenes, indexes them into a CLIP and a TIRG collection, resumes
without re-indexing, and serves the page and the API with the models shipped in models/."""
import os
import signal
import subprocess
import sys

import httpx

from tests.conftest import ROOT
from tests.scripts.helpers import run_script, script_env
from tests.servers import free_port, wait_for_port
from tirg.data import CSSDataset

SHIPPED = {"CLIP_MODEL": "css-clip", "CLIP_PRETRAINED": str(ROOT / "models" / "css-clip.pt"),
           "TIRG_CHECKPOINT": str(ROOT / "models" / "tirg-css.pt")}


def collection_counts(base: str) -> dict[str, int]:
    with httpx.Client(base_url=base) as client:
        names = [c["name"] for c in client.get("/collections").json()["items"]]
        return {name: client.get(f"/collections/{name}").json()["metadata_count"] for name in names}


def test_index_only_makes_both_collections_and_a_second_run_adds_nothing(tmp_path, clip_checkpoint,
                                                                         tirg_checkpoint):
    env = script_env(tmp_path / "data", clip_checkpoint, TIRG_CHECKPOINT=str(tirg_checkpoint))
    args = ("--dir", str(tmp_path / "demo"), "--scenes", "30", "--index-only")
    first = run_script("demo.py", *args, env=env)
    assert first.returncode == 0, first.stderr
    assert len(list((tmp_path / "demo" / "scenes" / "images").glob("css_test_*.png"))) == 30
    assert "images (clip): added 30, already indexed 0, failed 0; holds 30 images" in first.stdout
    assert "scenes (tirg): added 30, already indexed 0, failed 0; holds 30 images" in first.stdout

    second = run_script("demo.py", *args, env=env)
    assert second.returncode == 0, second.stderr
    assert "rendering" not in second.stderr
    assert "images (clip): added 0, already indexed 30, failed 0; holds 30 images" in second.stdout
    assert "scenes (tirg): added 0, already indexed 30, failed 0; holds 30 images" in second.stdout


def test_a_changed_tirg_model_re_encodes_the_demo_collection(tmp_path, clip_checkpoint, tirg_checkpoint):
    """After a newer model is shipped (here: another TIRG checkpoint), the next start re-encodes the
    stored scenes instead of serving a collection the server refuses."""
    args = ("--dir", str(tmp_path / "demo"), "--scenes", "20", "--index-only")
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
    result = run_script("demo.py", "--dir", str(tmp_path / "demo"), "--scenes", "5", "--index-only", env=env)
    assert result.returncode == 2 and "missing.pt" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "demo" / "scenes").exists()  # stopped before rendering anything


def test_the_demo_serves_the_page_and_composed_search_with_the_shipped_models(tmp_path):
    """A default start (only the folder, the scene count and the port changed): the page is served, and a
    composed query of the demo scenes finds its target in the top 5."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MILVUS_", "MYSQL_", "TIRG_", "CLIP_", "DATA_"))}
    env.update(PORT=str(port), HOST="127.0.0.1")
    demo = tmp_path / "demo"
    process = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "demo.py"), "--dir", str(demo),
                                "--scenes", "200"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for_port(port, 240)
        base = f"http://127.0.0.1:{port}"
        assert collection_counts(base) == {"images": 200, "scenes": 200}
        with httpx.Client(base_url=base, timeout=60) as client:
            assert "<html" in client.get("/").text.lower()
            described = {c["name"]: c["encoder_id"] for c in client.get("/collections").json()["items"]}
            assert described["images"].startswith("open_clip/css-clip/") and described["scenes"].startswith("tirg/")
            listing = client.get("/collections/scenes/images", params={"limit": 500}).json()["items"]
            scene_of = {item["id"]: int(item["filename"][len("css_test_"):-len(".png")]) for item in listing}
            id_of = {scene: image_id for image_id, scene in scene_of.items()}
            split = CSSDataset(demo / "scenes", "test", load_images=False)
            query = split.queries[0]
            found = client.post("/search", data={"image_id": id_of[query.source], "text": query.text,
                                                 "top_k": 5}).json()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert "serving the demo" in output
    assert found["mode"] == "composed" and found["collection"] == "scenes"
    top_labels = [split.labels[scene_of[r["id"]]] for r in found["results"]]
    assert split.labels[query.target] in top_labels, (query, top_labels)
