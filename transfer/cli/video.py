"""`detstyle video`: parse -> base spec + video settings -> `transfer.video.job.run_video` -> clip, frames, flicker JSON.

Every stylize run option works (`add_run_options`, `spec_from_args`) with the same refusals;
`--init` takes the video's own starts instead of stylize's (frame 0 always starts from its
content).  Finished frames are cached by spec digest in `detstyle-cache/` beside the output
(shared with `detstyle grid`), so rerunning the same command continues where it stopped.

Frame by frame (`--init content`, no `--temporal-weight`) the frames are independent units of
`transfer.jobs.engine`: they run in this process, on Ray (`--engine ray`) or one `--shard i/n`
at a time, and the clip, frames folder and flicker JSON are written by the run that finds every
frame finished.  A warm-started or temporal run is a chain, so those options are refused there.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time
from pathlib import Path

from transfer.cli.options import add_engine_options, add_run_options, non_negative_float, positive_int, progress_bar, \
    resolved_precision, spec_from_args
from transfer.cli.stylize import style_option

DEFAULT_SIZE, DEFAULT_STEPS = 256, 300

EXAMPLES = """\
examples:
  detstyle video clip.gif -o clip_styled.gif --style painting.jpg                 # frame by frame (flickers)
  detstyle video clip.gif -o out.gif --style painting.jpg --init prevwarped --temporal-weight 100
  detstyle video frames/ -o out.mp4 out.gif --style painting.jpg --init prevwarped --later-steps 50 --inset
  detstyle video clip.mp4 -o out.mp4 --style painting.jpg --size 192 --max-frames 48   # MP4: detstyle[video]
  detstyle video clip.gif -o /shared/out.gif --style painting.jpg --engine ray --address auto   # frame by frame
  detstyle video clip.gif -o /shared/out.gif --style painting.jpg --shard $SLURM_ARRAY_TASK_ID/8

Beside OUT: OUTSTEM_frames/ (one PNG per frame), OUTSTEM_flicker.json (warping error of the output and of the
input per frame), and detstyle-cache/ (finished frames by spec digest: a rerun skips them). --engine and --shard
need frame-by-frame mode (the default); with --shard the run that finds every frame finished writes OUT.
"""


def add_command(sub) -> None:
    from transfer.video.flow import FLOW_METHODS, default_method
    from transfer.video.frames import CLIP_SUFFIXES
    from transfer.video.job import INIT_MODES, LATER_STEPS_SHARE

    p = sub.add_parser("video", help="stylise a clip (GIF, MP4 or frame folder) without flicker",
                       description="Stylise every frame of IN with STYLE. Frame by frame (the default) each frame is "
                                   "optimised on its own and strokes jump between frames; --init prevwarped starts "
                                   "each frame from the previous output warped by optical flow and --temporal-weight "
                                   "keeps it there where the flow holds (Ruder et al. 2016), which removes most of the "
                                   "flicker at a fraction of the steps. Ctrl-C loses at most the running frame.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter, conflict_handler="resolve")
    p.add_argument("input", metavar="IN", help="a .gif, an .mp4 (needs detstyle[video]) or a folder of frames")
    p.add_argument("-o", "--output", nargs="+", required=True, metavar="OUT",
                   help=f"one or more clips to write ({', '.join(CLIP_SUFFIXES)})")
    p.add_argument("--style", dest="styles", action="append", required=True, type=style_option,
                   metavar="PATH[:WEIGHT]", help="a style image with an optional blend weight (repeatable)")
    add_run_options(p, size=DEFAULT_SIZE, steps=DEFAULT_STEPS)
    g = p.add_argument_group("video")
    g.add_argument("--init", choices=list(INIT_MODES), default=None,
                   help="where frames after the first start: " + "; ".join(f"{k}: {v}" for k, v in INIT_MODES.items())
                        + " (default content)")
    g.add_argument("--later-steps", type=positive_int, default=None, metavar="N",
                   help=f"steps of every frame after the first (default: --steps frame by frame, "
                        f"{LATER_STEPS_SHARE:.2g} of it with --init prev/prevwarped)")
    g.add_argument("--temporal-weight", type=non_negative_float, default=None, metavar="W",
                   help="weight of the temporal loss: mean squared distance, in [0, 1] pixel units, to the previous "
                        "output warped to this frame, where the forward-backward flow agrees (default: none)")
    g.add_argument("--flow", choices=list(FLOW_METHODS), default=default_method(),
                   help="optical flow: " + "; ".join(f"{k}: {m.description}" for k, m in FLOW_METHODS.items())
                        + f" (default here: {default_method()}, measured in bench/results/flicker.json)")
    g.add_argument("--inset", action="store_true", help="show the original frame in the bottom-right corner of OUT")
    g.add_argument("--max-frames", type=positive_int, default=None, metavar="N", help="only the first N frames")
    g.add_argument("--fps", type=non_negative_float, default=None, help="frame rate of OUT (default: IN's)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (finished frames are reused)")
    p.add_argument("--cache", default=None, metavar="DIR", help="where finished frames are kept "
                                                                "(default: detstyle-cache/ beside the first OUT)")
    add_engine_options(p)
    p.set_defaults(func=cmd_video)


def build_settings(args: argparse.Namespace):
    """The video settings of this command line; `--temporal-weight 0` would change nothing, so it is refused."""
    from transfer.errors import UsageError
    from transfer.video.job import VideoSettings

    if args.temporal_weight == 0:
        raise UsageError("--temporal-weight 0 adds nothing: leave it out for no temporal term")
    if args.fps == 0:
        raise UsageError("--fps must be > 0")
    return VideoSettings(init=args.init or "content", later_steps=args.later_steps,
                         temporal_weight=args.temporal_weight, flow=args.flow)


def build_base_spec(args: argparse.Namespace, settings):
    """Every frame's shared options (content, init and temporal target come per frame)."""
    from transfer.backbones.load import resolve_backbone
    from transfer.io.images import image_ref
    from transfer.video.job import check_temporal

    styles = [image_ref(path, weight) for path, weight in args.styles]
    backbone = resolve_backbone(args.backbone, profile=args.profile, precision=resolved_precision(args.precision))
    spec = spec_from_args(argparse.Namespace(**{**vars(args), "init": None}), steps=DEFAULT_STEPS, styles=styles,
                          backbone=backbone)
    check_temporal(spec, settings)
    return spec


