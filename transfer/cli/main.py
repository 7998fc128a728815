"""The `detstyle` command: the parser, and one place that turns errors into exit codes.

Every user error ends in one line `detstyle: error: ...` and a non-zero exit status
(2 for usage errors, 1 for everything else); `--debug` shows the traceback instead.
TensorFlow is imported only when a command needs it, so `--help` is instant.  Each
command lives in its own module (`stylize`, `demo`, `weights`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

EXAMPLES = """\
examples:
  detstyle demo                                   # embedded defaults -> out/demo.png + out/demo_figure.png
  detstyle stylize photo.jpg painting.jpg -o out.png --size 512 --steps 300
  detstyle stylize photo.jpg painting.jpg -o out.png --layers article   # the SSD article's design
  detstyle stylize photo.jpg painting.jpg -o out.png --backbone random --seed 3
  detstyle stylize photo.jpg painting.jpg -o out.png --backbone ssd300_mAP_77.43_v2.pth
  detstyle make-voc shapes/ --images 200 && detstyle train-detector --data shapes/ --init vgg16-mri --steps 2000 -o run/
  detstyle pipeline --data shapes/ --init vgg16-mri --train-steps 2000 --content photo.jpg --styles starry.jpg -o fig/
  detstyle video clip.gif -o clip_styled.gif --style painting.jpg --init prevwarped --temporal-weight 1
  detstyle grid --contents photos/ --styles paintings/ -o grid.png --engine ray --address auto
  detstyle serve                                  # a local web page on http://127.0.0.1:8000
"""


def build_parser() -> argparse.ArgumentParser:
    from transfer.cli import compare, demo, detector, grid, pipeline, serve, stylize, video, weights

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
    detector.add_commands(sub)
    pipeline.add_command(sub)
    video.add_command(sub)
    serve.add_command(sub)
    _add_limit_option(parser)
    return parser


def _add_limit_option(parser: argparse.ArgumentParser) -> None:
    """`--limit NAME=N` on every command (nested ones included): one validation path for all."""
    from transfer.limits import LIMIT_NAMES, Limits

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                _add_limit_option(command)
    if parser.get_default("func") is None:
        return
    defaults = ", ".join(f"{name}={getattr(Limits(), name):,}" for name in LIMIT_NAMES)
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=N",
                        help=f"raise or lower a resource limit for this run, e.g. --limit output_pixels=16e6 or "
                             f"--limit checkpoint_bytes=8G (defaults: {defaults})")


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
    """Run one command; Ctrl-C at any moment (even while TensorFlow loads) ends in one line, exit 130."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("detstyle: interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its usage line; a caller in this process gets the status
        return exc.code if isinstance(exc.code, int) else 2
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded by commands that log their command line
    if args.command is None or getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    if not args.debug:
        _import_tensorflow_quietly()
    from transfer.errors import DetstyleError, UsageError
    from transfer.io.run_state import Interrupted
    from weights.errors import WeightsError

    try:
        with _notices(), _limits(args):
            return args.func(args)
    except Interrupted as exc:
        print(f"detstyle: {exc}", file=sys.stderr)
        return 130
    except (DetstyleError, WeightsError) as exc:
        if args.debug:
            raise
        print(f"detstyle: error: {_one_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


@contextlib.contextmanager
def _limits(args: argparse.Namespace):
    from transfer.limits import parse_overrides, using

    with using(parse_overrides(args.limit)) as limits:
        yield limits


@contextlib.contextmanager
def _notices():
    """Library notices (a downscaled style, a stretched float image) as `detstyle: note: ...` lines.

    The handler sits on the toolkit's own logger for the duration of the command only.
    """
    logger = logging.getLogger("detstyle")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("detstyle: note: %(message)s"))
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


if __name__ == "__main__":
    sys.exit(main())
