"""Shared fixtures: small images and backbones built once per session."""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a plain checkout too, not only after `pip install -e .`
    sys.path.insert(0, str(ROOT))
SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"


@pytest.fixture(scope="session")
def random_backbone():
    from transfer.backbones import load_backbone

    return load_backbone("random", seed=0)


@pytest.fixture(scope="session")
def small_pair():
    """A 32x32 content (smooth gradient with a square) and a striped style."""
    y, x = np.mgrid[0:32, 0:32] / 31.0
    content = np.stack([x, y, 0.5 * np.ones_like(x)], -1).astype(np.float32)
    content[8:24, 8:24] = [0.9, 0.9, 0.2]
    style = np.zeros((32, 32, 3), np.float32)
    style[:, ::4] = [0.1, 0.2, 0.9]
    style[:, 2::4] = [0.9, 0.3, 0.1]
    return content, style


@pytest.fixture
def shared_image():
    """Path of a real image in ../shared/images, or skip when the folder is absent."""

    def get(name: str) -> Path:
        path = SHARED_IMAGES / name
        if not path.is_file():
            pytest.skip(f"{path} not present (../shared/images is optional)")
        return path

    return get
