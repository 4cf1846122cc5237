"""scripts/profile_encoders.py on the tiny test model: every variant it times agrees with the encoder."""
import json

from tests.conftest import TINY_MODEL
from tests.scripts.helpers import run_script, script_env


def test_the_onnx_and_int8_towers_are_timed_profiled_and_held_to_the_torch_vectors(tmp_path, clip_checkpoint,
                                                                                    tirg_checkpoint):
    out = tmp_path / "profile.json"
    result = run_script("profile_encoders.py", "--model", TINY_MODEL, "--pretrained", str(clip_checkpoint),
                        "--precision", "fp32", "--runs", "3", "--onnx", "--int8", "--tirg", str(tirg_checkpoint),
                        "--out", str(out),
                        env=script_env(tmp_path / "data", clip_checkpoint))
    assert result.returncode == 0, result.stderr
    profile = json.loads(out.read_text())
    onnx = profile["onnx"]
    assert onnx["text_cosine_min"] >= 0.99999 and onnx["image_cosine_min"] >= 0.99999
    assert onnx["text_tower_ms"] > 0 and onnx["bulk_img_per_s"] > 0 and onnx["export_and_load_s"] > 0
    assert {"MatMul", "Add"} & {op["op"] for op in onnx["text_top_operators"]}
    assert abs(sum(op["share"] for op in onnx["text_top_operators"]) - 1) < 0.5
    assert profile["int8"]["text_cosine_min"] > 0.99 and onnx["int8"]["image_cosine_min"] > 0.9
    assert onnx["int8"]["text_tower_ms"] > 0
    assert "ONNX Runtime:" in result.stdout
    stages = ["preprocess_ms", "image_features_ms", "text_lstm_ms", "compose_ms", "end_to_end_ms"]
    for runtime in ("torch", "onnxruntime"):
        assert all(profile["tirg"][runtime][stage] > 0 for stage in stages)
