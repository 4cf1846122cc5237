"""scripts/bench_scale.py on real embeddings from a file (any dimension), on the embedded Milvus Lite."""
import json

import numpy as np

from tests.scripts.helpers import run_script, script_env


def test_real_vectors_from_a_file_of_any_dimension_are_measured(tmp_path, clip_checkpoint):
    vectors = np.random.default_rng(0).normal(size=(260, 24)).astype(np.float32)  # not unit: the bench normalizes
    np.save(tmp_path / "vectors.npy", vectors)
    out = tmp_path / "bench.json"
    result = run_script("bench_scale.py", "--sizes", "240", "--backends", "lite", "--vectors",
                        str(tmp_path / "vectors.npy"), "--queries", "20", "--clients", "1", "--qps-seconds", "0.2",
                        "--out", str(out), env=script_env(tmp_path / "data", clip_checkpoint))
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(out.read_text())["rows"]
    assert (row["backend"], row["vectors"], row["recall_at_10"]) == ("lite", 240, 1.0)
