"""The random control: a seeded VGG16 calibrated so every tap carries signal (LSUV).

A plain Glorot-initialised VGG16 barely stylises: activations shrink layer after layer and
deep Gram matrices carry almost nothing.  Following the random-network texture literature
(He-normal init, then each layer rescaled to unit pre-activation variance on a calibration
image, i.e. LSUV), this is the best random weights can do, so a comparison against trained
weights is not rigged.  The seed goes to a local `numpy.random.Generator` only: no global
RNG is touched (a server runs many jobs in one process).
"""

from __future__ import annotations

import keras
import numpy as np

from transfer.backbones.load import Backbone, truncated_vgg16
from transfer.core.preprocessing import preprocess
from transfer.core.spec import BackboneRef


def calibration_image(size: int = 64, seed: int = 0) -> np.ndarray:
    """A fixed, natural-looking test image (smooth colour blobs plus edges), float [0, 1].

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
    """A seeded random VGG16, calibrated layer by layer to unit activation variance."""
    model = truncated_vgg16()
    rng = np.random.default_rng(seed)
    x = preprocess(calibration_image()[None], profile).numpy()
    for layer in model.layers[1:]:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            kernel = rng.normal(0.0, np.sqrt(2.0 / (kh * kw * cin)), (kh, kw, cin, cout)).astype(np.float32)
            pre = keras.ops.convert_to_numpy(keras.ops.conv(x, kernel, padding="same"))
            kernel /= max(float(pre.std()), 1e-8)
            layer.set_weights([kernel, np.zeros(cout, np.float32)])
        x = keras.ops.convert_to_numpy(layer(x))
    ref = BackboneRef("random", None, profile)
    return Backbone(ref, model, f"random VGG16 (He-normal + unit-variance calibration, seed {seed})")
