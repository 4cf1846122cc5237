from pathlib import Path

import pytest
import torch

from tirg.hardware import BF16_CPU_CLASSES, CPU_CLASSES, choose_precision, cpu_class, detect_cpu_class, machine_summary
from tirg.models import TirgConfig, create_model
from tirg.text import Vocabulary


def _flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_the_detected_class_agrees_with_the_cpu_flags():
    detected, flags = detect_cpu_class(), _flags()
    assert detected in CPU_CLASSES
    assert (detected in BF16_CPU_CLASSES) == ("avx512_bf16" in flags)
    if detected == "avx2":
        assert "avx2" in flags and "avx512f" not in flags


@pytest.mark.parametrize("forced, requested, expected", [
    ("avx2", "auto", "fp32"), ("avx2", "bf16", "fp32"), ("avx2", "fp32", "fp32"), ("avx512", "bf16", "fp32"),
    ("avx512_bf16", "auto", "bf16"), ("amx", "bf16", "bf16"), ("avx512_bf16", "fp32", "fp32"),
])
def test_bf16_runs_only_where_the_cpu_computes_it(forced, requested, expected):
    choice = choose_precision(requested, "cpu", forced)
    assert choice.precision == expected and choice.hardware == f"cpu/{forced}"
    assert choice.fell_back == (requested == "bf16" and expected == "fp32")
    if choice.fell_back:
        assert "10x slower" in choice.reason  # the measured cost, not a silent switch


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="CPU class"):
        cpu_class("avx9000")
    with pytest.raises(ValueError, match="precision"):
        choose_precision("fp8", "cpu")


def test_the_machine_summary_names_the_cpu_class():
    summary = machine_summary("cpu")
    assert summary["hardware"] == f"cpu/{detect_cpu_class()}" and summary["threads"] >= 1


def test_the_text_lstm_runs_in_fp32_under_bf16_autocast():
    """Before, autocast lowered the LSTM to bf16: a oneDNN crash on AVX2-only CPUs."""
    torch.manual_seed(0)
    model = create_model(TirgConfig(embed_dim=16, word_dim=8, lstm_dim=8, image_size=32),
                         Vocabulary.build(["make it blue"])).eval()
    seen = []
    model.text_encoder.lstm.register_forward_hook(lambda module, args, output: seen.append(output[0].dtype))
    with torch.inference_mode():
        plain = model.extract_text_feature(["make it blue"])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lowered = model.extract_text_feature(["make it blue"])
    assert seen == [torch.float32, torch.float32]
    assert torch.allclose(plain, lowered.float(), atol=0.05)