@dataclasses.dataclass(frozen=True)
class _Outputs:
    clips: list[Path]
    frames: Path
    flicker: Path
    cache: Path

    @classmethod
    def claim(cls, args: argparse.Namespace) -> _Outputs:
        from transfer.cli.grid import CACHE_NAME
        from transfer.errors import UsageError
        from transfer.io.outputs import claim_file, claim_side_output
        from transfer.video.frames import check_clip_path, check_clip_suffix

        check_clip_path(args.input)
        clips = [claim_file(check_clip_suffix(o), overwrite=args.overwrite) for o in args.output]
        if len({c.resolve() for c in clips}) < len(clips):
            raise UsageError("the same OUT is given twice")
        first = clips[0]
        flicker = claim_side_output(first.with_name(first.stem + "_flicker.json"), overwrite=args.overwrite,
                                    folder=False)
        cache = Path(args.cache) if args.cache else first.parent / CACHE_NAME
        return cls(clips, first.with_name(first.stem + "_frames"), flicker, cache)


class _Bars:
    """A bar over frames (`total`, `initial` already done) above stylize's per-step bar of the running frame."""

    def __init__(self, total: int, quiet: bool, initial: int = 0):
        self.quiet, self.close_steps = quiet, _nothing
        self.bar = None
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="video", unit="frame", dynamic_ncols=True,
                            file=sys.stderr)

    def steps(self, index: int, total: int):
        """Stylize's per-step callback for frame `index`, with its own bar."""
        callback, self.close_steps = progress_bar(f"frame {index + 1}/{total}", self.quiet)
        return callback

    def done(self, advance: bool) -> None:
        """The running frame ended: close its step bar and count it (when `advance`)."""
        self.close_steps()
        self.close_steps = _nothing
        if advance and self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        self.close_steps()
        if self.bar is not None:
            self.bar.close()


