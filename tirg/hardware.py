"""What the machine offers, and the one place every precision and device choice is made.

bf16 pays only where the hardware computes it natively. Measured on this project's machines, open_clip
ViT-B-32: on an AMD Zen 4 with AVX-512 BF16, bf16 is ~3.5x *faster* than fp32; on a Zen 3 with AVX2 only,
bf16 is ~10x *slower* (image 1.3 vs 13.1 img/s, one text 389 vs 71 ms) and oneDNN has no bf16 LSTM there
at all. So the CLIP encoder, TIRG training and serving, and the benchmarks all ask `choose_precision`,
which knows the CPU class, instead of taking a precision on faith.

The CPU class can be forced (`cpu_class=` here, `--cpu_class` / `CPU_CLASS` in the callers), so a machine
with bf16 can exercise the fallback path, and tests can cover both on any CPU.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import torch

# From most to least capable. "amx" implies AVX-512 BF16 on every CPU that has it.
CPU_CLASSES = ("amx", "avx512_bf16", "avx512", "avx2", "baseline")
BF16_CPU_CLASSES = frozenset({"amx", "avx512_bf16"})
PRECISIONS = ("auto", "fp32", "bf16")
BF16_COST_ON_AVX2 = ("bf16 on a CPU without AVX-512 BF16 or AMX is emulated: measured ~10x slower than fp32 "
                     "(ViT-B-32 images 1.3 vs 13.1 img/s on an AVX2-only AMD EPYC)")


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _torch_says(name: str) -> bool | None:
    """torch's own CPUID probes (private, so they may vanish: None then)."""
    probe = getattr(torch.cpu, name, None)
    try:
        return bool(probe()) if probe is not None else None
    except Exception:
        return None


def detect_cpu_class() -> str:
    """The best class this CPU belongs to, from torch's CPUID probes, else /proc/cpuinfo flags."""
    flags = _cpu_flags()

    def has(torch_probe: str, flag: str) -> bool:
        answer = _torch_says(torch_probe)
        return answer if answer is not None else flag in flags

    if has("_is_avx512_bf16_supported", "avx512_bf16"):
        return "amx" if has("_is_amx_tile_supported", "amx_tile") else "avx512_bf16"
    if has("_is_avx512_supported", "avx512f"):
        return "avx512"
    if has("_is_avx2_supported", "avx2"):
        return "avx2"
    return "baseline"


def cpu_class(forced: str | None = None) -> str:
    """`forced` (a CPU_CLASSES name) wins; None or "auto" detects."""
    if forced in (None, "", "auto"):
        return detect_cpu_class()
    if forced not in CPU_CLASSES:
        raise ValueError(f"unknown CPU class {forced!r}; use auto or one of {', '.join(CPU_CLASSES)}")
    return forced


def pick_device(requested: str = "auto") -> torch.device:
    """Chosen once, at load: "auto" is CUDA where torch sees one, else the CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("cuda was asked for but torch sees no CUDA device; use cpu or auto")
    return torch.device(requested)


def bf16_is_fast(device: torch.device | str, forced_cpu_class: str | None = None) -> bool:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_class(forced_cpu_class) in BF16_CPU_CLASSES


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # "fp32" or "bf16": what will run
    requested: str  # "auto", "fp32" or "bf16": what was asked for
    hardware: str  # e.g. "cpu/avx2", "cuda/NVIDIA H200"
    reason: str

    @property
    def fell_back(self) -> bool:
        """bf16 was asked for explicitly and is not what runs: the caller should warn."""
        return self.requested == "bf16" and self.precision != "bf16"

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.precision == "bf16" else torch.float32


def describe_hardware(device: torch.device | str = "cpu", forced_cpu_class: str | None = None) -> str:
    """What a benchmark prints beside its figures: "cpu/avx2" or "cuda/<device name>"."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda/{torch.cuda.get_device_name(device)}"
    return f"cpu/{cpu_class(forced_cpu_class)}"


def choose_precision(requested: str, device: torch.device | str = "cpu",
                     forced_cpu_class: str | None = None) -> PrecisionChoice:
    """auto -> bf16 where the hardware runs it natively, else fp32. An explicit bf16 where it would be
    emulated falls back to fp32 with a reason naming the measured cost: it never runs 10x slower silently."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; use one of {', '.join(PRECISIONS)}")
    hardware = describe_hardware(device, forced_cpu_class)
    if requested == "fp32":
        return PrecisionChoice("fp32", requested, hardware, "fp32 asked for")
    if bf16_is_fast(device, forced_cpu_class):
        return PrecisionChoice("bf16", requested, hardware, f"{hardware} computes bf16 natively")
    reason = (f"{hardware} has no native bf16, so fp32 runs instead"
              + (f" ({BF16_COST_ON_AVX2})" if requested == "bf16" else ""))
    return PrecisionChoice("fp32", requested, hardware, reason)


def machine_summary(device: torch.device | str = "cpu", forced_cpu_class: str | None = None) -> dict:
    """The machine facts a benchmark records beside its figures."""
    return {"hardware": describe_hardware(device, forced_cpu_class), "processor": _processor_name(),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def _processor_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
