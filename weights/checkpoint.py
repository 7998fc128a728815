"""The one thing every reader returns: named arrays plus what we know about them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np


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
