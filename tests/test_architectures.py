"""Issue 18: VGG19 and ResNet50 next to VGG16, per-architecture presets, and SWAG.

Oracles: the weight files are written by Keras itself (its legacy HDF5 writer, the layout
of the published notop files, and Keras 3 `save_weights`) from `keras.applications` models
filled with seeded values, and must come back bit-exact by name, BatchNorm statistics
included; registry checksums are compared with the ones in Keras's own source; SWAG is
checked against values computed by hand from the paper's formula.
"""

from __future__ import annotations

import inspect
import math
import warnings

import h5py
import keras
import numpy as np
import pytest

from transfer.backbones.architectures import ARCHITECTURES, build_model, layer_preset
from transfer.backbones.load import load_backbone, resolve_backbone
from transfer.core.spec import BackboneRef, RunSpec, make_spec
from transfer.errors import DetstyleError, UsageError
from weights.errors import WeightsError
from weights.registry import REGISTRY

#: Layers of each keras.applications network past its cut (read from the file, never copied).
PAST_THE_CUT = {"vgg19": ["block5_conv2", "block5_conv3", "block5_conv4"], "resnet50": []}
#: A deep tap of each network, for the calibration check.
DEEP_TAP = {"vgg19": "block5_conv1", "resnet50": "conv5_block3_out"}


def _seeded_application(architecture: str, seed: int) -> keras.Model:
    """`keras.applications` notop network (weights=None) with every weight drawn from `seed`."""
    factory = getattr(keras.applications, ARCHITECTURES[architecture].application)
    model = factory(include_top=False, weights=None, input_shape=(None, None, 3))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = [rng.uniform(0.5, 2.0, w.shape) if w.name == "moving_variance" else rng.normal(0, 0.05, w.shape)
                  for w in layer.weights]
        if values:
            layer.set_weights([v.astype(np.float32) for v in values])
    return model


def _write(model: keras.Model, directory, writer: str):
    """The file Keras writes: its legacy HDF5 layout (the published notop files) or Keras 3's."""
    with warnings.catch_warnings():  # both writers call np.array on Variables: numpy 2's copy-keyword notice
        warnings.simplefilter("ignore", DeprecationWarning)
        if writer == "legacy-h5":
            from keras.src.legacy.saving import legacy_h5_format

            path = directory / f"{model.name}_fixture.h5"
            with h5py.File(path, "w") as f:
                legacy_h5_format.save_weights_to_hdf5_group(f, model)
        else:
            path = directory / f"{model.name}_fixture.weights.h5"
            model.save_weights(path)
    return path


@pytest.fixture(scope="module")
def sources():
    return {name: _seeded_application(name, seed) for name, seed in (("vgg19", 1), ("resnet50", 2))}


@pytest.fixture(scope="module")
def random_resnet50():
    return load_backbone("random-resnet50", seed=0)


# ------------------------------------------------------------------------- registry and presets


def test_registry_names_every_architecture_and_keras_checksums():
    from keras.src.applications import resnet, vgg19

    for arch in ARCHITECTURES.values():
        control = REGISTRY[arch.random_control]
        assert control.filename is None and control.architecture == arch.name
        assert resolve_backbone(arch.random_control).architecture == arch.name
    assert REGISTRY["random"].architecture == "vgg16"  # `random` stays the VGG16 control
    vgg, res = REGISTRY["vgg19-imagenet"], REGISTRY["resnet50-imagenet"]
    assert (vgg.architecture, res.architecture) == ("vgg19", "resnet50")
    assert f'file_hash="{vgg.md5}"' in inspect.getsource(vgg19) and vgg.filename in inspect.getsource(vgg19)
    assert res.md5 == resnet.WEIGHTS_HASHES["resnet50"][1]
    assert res.filename == "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    for entry in (vgg, res):
        assert (entry.layout, entry.preprocessing_profile) == ("keras-h5-legacy", "caffe")
        assert entry.url.endswith(entry.filename)


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_presets_are_taps_of_the_network_cut_after_the_deepest(architecture):
    arch = ARCHITECTURES[architecture]
    model = build_model(architecture)
    order = [layer.name for layer in model.layers]
    taps = {n for p in arch.presets.values() for n in (*p.style, *p.content)}
    assert taps <= set(order), taps - set(order)
    assert order[-1] == arch.cut_after
    # VGG16 keeps the article's truncation (block5_conv3, so "layer -2" is block5_conv2);
    # the others stop at their deepest tap
    deepest = "block5_conv2" if architecture == "vgg16" else arch.cut_after
    assert max(taps, key=order.index) == deepest


