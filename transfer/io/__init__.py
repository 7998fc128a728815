"""Files in and out: images, atomic writes, figures, resumable run state, the demo's samples."""
