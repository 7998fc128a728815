"""Our Keras SSD300 as an ssd.pytorch `.pth` file, and back.

Why: a detector trained here is only worth having if ssd.pytorch (and anything else built on
its `build_ssd`) can load it with `load_state_dict(strict=True)`, and training must resume
from such a file.  Neither direction restates a key table: the keys, their order and the
torch shapes come from `transfer.backbones.convert.ssd_pytorch_keys`, which derives them by
walking the Keras graph (and is checked there against a golden list written by torch).
Kernels go HWIO -> OIHW on the way out and back on the way in; every tensor is float32.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

import keras
import numpy as np

from transfer.backbones.convert import ssd300_num_classes, ssd300_weights_from_checkpoint, ssd_pytorch_keys
from transfer.backbones.copy import copy_backbone
from transfer.errors import DetstyleError
from weights.torch_pth import read_torch_pth
from weights.torch_pth_write import write_torch_pth


def _to_torch(value: np.ndarray) -> np.ndarray:
    """A Keras weight in PyTorch's layout: HWIO kernels become OIHW, the rest is unchanged."""
    value = np.asarray(value, np.float32)
    return np.ascontiguousarray(value.transpose(3, 2, 0, 1)) if value.ndim == 4 else value


def ssd300_state_dict(model: keras.Model) -> collections.OrderedDict[str, np.ndarray]:
    """`{ssd.pytorch key: float32 array in torch layout}` in `SSD.state_dict()` order.

    Works for any SSD300 of `models.ssd300.build_ssd300` (any class count, fp32 or a
    mixed-bfloat16 clone: its variables are float32 either way).
    """
    state = collections.OrderedDict()
    for key, slot in ssd_pytorch_keys(model).items():
        value = _to_torch(model.get_layer(slot.layer).weights[slot.position].numpy())
        if value.shape != slot.shape:  # the derivation and the model disagree: a bug, not a user error
            raise AssertionError(f"{key}: {slot.layer} weight has torch shape {value.shape}, expected {slot.shape}")
        state[key] = value
    return state


def save_ssd300_pth(model: keras.Model, path: str | os.PathLike) -> Path:
    """Write the model as ssd.pytorch's `torch.save(net.state_dict(), path)` would (zip archive)."""
    return write_torch_pth(path, ssd300_state_dict(model))


def num_classes_of(model: keras.Model) -> int:
    """Classes (background included) the model's `conf` output scores."""
    return int(model.outputs[1].shape[-1])


def load_ssd300_pth(model: keras.Model, path: str | os.PathLike) -> None:
    """Fill every layer of `model` from an ssd.pytorch SSD300 `.pth` (zip or legacy, `module.` ok).

    Every key and shape is checked before anything is copied, so a wrong file leaves the
    model untouched.

    Raises:
      DetstyleError: the file is not an SSD300 state dict, or has another class count.
      WeightsError: the file cannot be read safely.
    """
    checkpoint = read_torch_pth(path)
    classes, wanted = ssd300_num_classes(checkpoint), num_classes_of(model)
    if classes != wanted:
        raise DetstyleError(f"{path}: an SSD300 for {classes} classes; the model has {wanted} (background included)")
    copy_backbone(ssd300_weights_from_checkpoint(checkpoint), model)
