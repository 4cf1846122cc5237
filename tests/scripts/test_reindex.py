from fastapi.testclient import TestClient

from tests.conftest import TINY_MODEL
from tests.images import sample_pngs
from tests.scripts.helpers import run_script, script_env, write_image_folder
from webserver.api.app import create_app
from webserver.encoders.clip import ClipEncoder, save_random_weights
from webserver.encoders.registry import EncoderSet


def other_weights(path):
    return save_random_weights(TINY_MODEL, path, seed=1)


def test_changing_the_model_is_refused_until_reindexed(tmp_path, clip_checkpoint, make_settings):
    folder, data_dir = tmp_path / "images", tmp_path / "data"
    write_image_folder(folder, 12)
    assert run_script("insert_milvus.py", str(folder), env=script_env(data_dir, clip_checkpoint)).returncode == 0

    new_weights = other_weights(tmp_path / "new.pt")
    new_env = script_env(data_dir, new_weights)
    refused = run_script("insert_milvus.py", str(folder), env=new_env)
    assert refused.returncode == 2 and "reindex.py --collection images" in refused.stderr

    result = run_script("reindex.py", "--collection", "images", env=new_env)
    assert result.returncode == 0, result.stderr
    assert "12 images encoded" in result.stdout
    assert "already indexed 12" in run_script("insert_milvus.py", str(folder), env=new_env).stdout

    # Served with the new model, an indexed image finds itself: its vector was re-encoded.
    encoder = ClipEncoder(TINY_MODEL, str(new_weights), device="cpu")
    settings = make_settings(DATA_DIR=data_dir, CLIP_PRETRAINED=str(new_weights))
    with TestClient(create_app(settings, EncoderSet(encoder))) as client:
        assert client.get("/collections/images").json()["servable"] is True
        query = sample_pngs(1, start=4)[0][0]
        hits = client.post("/search", files={"image": ("q.png", query, "image/png")}).json()["results"]
        assert hits[0]["score"] > 0.9999
        assert client.get(hits[0]["url"]).content == query
