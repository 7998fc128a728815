"""Network definitions (no file formats here): VGG16 and SSD300."""

from models.vgg16 import VGG16, VGG16_CONV_LAYERS, conv_parameter_count, until_stage5

__all__ = ["VGG16", "VGG16_CONV_LAYERS", "conv_parameter_count", "until_stage5"]
