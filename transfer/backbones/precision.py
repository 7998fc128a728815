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