class _Progress(_Bars):
    """`run_video`'s observer: the bars, and each finished frame copied into the frames folder."""

    def __init__(self, total: int, quiet: bool, write_frame):
        super().__init__(total, quiet)
        self.write_frame = write_frame

    def start(self, index: int, total: int, cached: bool):
        return None if cached else self.steps(index, total)

    def finish(self, index: int, image, ran: bool) -> None:
        self.done(True)
        self.write_frame(index, image)


def _nothing() -> None:
    return None


def _save_frame(folder: Path, index: int, image) -> Path:
    from transfer.io.images import save_image

    return save_image(image, folder / f"frame_{index:05d}.png")


def read_input(args: argparse.Namespace):
    """The clip at the run's size, refused when its frames exceed the output limit or a flag would be ignored."""
    from transfer import limits
    from transfer.errors import UsageError
    from transfer.video.frames import read_clip

    clip = read_clip(args.input, args.size, args.max_frames)
    h, w = clip.frames[0].shape[:2]
    if h * w > limits.current().output_pixels:
        raise UsageError(f"--size {args.size}: " + limits.refusal(f"{w}x{h} frames", h * w, "output_pixels"))
    if len(clip.frames) == 1 and (args.later_steps is not None or args.temporal_weight is not None):
        raise UsageError(f"{args.input}: one frame only, so --later-steps and --temporal-weight would be ignored; "
                         "drop them (or use detstyle stylize)")
    return clip


def cmd_video(args: argparse.Namespace) -> int:
    from transfer.jobs.engine import EngineChoice
    from transfer.jobs.store import RunStore
    from transfer.video.frames import with_inset, write_clip
    from transfer.video.job import check_engine

    choice = EngineChoice.from_options(args.engine, args.address, args.shard)
    settings = build_settings(args)
    check_engine(settings, choice)
    outputs = _Outputs.claim(args)
    base = build_base_spec(args, settings)
    clip = read_input(args)
    store = RunStore(outputs.cache)
    if settings.independent:
        result = _run_frame_by_frame(args, clip, base, settings, store, outputs, choice)
        if result is None:  # a shard that left frames to the others
            return 0
    else:
        result = _run_chain(args, clip, base, settings, store, outputs)
    shown = [with_inset(f, o) for f, o in zip(result.frames, clip.frames)] if args.inset else result.frames
    for path in outputs.clips:
        write_clip(shown, path, args.fps or clip.fps)
    _write_json(outputs.flicker, flicker_record(args, clip, settings, result))
    _print_summary(outputs, result, store)
    return 0


def _run_chain(args: argparse.Namespace, clip, base, settings, store, outputs: _Outputs):
    """A warm-started or temporal run: the frames in order in this process, each copied out as it lands."""
    from transfer.backbones.load import load_backbone
    from transfer.io.images import load_ref
    from transfer.io.outputs import claim_directory
    from transfer.video.job import run_video

    frames_dir = claim_directory(outputs.frames, owner="video", overwrite=args.overwrite)
    styles = [(load_ref(ref, args.size), ref.weight) for ref in base.styles]
    backbone = load_backbone(base.backbone, seed=base.seed)
    progress = _Progress(len(clip.frames), args.quiet, functools.partial(_save_frame, frames_dir))
    try:
        return run_video(clip, styles, backbone, base, settings, store, observer=progress)
    finally:
        progress.close()


def _run_frame_by_frame(args: argparse.Namespace, clip, base, settings, store, outputs: _Outputs, choice):
    """Independent frames as engine units; the stored frames and flicker record once all are finished, else None."""
    from transfer.backbones.load import load_backbone
    from transfer.io.outputs import claim_directory
    from transfer.jobs.engine import LOCAL
    from transfer.video.job import collect_frames, default_later_steps, frame_units, run_frames

    if outputs.frames.exists():  # a foreign folder is refused now, before any work
        claim_directory(outputs.frames, owner="video", overwrite=args.overwrite)
    units = frame_units(base, clip, default_later_steps(settings, base.steps), store)
    mine = choice.select(units)
    finished = sum(store.record(u.spec) is not None for u in mine)
    backbone = None  # Ray workers load their own; a local run loads it before the first frame's clock starts
    if choice.engine == LOCAL and finished < len(mine):
        backbone = load_backbone(base.backbone, seed=base.seed)
    progress = _UnitProgress(len(units), len(mine), finished, args.quiet)
    try:
        report = run_frames(units, store, choice, progress, backbone)
    finally:
        progress.close()
    left = sum(store.record(unit.spec) is None for unit in units)
    if choice.shard is not None:
        print(_shard_line(choice.shard, len(units), len(mine), report.ran, left, outputs))
    if left:
        return None
    result = collect_frames(clip, units, store, settings.flow, report.ran, progress.seconds, progress.cpu_seconds)
    frames_dir = claim_directory(outputs.frames, owner="video", overwrite=args.overwrite)
    for unit in units:
        _copy_frame(store.image_path(unit.spec), frames_dir, unit.index)
    return result


