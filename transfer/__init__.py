"""Style transfer with a detector's backbone: backbone copy, features, losses, the loop.

Public API (see README):
  load_backbone(name_or_path)            -> Backbone (truncated VGG16 + preprocessing profile)
  copy_backbone(source, target)          -> CopyReport (by layer name, every shape checked)
  stylize(content, style, backbone, cfg) -> StyleResult
  load_image / save_image, LAYER_PRESETS, StyleConfig

Names are imported lazily so that `detstyle --help` does not pay for importing TensorFlow.
"""

import importlib

_EXPORTS = {
    "CopyReport": "transfer.backbone_copy", "copy_backbone": "transfer.backbone_copy",
    "Backbone": "transfer.backbones", "load_backbone": "transfer.backbones",
    "DetstyleError": "transfer.errors",
    "LAYER_PRESETS": "transfer.features", "LayerSpec": "transfer.features",
    "load_image": "transfer.images", "save_image": "transfer.images",
    "StyleConfig": "transfer.config", "StyleResult": "transfer.stylizer", "stylize": "transfer.stylizer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'transfer' has no attribute {name!r}")
