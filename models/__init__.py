"""Network definitions (no file formats here): VGG16 and SSD300."""

from models.vgg16 import VGG16, VGG16_CONV_LAYERS, conv_parameter_count, until_stage5

__all__ = ["VGG16", "VGG16_CONV_LAYERS", "conv_parameter_count", "until_stage5"]

# SSD300 (ssd.pytorch's architecture) and its detection/training helpers.
from models.multibox_loss import MultiBoxLoss, multibox_loss
from models.priors import COCO_300, VOC_300, PriorConfig, prior_boxes
from models.ssd300 import (
    L2Normalization,
    SSDTrainer,
    backbone,
    build_ssd300,
    detect,
    feature_map_sizes,
    get_vgg16,
    train_step,
)

__all__ += [
    "COCO_300",
    "L2Normalization",
    "MultiBoxLoss",
    "PriorConfig",
    "SSDTrainer",
    "VOC_300",
    "backbone",
    "build_ssd300",
    "detect",
    "feature_map_sizes",
    "get_vgg16",
    "multibox_loss",
    "prior_boxes",
    "train_step",
]