def test_presets_resolve_against_the_backbone_architecture():
    vgg19 = BackboneRef("random-vgg19", None, "caffe", architecture="vgg19")
    resnet = BackboneRef("random-resnet50", None, "caffe", architecture="resnet50")
    assert make_spec().content_layers == ("block5_conv2",)  # VGG16 unchanged
    assert make_spec(backbone=vgg19).layers == layer_preset("vgg19", "gatys")
    assert make_spec(backbone=vgg19).content_layers == ("block4_conv2",)
    assert make_spec(backbone=resnet).style_layers[-1] == "conv5_block3_out"
    with pytest.raises(UsageError, match="vgg19 has no layer preset 'article'; its presets: gatys"):
        make_spec(layers="article", backbone=vgg19)
    with pytest.raises(UsageError, match="resnet50 has no layer preset 'gatys'; its presets: stages"):
        make_spec(layers="gatys", backbone=resnet)
    mine = make_spec(style_layers=("conv1_relu",), content_layers=("conv3_block4_out",), backbone=resnet)
    assert (mine.style_layers, mine.content_layers) == (("conv1_relu",), ("conv3_block4_out",))
    with pytest.raises(UsageError, match="defined on VGG16"):
        make_spec(recipe="tutorial", backbone=resnet)
    with pytest.raises(UsageError, match="unknown architecture"):
        make_spec(backbone=BackboneRef("x.h5", "a" * 64, "caffe", architecture="alexnet"))


def test_the_command_line_takes_every_architectures_presets_and_the_transform():
    from transfer.cli.main import build_parser

    args = build_parser().parse_args(["stylize", "c.png", "s.png", "-o", "o.png", "--backbone", "random-resnet50",
                                      "--layers", "stages", "--style-transform", "swag"])
    assert (args.layers, args.style_transform) == ("stages", "swag")


# ------------------------------------------------------------------------- loading Keras files


@pytest.mark.parametrize("writer", ["legacy-h5", "keras3"])
@pytest.mark.parametrize("architecture", ["vgg19", "resnet50"])
def test_keras_written_weights_load_by_name_bit_exact(sources, tmp_path, architecture, writer):
    source = sources[architecture]
    path = _write(source, tmp_path, writer)
    ref = resolve_backbone(str(path), architecture=architecture)
    assert (ref.architecture, ref.profile, ref.sha256 is not None) == (architecture, "caffe", True)
    backbone = load_backbone(ref)
    weighted = [layer for layer in backbone.model.layers if layer.weights]
    assert backbone.report.ok and backbone.report.copied == [layer.name for layer in weighted]
    assert backbone.report.unused == PAST_THE_CUT[architecture]
    for layer in weighted:
        want = source.get_layer(layer.name).get_weights()
        got = layer.get_weights()
        assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want)), layer.name
    if architecture == "resnet50":  # BatchNorm: four (C,) vectors, told apart by name only
        bn = backbone.model.get_layer("conv4_block6_3_bn")
        assert [w.name for w in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
        assert np.array_equal(bn.moving_variance.numpy(), source.get_layer("conv4_block6_3_bn").moving_variance.numpy())
        assert len(weighted) == 53 + 53  # 53 convs, each followed by a BatchNorm


def test_wrong_architecture_or_unverified_registry_file_is_refused(sources, tmp_path):
    path = _write(sources["vgg19"], tmp_path, "legacy-h5")
    with pytest.raises(DetstyleError, match="nothing copied.*missing in source"):
        load_backbone(resolve_backbone(str(path), architecture="resnet50"))
    named = tmp_path / REGISTRY["vgg19-imagenet"].filename  # checked against the published size and md5
    named.write_bytes(path.read_bytes())
    with pytest.raises(WeightsError, match="expected 80,134,624"):
        resolve_backbone(str(named))
    with pytest.raises(DetstyleError, match="random-resnet50 is a resnet50"):
        load_backbone(BackboneRef("random-resnet50", None, "caffe"))


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # Keras's own writer
def test_the_toolkits_own_file_of_a_resnet50_names_its_architecture(random_resnet50, tmp_path):
    from transfer.backbones.convert import save_backbone

    path = save_backbone(random_resnet50, tmp_path / "mine.weights.h5", source="test: random-resnet50 seed 0")
    ref = resolve_backbone(str(path))  # the sidecar says resnet50
    assert ref.architecture == "resnet50"
    again = load_backbone(ref)
    assert again.report.ok and not again.report.unused
    for layer in random_resnet50.model.layers:
        if layer.weights:
            got = again.model.get_layer(layer.name).get_weights()
            assert all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), got)), layer.name


