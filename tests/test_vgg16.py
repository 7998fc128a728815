import numpy as np

from models.vgg16 import VGG16, VGG16_CONV_LAYERS, conv_parameter_count, until_stage5


def test_layer_names_match_keras_applications():
    model = VGG16()
    names = [layer.name for layer in model.layers[1:]]
    expected = []
    for block, convs in zip(range(1, 6), (2, 2, 3, 3, 3)):
        expected += [f"block{block}_conv{i}" for i in range(1, convs + 1)] + [f"block{block}_pool"]
    assert names == expected


def test_conv_parameter_count_is_the_standard_vgg16():
    assert conv_parameter_count(VGG16()) == 14_714_688


def test_until_stage5_is_17_layers_through_block5_conv3_and_shares_weights():
    model = VGG16()
    truncated = until_stage5(model)
    layers = truncated.layers[1:]
    assert len(layers) == 17
    assert layers[-1].name == "block5_conv3"
    assert [l.name for l in layers if "conv" in l.name] == list(VGG16_CONV_LAYERS)
    assert truncated.get_layer("block1_conv1") is model.get_layer("block1_conv1")


def test_any_input_size_and_stride_16_at_block5_conv3():
    truncated = until_stage5(VGG16())
    out = truncated.predict(np.zeros((1, 48, 80, 3), np.float32), verbose=0)
    assert tuple(out.shape) == (1, 3, 5, 512)


def test_include_top_matches_keras_shapes():
    model = VGG16(input_shape=(32, 32, 3), include_top=True, classes=10)
    assert model.get_layer("fc1").kernel.shape == (512, 4096)
    assert tuple(model.output.shape) == (None, 10)
