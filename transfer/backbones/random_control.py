"""The random controls: a seeded network of any architecture, calibrated so every tap carries signal (LSUV).

A plain Glorot-initialised VGG16 barely stylises: activations shrink layer after layer and
deep Gram matrices carry almost nothing.  Following the random-network texture literature
(He-normal init, then each layer rescaled to unit pre-activation variance on a calibration
image, i.e. LSUV), this is the best random weights can do, so a comparison against trained
weights is not rigged.

The calibration walks any Keras functional graph in order (not only a chain), so the same
code calibrates VGG16, VGG19 and ResNet50: every convolution gets He-normal weights divided
by the standard deviation of its output on the calibration image (zero bias); every
BatchNormalization is set to the identity (gamma 1, beta 0, mean 0, variance 1), so the
calibrated convolutions alone set the scale, as in an untrained ResNet.

The seed goes to a local `numpy.random.Generator` only: no global RNG is touched (a server
runs many jobs in one process).
"""

from __future__ import annotations

import keras
import numpy as np

from transfer.backbones.architectures import DEFAULT_ARCHITECTURE, build_model, get_architecture
from transfer.backbones.load import Backbone
from transfer.core.preprocessing import preprocess
from transfer.core.spec import BackboneRef

#: BatchNormalization at identity, by Keras weight name.
_IDENTITY_BN = {"gamma": 1.0, "beta": 0.0, "moving_mean": 0.0, "moving_variance": 1.0}


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


def random_backbone(seed: int = 0, profile: str = "caffe", architecture: str = DEFAULT_ARCHITECTURE) -> Backbone:
    """A seeded random `architecture`, calibrated layer by layer to unit pre-activation variance."""
    arch = get_architecture(architecture)
    model = build_model(architecture)
    calibrate(model, preprocess(calibration_image()[None], profile).numpy(), np.random.default_rng(seed))
    ref = BackboneRef(arch.random_control, None, profile, architecture=architecture)
    return Backbone(ref, model, f"random {architecture} (He-normal + unit-variance calibration, seed {seed})")


def calibrate(model: keras.Model, image: np.ndarray, rng: np.random.Generator) -> None:
    """Set every conv (LSUV) and BatchNormalization (identity) of `model` in graph order.

    `image` is the preprocessed calibration batch; each layer sees what the layers before
    it, already calibrated, make of it.
    """
    values = {id(model.layers[0].output): image}
    for layer in model.layers[1:]:
        inputs = layer.input
        args = [values[id(t)] for t in inputs] if isinstance(inputs, (list, tuple)) else values[id(inputs)]
        if isinstance(layer, keras.layers.Conv2D):
            _calibrate_conv(layer, args, rng)
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([np.full(w.shape, _IDENTITY_BN[w.name], np.float32) for w in layer.weights])
        values[id(layer.output)] = keras.ops.convert_to_numpy(layer(args))


def _calibrate_conv(layer: keras.layers.Conv2D, x: np.ndarray, rng: np.random.Generator) -> None:
    """He-normal kernel divided by the std of its pre-activation on `x`; zero bias."""
    kh, kw, cin, cout = layer.kernel.shape
    kernel = rng.normal(0.0, np.sqrt(2.0 / (kh * kw * cin)), (kh, kw, cin, cout)).astype(np.float32)
    pre = keras.ops.convert_to_numpy(keras.ops.conv(x, kernel, strides=layer.strides, padding=layer.padding,
                                                    dilation_rate=layer.dilation_rate))
    kernel /= max(float(pre.std()), 1e-8)
    layer.set_weights([kernel] + ([np.zeros(cout, np.float32)] if layer.use_bias else []))
