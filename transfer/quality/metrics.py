"""How good is a stylised image: palette, content kept, and `score`, which adds the judge's style distances.

Every metric compares fixed statistics of the pixels, independent of the backbone that made
the image (the judge's distances are in `judge.py`):

  `palette_swd`  sliced Wasserstein distance (Heitz et al., CVPR 2021) between the output's
                 and the style's pixel colours in CIE Lab, where Euclidean distances roughly
                 follow perceived colour differences; the two images may differ in size.
  `ssim`         structural similarity (Wang et al., 2004) of the output's and the content's
                 luminance: whether the photo's local structure survived.  1 for the content.
  `edge_corr`    Pearson correlation of the Sobel gradient magnitudes of the two luminances:
                 whether the photo's edges are where they were.  1 for the content.

Luminance is Y of YIQ, as in the luminance-only colour transfer (`transfer.core.colour`).
Output and content are compared pixel by pixel, so they must have the same size: nothing
is resized here.
"""

from __future__ import annotations

import numpy as np
from skimage.color import rgb2lab
from skimage.filters import sobel
from skimage.metrics import structural_similarity

from transfer.core.colour import rgb_to_yiq
from transfer.quality.inputs import checked_rgb, same_size
from transfer.quality.judge import JUDGE, Judge, JudgeSpec, style_distances
from transfer.quality.swd import directions, sliced_wasserstein


def lab_pixels(image: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """`(N, 3)` CIE Lab colours of an image; more than `limit` pixels are subsampled.

    The subsample is a seeded random choice without replacement (deterministic for a given
    pixel count): a regular stride could alias with a periodic texture and miss a colour.
    """
    lab = rgb2lab(checked_rgb(image, "image").astype(np.float64)).reshape(-1, 3)
    if lab.shape[0] <= limit:
        return lab
    keep = np.random.default_rng([seed, lab.shape[0]]).choice(lab.shape[0], limit, replace=False)
    return lab[np.sort(keep)]


def palette_distance(output: np.ndarray, style: np.ndarray, spec: JudgeSpec = JUDGE) -> float:
    """Sliced Wasserstein distance of the two images' Lab colours (Lab units squared)."""
    a = lab_pixels(output, spec.palette_pixels, spec.projection_seed)
    b = lab_pixels(style, spec.palette_pixels, spec.projection_seed)
    return sliced_wasserstein(a, b, directions(3, spec.projections, spec.projection_seed))


def luminance(image: np.ndarray) -> np.ndarray:
    """Y of YIQ, (H, W) float64 in [0, 1]."""
    return rgb_to_yiq(checked_rgb(image, "image"))[..., 0]


def ssim_luminance(output: np.ndarray, content: np.ndarray) -> float:
    """SSIM of the two luminances (data range 1); images of the same size, at least 7 px a side."""
    same_size(np.asarray(output), np.asarray(content), "output and content")
    return float(structural_similarity(luminance(output), luminance(content), data_range=1.0))


def edge_correlation(output: np.ndarray, content: np.ndarray) -> float:
    """Pearson correlation of the Sobel magnitudes of the two luminances.

    Where one edge map is constant the correlation is undefined; it is then 1 if both maps
    are equal (e.g. two flat images) and 0 otherwise.
    """
    same_size(np.asarray(output), np.asarray(content), "output and content")
    a, b = sobel(luminance(output)).ravel(), sobel(luminance(content)).ravel()
    if a.std() == 0 or b.std() == 0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


def score(output: np.ndarray, content: np.ndarray, style: np.ndarray,
          judge: Judge | None = None) -> dict[str, float | str]:
    """All quality metrics of one result, and the judge's version.

    Keys: `judge_gram`, `judge_swd`, `palette_swd` (lower is closer to the style), `ssim`,
    `edge_corr` (higher keeps more of the content), `judge` (the version string).
    """
    same_size(np.asarray(output), np.asarray(content), "output and content")  # before the judge's work
    result = style_distances(output, style, judge)
    spec = judge.spec if judge is not None else JUDGE
    result["palette_swd"] = palette_distance(output, style, spec)
    result["ssim"] = ssim_luminance(output, content)
    result["edge_corr"] = edge_correlation(output, content)
    return result