class _UnitProgress(_Bars):
    """The engine's observer: the bars over this process's frames, and the times of each frame run here."""

    def __init__(self, total: int, mine: int, finished: int, quiet: bool):
        super().__init__(mine, quiet, finished)
        self.started: tuple[float, float] | None = None
        self.seconds: list[float | None] = [None] * total
        self.cpu_seconds: list[float | None] = [None] * total

    def start(self, unit, cached: bool):
        if cached:
            return None
        self.started = (time.perf_counter(), time.process_time())
        return self.steps(unit.index, len(self.seconds))

    def finish(self, unit, record: dict, ran: bool) -> None:
        if ran and self.started is not None:  # Ray runs call only `finish`: their times stay unknown
            self.seconds[unit.index] = time.perf_counter() - self.started[0]
            self.cpu_seconds[unit.index] = time.process_time() - self.started[1]
        self.started = None
        self.done(ran)


def _shard_line(shard, total: int, mine: int, ran: int, left: int, outputs: _Outputs) -> str:
    """What a shard did and what is left, in one line."""
    did = f"shard {shard}: {ran} of its {mine} frames run now, {mine - ran} were already cached"
    if not left:
        return f"{did}; every frame of the {total} is finished, writing {outputs.clips[0]}"
    return (f"{did}; {left} of {total} frames are not finished yet (other shards'): the clip, frames folder and "
            "flicker JSON are written by the run that finds every frame finished (rerun any shard, or the command "
            "without --shard)")


def _copy_frame(source: Path, folder: Path, index: int) -> Path:
    """A finished frame's PNG in the frames folder, byte for byte the cached one (written atomically)."""
    import shutil

    from transfer.io.images import atomic_write

    return atomic_write(folder / f"frame_{index:05d}.png", functools.partial(shutil.copyfile, source))


def flicker_record(args: argparse.Namespace, clip, settings, result) -> dict:
    """The run's flicker JSON: warping error of output and input per frame, times, settings, frame digests."""
    from transfer.video.job import default_later_steps

    timed = [s for s in result.frame_seconds if s is not None]
    return {
        "command": "detstyle " + " ".join(getattr(args, "argv", [])),
        "input": clip.source, "frames": len(clip.frames), "size": list(clip.frames[0].shape[:2]), "fps": clip.fps,
        "settings": {"init": settings.init, "steps": result.specs[0].steps,
                     "later_steps": default_later_steps(settings, result.specs[0].steps),
                     "temporal_weight": settings.temporal_weight, "flow": settings.flow},
        "warping_error": result.flicker,
        "frames_run": result.ran, "flow_seconds": result.flow_seconds,
        "frame_seconds": result.frame_seconds, "frame_cpu_seconds": result.frame_cpu_seconds,
        "seconds_per_frame_run": sum(timed) / len(timed) if timed else None,
        "frame_digests": [spec.digest() for spec in result.specs],
    }


def _write_json(path: Path, record: dict) -> None:
    from transfer.io.images import atomic_write

    text = json.dumps(record, indent=1)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _print_summary(outputs: _Outputs, result, store) -> None:
    error = result.flicker
    n = len(result.frames)
    flicker = ("" if error["output_mean"] is None else
               f"; warping error {error['output_mean']:.3g} (input frames: {error['input_mean']:.3g})")
    print(f"wrote {', '.join(map(str, outputs.clips))} ({n} frames: {result.ran} run, {n - result.ran} from "
          f"{store.root}), {outputs.frames}/ and {outputs.flicker}{flicker}")
