"""A content-addressed store of finished runs: one PNG and one JSON record per run spec.

Why: a grid or a comparison is a list of independent runs; naming each result by the hash
of its `RunSpec` (inputs' bytes, backbone id, every option that changes the result) makes
reruns skip finished cells, makes Ctrl-C lose at most the running cell, and lets two jobs
that share a cell share its result.  A record is written after its image, atomically, so a
record on disk means a complete image beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from transfer.core.spec import RunSpec
from transfer.errors import DetstyleError
from transfer.io.images import atomic_write, load_image, save_image

#: Characters of the spec digest used in file names (64 bits: collisions are not a concern here).
KEY_LENGTH = 16


class RunStore:
    """Finished runs under `root`, keyed by `spec.digest()`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise DetstyleError(f"{self.root}: exists and is not a directory")

    def key(self, spec: RunSpec) -> str:
        return spec.digest()[:KEY_LENGTH]

    def image_path(self, spec: RunSpec) -> Path:
        return self.root / f"{self.key(spec)}.png"

    def record_path(self, spec: RunSpec) -> Path:
        return self.root / f"{self.key(spec)}.json"

    def record(self, spec: RunSpec) -> dict | None:
        """The record of a finished run of exactly this spec, or None (absent, partial or foreign)."""
        path = self.record_path(spec)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if record.get("spec") != spec.to_dict() or not self.image_path(spec).is_file():
            return None
        return record

    def load(self, spec: RunSpec) -> np.ndarray:
        return load_image(self.image_path(spec))

    def save(self, spec: RunSpec, image: np.ndarray, record: dict) -> dict:
        """Write the image, then the record (the record marks the run as finished); return the record."""
        self.root.mkdir(parents=True, exist_ok=True)
        save_image(image, self.image_path(spec))
        full = {**record, "spec": spec.to_dict(), "digest": spec.digest()}
        text = json.dumps(full, indent=1)
        atomic_write(self.record_path(spec), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        return full
