"""Seed recipes: each seed document's loss, layers, weights, optimiser and init, exactly.

Users reproduce what they read; the bench compares against them.  Our own default
(`NormalisedObjective`) is separate.  Every recipe runs on this toolkit's VGG16 (the
seeds used VGG19 or the SSD's VGG16) with the chosen backbone's weights and profile.

| recipe   | seed | image space          | style                                   | content                  | TV                         | optimiser |
|----------|------|----------------------|-----------------------------------------|--------------------------|----------------------------|-----------|
| tutorial | 000  | RGB [0,1], clipped   | mean (G-A)^2, G/(HW), x 1e-2/5          | mean sq. x 1e4           | 30 x sum abs (L1)          | Adam 0.02, b1 0.99, eps 0.1; 1000 steps |
| keras    | 001  | caffe space, free    | sum (S-C)^2 / (4 * 3^2 * (HW_img)^2) x 1/5 | 0.025 x sum sq.       | sum (dx^2+dy^2)^1.25       | L-BFGS (m 10); 10 x 20 evals |
| article  | 003  | RGB 0-255, clipped   | mean (F-T)^2 of raw features, first five layers | 0.001 x 0.5 sum sq. | none                       | Adam: not in the text; the tutorial's (b1 0.99, eps 0.1) with lr 0.02 x 255 for 0-255 pixels, as bench/reference_article.py |
| coursera | 004  | mean-subtracted RGB  | sum 0.2 x (GS-GG)^2/(4 nC^2 (nH nW)^2)  | sum sq./(4 nH nW nC), block4_conv2 | none          | Adam 2.0, 200 steps, 60 % noise init |

Notes: the Keras example writes `channels = 3` in its style normaliser (not the layer's
channel count) and uses the *input* image's H*W: reproduced as written.  The article
compares raw feature maps, not Gram matrices, so its style image is resized to the content
size.  The course notes' noise init is `uniform(-20, 20) * 0.6 + content * 0.4` in
mean-subtracted space.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from transfer.core.objective import Objective
from transfer.core.preprocessing import CAFFE_BGR_MEAN, preprocess
from transfer.io.images import resize_array


def _sum_hw(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(x, axis=list(range(1, len(x.shape))))


def _mean_hw(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(x, axis=list(range(1, len(x.shape))))


def _raw_gram(feature: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(feature)
    flat = tf.reshape(feature, (shape[0], -1, shape[3]))
    return tf.matmul(flat, flat, transpose_a=True)


def charbonnier_total_variation(images: tf.Tensor, eps) -> tf.Tensor:
    """A smooth stand-in for `tf.image.total_variation` (the L1 sum of neighbour differences).

    Each |d| becomes sqrt(d^2 + eps^2) - eps: smooth everywhere, never above |d|, and within
    eps of it per difference, so it converges to the exact L1 sum as eps -> 0.  Per image.
    """
    eps = tf.cast(eps, images.dtype)
    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    smooth = lambda d: _sum_hw(tf.sqrt(tf.square(d) + tf.square(eps)) - eps)  # noqa: E731
    return smooth(dy) + smooth(dx)


class TutorialObjective(Objective):
    """Seed 000, the TensorFlow tutorial (with its total-variation section).

    Option (used by `--schedule fast`): `with_tv_eps(eps)` replaces the exact L1 TV by
    `charbonnier_total_variation`; `tv_eps` None (the default) is the tutorial's exact loss.
    """

    has_l1_tv = True
    l1_tv_weight = 30.0

    def smooth_terms(self, param):
        """Style and content (weighted) and their sum as `"total"`: the loss less its TV."""
        style, content = self.features(param)
        n_s, n_c = len(style), len(content)
        s = tf.add_n([_mean_hw(tf.square(self.style_statistic(f) - t)) for f, t in zip(style, self.style_targets)])
        c = tf.add_n([_mean_hw(tf.square(f - t)) for f, t in zip(content, self.content_targets)])
        terms = {"style": s * (1e-2 / n_s), "content": c * (1e4 / n_c)}
        terms["total"] = terms["style"] + terms["content"]
        return terms

    def terms(self, param):
        smooth = self.smooth_terms(param)
        if self.tv_eps is None:
            tv = tf.cast(tf.image.total_variation(param), tf.float32)
        else:
            tv = charbonnier_total_variation(tf.cast(param, tf.float32), self.tv_eps)
        terms = {"style": smooth["style"], "content": smooth["content"], "tv": self.l1_tv_weight * tv}
        terms["total"] = terms["style"] + terms["content"] + terms["tv"]
        return terms


class KerasObjective(Objective):
    """Seed 001, the Keras example: parameters live in caffe space, unbounded."""

    lower = upper = None

    def to_param(self, pixels):
        return preprocess(tf.constant(np.asarray(pixels, np.float32)), "caffe").numpy()

    def to_pixels(self, param):
        rgb = (np.asarray(param, np.float32) + np.array(CAFFE_BGR_MEAN, np.float32))[..., ::-1] / 255.0
        return np.clip(rgb, 0.0, 1.0)

    def network_input(self, param):
        return param  # already caffe-preprocessed, as in the example

    def style_statistic(self, feature):
        return _raw_gram(feature)

    def terms(self, param):
        style, content = self.features(param)
        size = tf.cast(tf.shape(param)[1] * tf.shape(param)[2], tf.float32)
        channels = 3.0  # sic: the example's constant
        s = tf.add_n([_sum_hw(tf.square(t - self.style_statistic(f))) / (4.0 * channels**2 * size**2)
                      for f, t in zip(style, self.style_targets)]) * (1.0 / len(style))
        c = 0.025 * tf.add_n([_sum_hw(tf.square(f - t)) for f, t in zip(content, self.content_targets)])
        a = tf.square(param[:, :-1, :-1, :] - param[:, 1:, :-1, :])
        b = tf.square(param[:, :-1, :-1, :] - param[:, :-1, 1:, :])
        tv = _sum_hw(tf.pow(a + b, 1.25))
        terms = {"style": s, "content": c, "tv": tv}
        terms["total"] = s + c + tv
        return terms


class ArticleObjective(Objective):
    """Seed 003, the SSD-backbone article: raw-feature style loss, pixels 0-255."""

    upper = 255.0

    def to_param(self, pixels):
        return np.asarray(pixels, np.float32) * 255.0

    def to_pixels(self, param):
        return np.clip(np.asarray(param, np.float32) / 255.0, 0.0, 1.0)

    def network_input(self, param):
        return preprocess(param / 255.0, self.backbone.profile)

    def style_statistic(self, feature):
        return feature  # the article compares feature maps directly

    def prepare_styles(self, contents, styles):
        size = contents.shape[1:3]
        return [(resize_array(img, size), w) for img, w in styles]

    def terms(self, param):
        style, content = self.features(param)
        s = tf.add_n([_mean_hw(tf.square(f - t)) for f, t in zip(style, self.style_targets)])
        c = tf.add_n([0.5 * _sum_hw(tf.square(f - t)) for f, t in zip(content, self.content_targets)])
        terms = {"style": s, "content": 0.001 * c, "tv": tf.zeros_like(s)}
        terms["total"] = terms["style"] + terms["content"]
        return terms


class CourseraObjective(Objective):
    """Seed 004, the deeplearning.ai course notes: normalised costs, alpha 10, beta 40."""

    lower = upper = None
    MEAN_RGB = np.array([123.68, 116.779, 103.939], np.float32)

    def to_param(self, pixels):
        return np.asarray(pixels, np.float32) * 255.0 - self.MEAN_RGB

    def to_pixels(self, param):
        return np.clip((np.asarray(param, np.float32) + self.MEAN_RGB) / 255.0, 0.0, 1.0)

    def network_input(self, param):
        return preprocess((param + self.MEAN_RGB) / 255.0, self.backbone.profile)

    def style_statistic(self, feature):
        return _raw_gram(feature)

    def terms(self, param):
        style, content = self.features(param)
        j_style = 0.0
        for f, t in zip(style, self.style_targets):
            n_h, n_w, n_c = (tf.cast(d, tf.float32) for d in (tf.shape(f)[1], tf.shape(f)[2], tf.shape(f)[3]))
            j_style += 0.2 * _sum_hw(tf.square(t - self.style_statistic(f))) / (4.0 * n_c**2 * (n_h * n_w) ** 2)
        j_content = 0.0
        for f, t in zip(content, self.content_targets):
            n_h, n_w, n_c = (tf.cast(d, tf.float32) for d in (tf.shape(f)[1], tf.shape(f)[2], tf.shape(f)[3]))
            j_content += _sum_hw(tf.square(t - f)) / (4.0 * n_h * n_w * n_c)
        terms = {"style": 40.0 * j_style, "content": 10.0 * j_content, "tv": tf.zeros_like(j_style)}
        terms["total"] = terms["style"] + terms["content"]
        return terms


#: recipe name (`transfer.seeds.registry.RECIPE_NAMES`) -> its objective class.
RECIPE_OBJECTIVES: dict[str, type[Objective]] = {
    "tutorial": TutorialObjective,
    "keras": KerasObjective,
    "article": ArticleObjective,
    "coursera": CourseraObjective,
}


def coursera_noise_init(content: np.ndarray, seed: int, noise_ratio: float = 0.6) -> np.ndarray:
    """The course notes' `generate_noise_image`, returned as [0, 1] pixels (may be clipped)."""
    rng = np.random.default_rng(seed)
    mean_subtracted = content * 255.0 - CourseraObjective.MEAN_RGB
    noise = rng.uniform(-20, 20, content.shape).astype(np.float32)
    mixed = noise * noise_ratio + mean_subtracted * (1 - noise_ratio)
    return (mixed + CourseraObjective.MEAN_RGB) / 255.0


#: recipe name -> its own noise init `(contents, seed) -> pixels` (others use seeded uniform noise).
NOISE_INITS = {"coursera": coursera_noise_init}
