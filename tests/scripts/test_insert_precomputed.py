"""The seed's flow: `insert_milvus.py ./tirg/css` loads img.npy (row i = images/%06d.png) into a TIRG
collection, after checking on a sample that the rows are what the server's TIRG model makes."""
import json
import sqlite3
import subprocess
import sys

import numpy as np

from tests.images import sample_images
from tests.scripts.helpers import run_script, script_env


def export_folder(folder, encoder, count=12):
    """What `python -m tirg --export DIR` writes: img.npy, images/%06d.png and captions.json."""
    (folder / "images").mkdir(parents=True)
    images = [image for image, _ in sample_images(count)]
    for i, image in enumerate(images):
        image.save(folder / "images" / f"{i:06d}.png")
    (folder / "captions.json").write_text(json.dumps({f"{i:06d}.png": f"scene {i}" for i in range(count)}))
    return encoder.encode_images(images)


def stored_vectors(data_dir, collection):
    code = ("import sys, json; from pymilvus import MilvusClient; c = MilvusClient(sys.argv[1]); "
            "c.load_collection(sys.argv[2]); "
            "rows = c.query(sys.argv[2], filter='id >= 0', output_fields=['id', 'vector']); "
            "print(json.dumps({r['id']: [float(x) for x in r['vector']] for r in rows}))")
    out = subprocess.run([sys.executable, "-c", code, str(data_dir / "milvus.db"), collection],
                         capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    return {int(k): np.array(v) for k, v in json.loads(out).items()}


def test_img_npy_rows_are_stored_as_given_in_the_tirg_collection(tmp_path, clip_checkpoint, tirg_checkpoint,
                                                                  tirg_encoder):
    folder, data_dir = tmp_path / "css", tmp_path / "data"
    vectors = export_folder(folder, tirg_encoder)
    # A small, recognisable change that keeps every row within the agreement check: the stored vectors
    # must be these rows, not a re-encoding of the images.
    rng = np.random.default_rng(0)
    vectors = vectors + 0.01 * rng.standard_normal(vectors.shape).astype(np.float32)
    np.save(folder / "img.npy", vectors)
    env = script_env(data_dir, clip_checkpoint, TIRG_CHECKPOINT=str(tirg_checkpoint))
    result = run_script("insert_milvus.py", str(folder), env=env)
    assert result.returncode == 0, result.stderr
    assert "added 12" in result.stdout and "scenes now holds 12 images" in result.stdout

    with sqlite3.connect(data_dir / "metadata.db") as db:
        rows = db.execute("SELECT id, caption, meta FROM images WHERE collection = 'scenes'").fetchall()
    stored = stored_vectors(data_dir, "scenes")
    for image_id, caption, meta in rows:
        index = json.loads(meta)["index"]
        assert caption == f"scene {index}"
        assert np.allclose(stored[image_id], vectors[index], atol=1e-6)


def test_vectors_from_another_model_or_order_are_refused(tmp_path, clip_checkpoint, tirg_checkpoint,
                                                         tirg_encoder):
    folder, data_dir = tmp_path / "css", tmp_path / "data"
    vectors = export_folder(folder, tirg_encoder)
    np.save(folder / "img.npy", vectors[::-1])  # rows in the wrong order
    env = script_env(data_dir, clip_checkpoint, TIRG_CHECKPOINT=str(tirg_checkpoint))
    result = run_script("insert_milvus.py", str(folder), env=env)
    assert result.returncode == 2 and "does not match the collection's model" in result.stderr

    np.save(folder / "img.npy", np.ones((12, 7), np.float32))
    wrong_dim = run_script("insert_milvus.py", str(folder), env=env)
    assert wrong_dim.returncode == 2 and "7-d vectors" in wrong_dim.stderr

    no_tirg = run_script("insert_milvus.py", str(folder), env=script_env(data_dir, clip_checkpoint))
    assert no_tirg.returncode == 2 and "TIRG_CHECKPOINT" in no_tirg.stderr
