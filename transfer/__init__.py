"""Style transfer with a detector's backbone: backbone copy, features, losses, the loop.

Public API (see README):
  make_spec(...)                          -> RunSpec (one immutable, hashable description of a run)
  resolve_backbone(name_or_path)          -> BackboneRef (file, sha256, profile, precision)
  load_backbone(ref_or_name)              -> Backbone (truncated VGG16 + its ref)
  copy_backbone(source, target)           -> CopyReport (by layer name, every shape checked)
  stylize(content, style, backbone, spec) -> StyleResult
  run(spec)                               -> StyleResult (loads what the spec names, then stylize)
  load_image / save_image, LAYER_PRESETS

Names are imported lazily so that `detstyle --help` does not pay for importing TensorFlow.
"""

import importlib

_EXPORTS = {
    "CopyReport": "transfer.backbones.copy", "copy_backbone": "transfer.backbones.copy",
    "Backbone": "transfer.backbones.load", "load_backbone": "transfer.backbones.load",
    "resolve_backbone": "transfer.backbones.load", "with_precision": "transfer.backbones.precision",
    "DetstyleError": "transfer.errors", "UsageError": "transfer.errors",
    "LAYER_PRESETS": "transfer.core.features", "LayerSpec": "transfer.core.features",
    "load_image": "transfer.io.images", "save_image": "transfer.io.images", "image_ref": "transfer.io.images",
    "RunSpec": "transfer.core.spec", "make_spec": "transfer.core.spec", "run": "transfer.core.run",
    "StyleResult": "transfer.core.stylizer", "stylize": "transfer.core.stylizer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'transfer' has no attribute {name!r}")
