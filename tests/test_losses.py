import numpy as np
import tensorflow as tf

from transfer.core.losses import content_loss, gram_matrix, style_loss, total_variation_loss
from transfer.core.preprocessing import preprocess


def test_gram_matrix_matches_numpy_and_is_size_invariant_for_a_tiled_texture():
    rng = np.random.default_rng(0)
    tile = rng.normal(size=(1, 4, 4, 3)).astype(np.float32)
    flat = tile.reshape(-1, 3)
    np.testing.assert_allclose(gram_matrix(tf.constant(tile))[0], flat.T @ flat / 16, rtol=1e-5)
    big = np.tile(tile, (1, 3, 3, 1))
    np.testing.assert_allclose(gram_matrix(tf.constant(big)), gram_matrix(tf.constant(tile)), rtol=1e-5)


def test_style_and_content_losses_are_scale_invariant():
    rng = np.random.default_rng(1)
    a, b = (tf.constant(rng.normal(size=(1, 5, 5, 4)).astype(np.float32)) for _ in range(2))
    s1 = style_loss([a], [gram_matrix(b)])
    s100 = style_loss([a * 100], [gram_matrix(b * 100)])
    np.testing.assert_allclose(s1, s100, rtol=1e-4)
    np.testing.assert_allclose(content_loss([a], [b]), content_loss([a * 7], [b * 7]), rtol=1e-5)
    assert float(style_loss([b], [gram_matrix(b)])[0]) < 1e-10
    assert float(content_loss([a], [a])[0]) == 0.0


def test_total_variation_is_zero_for_flat_images_and_positive_for_noise():
    flat = tf.fill((1, 8, 8, 3), 0.5)
    noise = tf.constant(np.random.default_rng(2).uniform(size=(1, 8, 8, 3)).astype(np.float32))
    assert float(total_variation_loss(flat)[0]) == 0.0
    assert float(total_variation_loss(noise)[0]) > 0.05


def test_preprocessing_profiles():
    white = tf.ones((1, 1, 1, 3))
    red = tf.constant([[[[1.0, 0.0, 0.0]]]])
    np.testing.assert_allclose(preprocess(white, "unit"), white)
    np.testing.assert_allclose(preprocess(red, "caffe")[0, 0, 0], [-103.939, -116.779, 255 - 123.68], rtol=1e-6)
    np.testing.assert_allclose(preprocess(red, "rgb_mean")[0, 0, 0], [255 - 123, -117, -104], rtol=1e-6)
