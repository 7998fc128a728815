"""The one thing every reader returns: named arrays plus what we know about them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from weights.errors import WeightsError


@dataclasses.dataclass
class Checkpoint:
    """Tensors read from a file, in the file's own naming and layout.

    Attributes:
      tensors: `{name: array}` exactly as the file names them (e.g. `vgg.0.weight` in
        PyTorch OIHW layout, or `block1_conv1/kernel` in Keras HWIO layout).
      layout: what the reader recognised, e.g. `"ssd300-pth"`, `"vgg16-reducedfc-pth"`,
        `"keras-h5-legacy"`, `"onnx-vgg16"`, `"vgg16-keras-names"`.
      source: the file the tensors came from.
      meta: anything else worth reporting (serialisation, opset, byte order, ...).
    """

    tensors: dict[str, np.ndarray]
    layout: str
    source: Path | None = None
    meta: dict = dataclasses.field(default_factory=dict)

    @property
    def parameter_count(self) -> int:
        return int(sum(a.size for a in self.tensors.values()))


#: Elements per `np.isfinite` call: the temporary mask stays at 4 MiB whatever the tensor's size.
FINITE_CHUNK = 1 << 22


def non_finite_count(array: np.ndarray) -> int:
    """How many NaN/inf values a float (or complex) array holds; 0 for other dtypes."""
    if array.dtype.kind not in "fc":
        return 0
    flat = array.reshape(-1)
    bad = 0
    for start in range(0, flat.size, FINITE_CHUNK):
        finite = np.isfinite(flat[start : start + FINITE_CHUNK])
        bad += finite.size - int(np.count_nonzero(finite))
    return bad


def check_finite(checkpoint: Checkpoint, *, strict: bool = True) -> None:
    """Refuse (strict) or note in `meta["problems"]` a checkpoint holding NaN or inf weights.

    Why at load: a non-finite weight makes every loss NaN, which a run would otherwise report
    much later as a divergence and blame on --learning-rate.
    """
    counts = {name: n for name, array in checkpoint.tensors.items() if (n := non_finite_count(array))}
    if not counts:
        return
    name, count = next(iter(counts.items()))
    more = f" ({len(counts) - 1} more tensors hold some too)" if len(counts) > 1 else ""
    message = (f"{checkpoint.source}: tensor {name} has {count:,} non-finite values (NaN/inf){more}; "
               "the checkpoint is corrupt")
    if strict:
        raise WeightsError(message)
    checkpoint.meta.setdefault("problems", []).append(message)
