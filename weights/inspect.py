"""A plain-text table of a checkpoint, for `detstyle weights inspect`."""

from __future__ import annotations

from weights.checkpoint import Checkpoint

_FORMATS = {
    "legacy": "torch legacy pickle stream (torch < 1.6)",
    "zip": "torch zip archive (torch >= 1.6)",
    "hdf5": "HDF5",
}


def format_name(checkpoint: Checkpoint) -> str:
    """Human name of the file format, from the reader's meta and layout."""
    serialisation = checkpoint.meta.get("serialisation")
    if serialisation in _FORMATS:
        name = _FORMATS[serialisation]
        if serialisation == "hdf5":
            name += " (Keras 3 .weights.h5)" if checkpoint.layout == "keras3-weights-h5" else " (Keras legacy weights)"
        return name
    if checkpoint.layout.startswith("onnx") or "opset" in checkpoint.meta:
        return "ONNX"
    return str(serialisation or "unknown")


def describe(checkpoint: Checkpoint, *, max_rows: int | None = None) -> str:
    """Header (file, format, layout, classes, notes, totals) then one row per tensor."""
    meta = checkpoint.meta
    lines = []
    if checkpoint.source is not None:
        size = meta.get("file_size")
        if size is None:
            try:
                size = checkpoint.source.stat().st_size
            except OSError:
                size = None
        lines.append(f"file:        {checkpoint.source}" + (f" ({size:,} bytes)" if size else ""))
    lines.append(f"format:      {format_name(checkpoint)}")
    lines.append(f"layout:      {checkpoint.layout}")
    for key in ("archive_version", "protocol_version", "byteorder", "keras_version", "opset", "producer"):
        if meta.get(key) not in (None, ""):
            lines.append(f"{key + ':':<12} {meta[key]}")
    if meta.get("module_prefix_stripped"):
        lines.append("note:        a DataParallel 'module.' prefix was removed from the keys")
    if meta.get("nested_under"):
        lines.append(f"note:        the state dict was nested under {meta['nested_under']!r}")
    for note in meta.get("notes", []):
        lines.append(f"note:        {note}")
    for problem in meta.get("problems", []):
        lines.append(f"problem:     {problem}")
    tensors = checkpoint.tensors
    dtypes = sorted({str(a.dtype) for a in tensors.values()})
    lines.append(
        f"tensors:     {len(tensors)}, parameters {checkpoint.parameter_count:,}, dtypes {', '.join(dtypes) or '-'}"
    )
    rows = [(name, "x".join(map(str, a.shape)) or "scalar", str(a.dtype), f"{a.size:,}") for name, a in tensors.items()]
    shown = rows if max_rows is None else rows[:max_rows]
    if shown:
        widths = [max(len(r[i]) for r in shown + [("name", "shape", "dtype", "params")]) for i in range(4)]
        header = ("name", "shape", "dtype", "params")
        lines.append("")
        lines.append("  ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
        for row in shown:
            lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    if len(shown) < len(rows):
        lines.append(f"... {len(rows) - len(shown)} more")
    return "\n".join(lines)