# ------------------------------------------------------------------------- the random controls


@pytest.mark.parametrize("architecture", ["vgg19", "resnet50"])
def test_random_controls_are_calibrated(architecture):
    from transfer.backbones.random_control import calibration_image, random_backbone
    from transfer.core.features import LayerSpec, feature_model
    from transfer.core.preprocessing import preprocess

    np.random.seed(7)
    expected_draw = np.random.random()
    np.random.seed(7)
    control = random_backbone(seed=1, architecture=architecture)
    assert np.random.random() == expected_draw  # the global RNG is untouched
    assert control.ref == BackboneRef(ARCHITECTURES[architecture].random_control, None, "caffe",
                                      architecture=architecture)
    first = next(layer.name for layer in control.model.layers if isinstance(layer, keras.layers.Conv2D))
    probe = feature_model(control.model, LayerSpec((first,), (DEEP_TAP[architecture],)))
    _, deep = probe(preprocess(calibration_image()[None], "caffe"))
    # unit-variance pre-activations; ResNet's residual sums add up to a few units of variance
    assert 0.1 < float(np.mean(np.square(deep))) < 20.0
    if architecture == "resnet50":
        bn = control.model.get_layer("conv2_block1_1_bn").get_weights()
        assert [float(np.unique(w)[0]) for w in bn] == [1.0, 0.0, 0.0, 1.0]  # BatchNorm at identity


def test_bf16_resnet_keeps_every_weight(random_resnet50):
    from transfer.backbones.precision import with_precision

    half = with_precision(random_resnet50, "bf16")
    assert half.ref.precision == "bf16" and half.ref.architecture == "resnet50"
    for layer in random_resnet50.model.layers:
        if layer.weights:
            other = half.model.get_layer(layer.name)
            assert all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), other.get_weights())), layer.name
    assert half.model(np.zeros((1, 32, 32, 3), np.float32)).dtype == "bfloat16"


# ------------------------------------------------------------------------- SWAG


def test_swag_is_the_papers_softmax_computed_by_hand():
    import tensorflow as tf

    from transfer.core.losses import gram_matrix
    from transfer.core.style_transforms import STYLE_TRANSFORMS, swag_softmax

    # one image, H=1, W=2, C=2: position 0 holds channels (ln 1, ln 2), position 1 (ln 3, ln 4)
    f = np.log(np.array([1.0, 2.0, 3.0, 4.0], np.float32)).reshape(1, 1, 2, 2)
    # sigma(F)_ik = exp(F_ik / T) / sum_jm exp(F_jm / T) over all C*H*W entries: T=1 -> (1, 2, 3, 4) / 10
    np.testing.assert_allclose(swag_softmax(f, 1.0).numpy().ravel(), [0.1, 0.2, 0.3, 0.4], rtol=1e-6)
    root = np.sqrt([1.0, 2.0, 3.0, 4.0])  # T=2: exp(ln(x) / 2) = sqrt(x)
    np.testing.assert_allclose(swag_softmax(f, 2.0).numpy().ravel(), root / (1 + 1.41421356 + 1.73205081 + 2),
                               rtol=1e-6)
    # per image: a second image shifted by +5 (softmax is shift-invariant) gives the same values
    pair = swag_softmax(np.concatenate([f, f + 5.0]), 1.0).numpy()
    np.testing.assert_allclose(pair[0], pair[1], rtol=1e-5)
    np.testing.assert_allclose(pair[0].ravel(), [0.1, 0.2, 0.3, 0.4], rtol=1e-6)
    # the style statistic: Gram of sigma(F) over H*W = 2 positions, by hand
    gram = gram_matrix(tf.constant(STYLE_TRANSFORMS["swag"](f))).numpy()[0]
    np.testing.assert_allclose(gram, [[(0.01 + 0.09) / 2, (0.02 + 0.12) / 2],
                                      [(0.02 + 0.12) / 2, (0.04 + 0.16) / 2]], rtol=1e-5)
    assert STYLE_TRANSFORMS["swag"].temperature == 1.0 and math.isclose(gram[0, 0], 0.05, rel_tol=1e-5)


