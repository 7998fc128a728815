"""Quality metrics (issue 18): orders that are known, hand-computed distances, the judge's invariances."""

import numpy as np
import pytest

from transfer.errors import ImageError
from transfer.io.images import load_image, resize_array
from transfer.io.samples import generated_style, grace_hopper_path
from transfer.quality.cross_backbone import cross_backbone_matrix
from transfer.quality.judge import JUDGE, build_judge, get_judge, judge_features, style_distances
from transfer.quality.metrics import edge_correlation, palette_distance, score, ssim_luminance
from transfer.quality.swd import directions, sliced_wasserstein

STYLE_KEYS = ("judge_gram", "judge_swd", "palette_swd")  # lower: closer to the style
CONTENT_KEYS = ("ssim", "edge_corr")  # higher: more of the content kept


@pytest.fixture(scope="module")
def trio():
    """A 48 px photo, a 64 px painted style, and three outputs at the photo's size."""
    content = load_image(grace_hopper_path(), max_side=48)
    style = generated_style(64, seed=0)
    style_out = resize_array(style, content.shape[:2])
    outputs = {"style": style_out, "blend": 0.5 * content + 0.5 * style_out, "content": content}
    return content, style, outputs


@pytest.fixture(scope="module")
def scores(trio):
    content, style, outputs = trio
    return {name: score(image, content, style) for name, image in outputs.items()}


def test_the_style_is_closest_to_the_style_and_the_content_keeps_the_content(scores):
    for key in STYLE_KEYS:
        assert min(scores, key=lambda name: scores[name][key]) == "style", key
    for key in CONTENT_KEYS:
        assert max(scores, key=lambda name: scores[name][key]) == "content", key
    assert scores["content"]["ssim"] == 1.0
    assert scores["content"]["edge_corr"] == pytest.approx(1.0, abs=1e-12)
    assert {s["judge"] for s in scores.values()} == {JUDGE.version}


@pytest.mark.parametrize("key", STYLE_KEYS + CONTENT_KEYS)
def test_a_half_blend_lies_between_content_and_style(scores, key):
    low, high = sorted((scores["style"][key], scores["content"][key]))
    assert low < scores["blend"][key] < high


def test_identical_images_are_at_zero_distance(trio):
    content, style, _ = trio
    for image in (content, style):
        result = score(image, image, image)
        assert result["judge_gram"] == pytest.approx(0.0, abs=1e-6)
        assert result["judge_swd"] == pytest.approx(0.0, abs=1e-6)
        assert result["palette_swd"] == 0.0
        assert result["ssim"] == 1.0


# CIE Lab (D65 white) of the sRGB primaries, published reference values.
RED_LAB = (53.2408, 80.0925, 67.2032)
BLUE_LAB = (32.2970, 79.1875, -107.8602)


def test_palette_distance_of_two_flat_colours_is_the_mean_squared_projected_lab_difference():
    red = np.zeros((8, 8, 3), np.float32)
    red[..., 0] = 1.0
    blue = np.zeros((12, 5, 3), np.float32)  # another size: pixel counts differ
    blue[..., 2] = 1.0
    v = directions(3, JUDGE.projections, JUDGE.projection_seed)
    np.testing.assert_allclose(np.linalg.norm(v, axis=0), 1.0, rtol=1e-12)
    expected = np.mean((np.subtract(RED_LAB, BLUE_LAB) @ v) ** 2)
    assert palette_distance(red, blue) == pytest.approx(expected, rel=1e-3)


def test_sliced_wasserstein_against_hand_computed_one_dimensional_cases():
    a = np.array([[0.0], [1.0], [2.0], [3.0]])
    b = np.array([[0.0], [3.0]])
    # quantiles on [0,1/4), [1/4,1/2), [1/2,3/4), [3/4,1): a = 0,1,2,3 and b = 0,0,3,3 -> (0+1+1+0)/4
    for sign in (1.0, -1.0):
        assert sliced_wasserstein(a, b, np.array([[sign]])) == pytest.approx(0.5, rel=1e-12)
    cloud = np.random.default_rng(0).normal(size=(50, 3))
    shift = np.array([2.0, -1.0, 0.5])
    v = directions(3, 16, 7)
    assert sliced_wasserstein(cloud, cloud + shift, v) == pytest.approx(np.mean((shift @ v) ** 2), rel=1e-9)


def test_palette_distance_ignores_how_often_a_texture_is_repeated(trio):
    _, style, _ = trio
    tile = style[:20, :24]
    assert palette_distance(tile, np.tile(tile, (2, 3, 1))) == pytest.approx(0.0, abs=1e-9)


def _scaled_judge(factor: float):
    """A fresh judge whose first and last tapped convs are `factor` times larger (zero biases)."""
    judge = build_judge()
    for name in (JUDGE.layers[0], JUDGE.layers[-1]):
        layer = judge.backbone.model.get_layer(name)
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel * factor, bias * factor])
    return judge


def test_judge_distances_do_not_depend_on_the_judges_activation_scale(trio):
    content, style, outputs = trio
    judge, scaled = get_judge(), _scaled_judge(10.0)
    plain, big = judge_features(style, judge), judge_features(style, scaled)
    for factor, p, s in zip((10, 10, 10, 10, 100), plain, big):  # ReLU and max-pool are homogeneous
        np.testing.assert_allclose(s, factor * np.asarray(p), rtol=1e-3, atol=1e-4 * factor * float(np.max(p)))
    for image in (outputs["blend"], content):
        expected, actual = style_distances(image, style, judge), style_distances(image, style, scaled)
        for key in ("judge_gram", "judge_swd"):
            assert actual[key] == pytest.approx(expected[key], rel=1e-3), key


def test_the_judge_is_reproducible_and_is_not_the_random_control(random_backbone):
    state = np.random.get_state()
    fresh, cached = build_judge(), get_judge()
    assert get_judge() is cached
    assert np.array_equal(np.random.get_state()[1], state[1])  # no global RNG touched
    kernels = [b.model.get_layer("block1_conv1").get_weights()[0] for b in (fresh.backbone, cached.backbone,
                                                                            random_backbone)]
    np.testing.assert_array_equal(kernels[0], kernels[1])
    assert abs(np.corrcoef(kernels[1].ravel(), kernels[2].ravel())[0, 1]) < 0.1
    assert cached.backbone.ref.name == JUDGE.version != random_backbone.ref.name


def test_cross_backbone_matrix(trio, random_backbone):
    content, _, outputs = trio
    style = outputs["style"]
    judge = get_judge()
    backbones = {"random": random_backbone, "judge": judge.backbone}
    matrix = cross_backbone_matrix(outputs, backbones, content, style, "gatys")
    assert set(matrix) == set(outputs) and all(set(row) == set(backbones) for row in matrix.values())
    for name in backbones:
        assert matrix["style"][name] == pytest.approx(0.0, abs=1e-6)
        assert matrix["style"][name] < matrix["blend"][name] < matrix["content"][name]
    # the judge's column is its Gram distance (same taps, same formula, another code path)
    for name, image in outputs.items():
        assert matrix[name]["judge"] == pytest.approx(style_distances(image, style)["judge_gram"], rel=1e-4, abs=1e-7)


def test_inputs_are_refused_not_coerced(trio):
    content, style, _ = trio
    with pytest.raises(ImageError, match="sizes differ"):
        ssim_luminance(style, content)
    with pytest.raises(ImageError, match="sizes differ"):
        edge_correlation(style, content)
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        palette_distance(content * 255.0, style)
    with pytest.raises(ImageError, match="sizes differ"):
        cross_backbone_matrix({"x": style}, {}, content, style, "gatys")
