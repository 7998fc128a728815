"""Compute precision of a backbone: the same weights in float32 or mixed bfloat16."""

from __future__ import annotations

import dataclasses

from transfer.backbones.architectures import build_model
from transfer.backbones.copy import copy_backbone
from transfer.backbones.load import Backbone
from transfer.core.spec import PRECISIONS
from transfer.errors import UsageError


def with_precision(backbone: Backbone, precision: str) -> Backbone:
    """The same weights computing in `precision` ("fp32" or "bf16").

    bf16 uses Keras's `mixed_bfloat16` policy: variables stay float32, convolutions run in
    bfloat16 (faster on CPUs with AVX512-BF16 or AMX and on GPUs; measured in bench/); the
    objective casts features to float32 before Gram matrices and losses.  Every weighted
    layer of the backbone's architecture is copied by name (BatchNorm statistics included).
    """
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == backbone.ref.precision:
        return backbone
    model = build_model(backbone.ref.architecture, PRECISIONS[precision])
    copy_backbone(backbone.model, model)
    ref = dataclasses.replace(backbone.ref, precision=precision)
    return dataclasses.replace(backbone, ref=ref, model=model)


#: CPU flags (Linux /proc/cpuinfo names) of native bfloat16 arithmetic: AVX512-BF16 dot products, AMX tiles.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as Linux lists them; empty where the file is absent (macOS, Windows)."""
    try:
        text = open(cpuinfo, encoding="utf-8", errors="replace").read()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def automatic_precision(flags: frozenset[str] | None = None, gpus: int | None = None) -> str:
    """bf16 where the hardware computes it natively (a GPU, or a CPU with AVX512-BF16 or AMX), else fp32.

    Why: bf16 convolutions were measured 1.6-1.8x faster per evaluation on an AVX512-BF16 CPU
    and 3.3x with AMX (bench/results), with losses within 0.5 % of fp32 step for step; on a CPU
    without them TensorFlow emulates bf16 and it is slower than fp32.
    """
    if gpus is None:
        import tensorflow as tf

        gpus = len(tf.config.list_physical_devices("GPU"))
    if gpus:
        return "bf16"
    flags = cpu_flags() if flags is None else flags
    return "bf16" if any(flag in flags for flag in BF16_CPU_FLAGS) else "fp32"