def test_the_objective_applies_swag_to_style_taps_only(random_backbone, small_pair):
    from transfer.core.features import LAYER_PRESETS, LayerSpec, feature_model
    from transfer.core.losses import gram_matrix
    from transfer.core.objective import NormalisedObjective
    from transfer.core.preprocessing import preprocess
    from transfer.core.style_transforms import swag_softmax

    content, style = small_pair
    gatys = LAYER_PRESETS["gatys"]
    layers = LayerSpec(gatys.style, gatys.content, "swag")
    objective = NormalisedObjective(random_backbone, layers, content[None], [(style, 1.0)],
                                    style_weight=1.0, content_weight=0.05, tv_weight=1.0)
    raw = feature_model(random_backbone.model, gatys)
    style_feats = raw(preprocess(style[None], "caffe"))[: len(gatys.style)]
    for target, feature in zip(objective.style_targets, style_feats):
        np.testing.assert_allclose(target.numpy(), gram_matrix(swag_softmax(feature)).numpy(), rtol=1e-4, atol=1e-12)
    content_feat = raw(preprocess(content[None], "caffe"))[-1]
    np.testing.assert_allclose(objective.content_targets[0].numpy(), content_feat.numpy(), rtol=1e-5, atol=1e-5)


def test_style_transform_is_a_spec_field_refused_with_a_recipe():
    spec = make_spec(style_transform="swag")
    assert spec.layers.style_transform == "swag" and spec.digest() != make_spec().digest()
    assert RunSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(UsageError, match="--style-transform would be ignored: --recipe tutorial fixes its own loss"):
        make_spec(recipe="tutorial", style_transform="swag")
    with pytest.raises(UsageError, match="--style-transform must be one of swag"):
        make_spec(style_transform="softmax")


def test_a_spec_saved_before_these_fields_still_matches_its_run():
    spec = make_spec(backbone=BackboneRef("random", None, "caffe"))
    saved = spec.to_dict()
    del saved["style_transform"], saved["backbone"]["architecture"]  # a pre-issue-18 resume state
    assert spec.differences(saved) == []
    assert make_spec(style_transform="swag", backbone=spec.backbone).differences(saved) == ["style_transform"]


# ------------------------------------------------------------------------- full runs


def test_a_random_resnet50_run_lowers_its_loss_and_swag_changes_it(random_resnet50, small_pair):
    from transfer.core.stylizer import stylize

    content, style = small_pair
    results = {}
    for transform in (None, "swag"):
        spec = make_spec(steps=2, backbone=random_resnet50.ref, style_transform=transform)
        assert spec.style_layers[0] == "conv1_relu"
        result = stylize(content, style, random_resnet50, spec)
        assert result.history[-1]["total"] < result.history[0]["total"]
        results[transform] = result
    assert results[None].history[0]["style"] != pytest.approx(results["swag"].history[0]["style"], rel=1e-3)
    assert np.abs(results[None].image - results["swag"].image).max() > 1e-3


def test_stylize_command_with_random_resnet50_and_swag(tmp_path, small_pair, capsys):
    from transfer.cli.main import main
    from transfer.io.images import save_image

    content, style = small_pair
    save_image(content, tmp_path / "c.png")
    save_image(style, tmp_path / "s.png")
    common = ["stylize", str(tmp_path / "c.png"), str(tmp_path / "s.png"), "--size", "32", "--steps", "2", "--quiet"]
    assert main([*common, "-o", str(tmp_path / "o.png"), "--backbone", "random-resnet50",
                 "--style-transform", "swag"]) == 0
    assert (tmp_path / "o.png").is_file()
    assert main([*common, "-o", str(tmp_path / "x.png"), "--backbone", "random-resnet50", "--layers", "gatys"]) == 2
    assert "resnet50 has no layer preset 'gatys'; its presets: stages" in capsys.readouterr().err
