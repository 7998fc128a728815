"""The `detstyle` command: the parser, and one place that turns errors into exit codes.

Every user error ends in one line `detstyle: error: ...` and a non-zero exit status
(2 for usage errors, 1 for everything else); `--debug` shows the traceback instead.
TensorFlow is imported only when a command needs it, so `--help` is instant.  Each
command lives in its own module (`stylize`, `demo`, `weights`).
"""

from __future__ import annotations

import argparse
import os
import sys

EXAMPLES = """\
examples:
  detstyle demo                                   # embedded defaults -> out/demo.png + out/demo_figure.png
  detstyle stylize photo.jpg painting.jpg -o out.png --size 512 --steps 300
  detstyle stylize photo.jpg painting.jpg -o out.png --layers article   # the SSD article's design
  detstyle stylize photo.jpg painting.jpg -o out.png --backbone random --seed 3
  detstyle stylize photo.jpg painting.jpg -o out.png --backbone ssd300_mAP_77.43_v2.pth
"""


def build_parser() -> argparse.ArgumentParser:
    from transfer.cli import compare, demo, grid, stylize, weights

    parser = argparse.ArgumentParser(
        prog="detstyle",
        description="Neural style transfer with the backbone of an object detector (SSD300/VGG16). "
                    "Images are optimised pixel by pixel so their VGG16 features match a content photo "
                    "and their Gram matrices match a style image.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    stylize.add_command(sub, EXAMPLES)
    demo.add_command(sub)
    compare.add_command(sub)
    grid.add_command(sub)
    weights.add_weights_commands(sub)
    return parser


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up chatter (oneDNN, CUDA probing) muted.

    TF 2.21 logs through absl before any Python setting applies, so the only reliable
    switch is to point file descriptor 2 elsewhere for the duration of the import.  The
    environment is left as it is (a library must not write it at import).
    """
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded by commands that log their command line
    if args.command is None:
        parser.print_help()
        return 2
    if not args.debug:
        _import_tensorflow_quietly()
    from transfer.errors import DetstyleError, UsageError
    from transfer.io.run_state import Interrupted
    from weights.errors import WeightsError

    try:
        return args.func(args)
    except Interrupted as exc:
        print(f"detstyle: {exc}", file=sys.stderr)
        return 130
    except (DetstyleError, WeightsError) as exc:
        if args.debug:
            raise
        print(f"detstyle: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        print("detstyle: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
