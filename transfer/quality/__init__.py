"""Quality metrics for stylised images (issue 18), independent of the backbone that made them.

  score(output, content, style)  -> {"judge_gram", "judge_swd", "palette_swd", "ssim", "edge_corr", "judge"}
  style_distances(output, style) -> the judge's two style distances and its version
  palette_distance, ssim_luminance, edge_correlation: the single metrics
  cross_backbone_matrix(outputs, backbones, content, style, layers) -> every output under every backbone's loss
  JUDGE, JudgeSpec, get_judge, build_judge: the fixed, versioned judge network

Names are imported lazily, like `transfer`'s, so importing the package does not load TensorFlow.
"""

import importlib

_EXPORTS = {
    "JUDGE": "transfer.quality.judge", "JudgeSpec": "transfer.quality.judge", "Judge": "transfer.quality.judge",
    "build_judge": "transfer.quality.judge", "get_judge": "transfer.quality.judge",
    "style_distances": "transfer.quality.judge",
    "score": "transfer.quality.metrics", "palette_distance": "transfer.quality.metrics",
    "ssim_luminance": "transfer.quality.metrics", "edge_correlation": "transfer.quality.metrics",
    "cross_backbone_matrix": "transfer.quality.cross_backbone",
    "sliced_wasserstein": "transfer.quality.swd",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'transfer.quality' has no attribute {name!r}")
