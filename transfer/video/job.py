"""The per-frame loop of `detstyle video`: one content-addressed run per frame, resumable.

Each frame is a `RunSpec` of its own: the content frame, the init image and the temporal
target and mask are `ImageRef`s named by their pixel digest (`array_ref`), so a frame's spec
says everything its result depends on, including the previous output it was warmed from.
Finished frames live in a `RunStore` under that spec's digest: a rerun finds them and skips
them, Ctrl-C loses at most the running frame, and a damaged file is simply run again.

Every output is used as read back from the store (8-bit PNG), so frame t+1's spec is the same
whether frame t was just computed or found on disk: that is what lets a rerun resume.

Frame by frame (`--init content`, no temporal term) the frames are independent: `frame_units`
makes them units of `transfer.jobs.engine` (this process, Ray, or one `--shard i/n`).  A Ray
worker or another shard cannot see this process's arrays, so each input frame is written once
into the store's `inputs/` folder (named by its pixel digest, atomically) and the frame's
content is an `image_ref` of that file: the unit loads from its spec alone, on any node that
sees the shared folder.  Every frame-by-frame run, local or not, builds its specs there, so
they all share one set of cache entries.  The warm-started modes are a chain and run in order.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np

from pathlib import Path

from transfer.core.spec import ImageRef, RunSpec
from transfer.errors import DetstyleError, ImageError, OutputExists, UsageError
from transfer.io.images import array_ref, image_ref, pixel_digest, save_image
from transfer.io.run_state import Interrupted, stop_on_signals
from transfer.jobs.engine import LOCAL, EngineChoice, EngineReport, UnitObserver, done_line, run_units
from transfer.jobs.store import RunStore
from transfer.video import metrics
from transfer.video.flow import Motion, motion, warp
from transfer.video.frames import Clip

#: `--init`: where frame t > 0 starts (frame 0 always starts from its content).
INIT_MODES: dict[str, str] = {
    "content": "the content frame, as a single image does (frame by frame: the frames are independent)",
    "prev": "the previous stylised frame as it is",
    "prevwarped": "the previous stylised frame warped to this one by optical flow (the content where the flow fails)",
}
#: Later frames of a warm-started run get this share of `--steps` unless `--later-steps` says otherwise.
LATER_STEPS_SHARE = 1 / 3
#: The store's sub-folder of decoded input frames (frame-by-frame units load their content from there).
INPUTS_FOLDER = "inputs"


@dataclasses.dataclass(frozen=True)
class VideoSettings:
    """How frames after the first are run: their init, their steps, the temporal weight, the flow."""

    init: str = "content"
    later_steps: int | None = None  # None: `default_later_steps`
    temporal_weight: float | None = None
    flow: str = "tvl1"

    def __post_init__(self) -> None:
        if self.init not in INIT_MODES:
            raise UsageError(f"--init must be one of {', '.join(INIT_MODES)}, got {self.init!r}")
        if self.temporal_weight is not None and not (np.isfinite(self.temporal_weight) and self.temporal_weight > 0):
            raise UsageError(f"--temporal-weight must be a finite number > 0 (leave it out for none), "
                             f"got {self.temporal_weight}")

    @property
    def independent(self) -> bool:
        """No frame depends on another's output (frame by frame)."""
        return self.init == "content" and self.temporal_weight is None


def default_later_steps(settings: VideoSettings, steps: int) -> int:
    """`--later-steps` when not given: all of `--steps` frame by frame, a third after a warm start."""
    if settings.later_steps is not None:
        return settings.later_steps
    return steps if settings.init == "content" else max(1, round(steps * LATER_STEPS_SHARE))


def frame_spec(base: RunSpec, clip: Clip, index: int, steps: int, init_image: np.ndarray | None = None,
               temporal: tuple[np.ndarray, np.ndarray, float] | None = None,
               content: ImageRef | None = None) -> RunSpec:
    """Frame `index`'s spec: `base` with this frame as content, its init and its temporal target by digest.

    `content`: the frame as a file (`input_frame_ref`); by default it is named by its pixel digest.
    """
    name = f"{clip.source}#frame{index:05d}"
    fields = dict(content=content or array_ref(clip.frames[index], name), steps=steps)
    if init_image is not None:
        fields.update(init="image", init_image=array_ref(init_image, f"{name}:init"))
    if temporal is not None:
        target, mask, weight = temporal
        fields.update(temporal_target=array_ref(target, f"{name}:temporal"),
                      temporal_mask=array_ref(mask, f"{name}:mask"), temporal_weight=weight)
    return dataclasses.replace(base, **fields)


def input_frame_ref(frame: np.ndarray, folder: Path) -> ImageRef:
    """`frame` as a PNG in `folder` named by its pixel digest (written once, atomically), and its `image_ref`.

    Named by pixels, not PNG bytes, so two processes with different encoders agree on the file:
    the first one written is kept and every spec names its bytes.  Frames are 8-bit, so the PNG
    holds exactly the pixels the clip decoded.
    """
    path = Path(folder).resolve() / f"{pixel_digest(frame)}.png"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            save_image(frame, path, replace=False)
        except OutputExists:  # another shard or worker wrote it meanwhile
            pass
    return image_ref(path)


@dataclasses.dataclass(frozen=True)
class FrameUnit:
    """Frame `index` of `source`, run frame by frame: a unit of `transfer.jobs.engine` (see `run_frame`)."""

    index: int
    source: str
    spec: RunSpec


def frame_units(base: RunSpec, clip: Clip, later_steps: int, store: RunStore) -> list[FrameUnit]:
    """Frame by frame: one independent unit per frame, its content a file in the store (any order, any worker)."""
    folder = store.root / INPUTS_FOLDER
    return [FrameUnit(t, clip.source, frame_spec(base, clip, t, base.steps if t == 0 else later_steps,
                                                 content=input_frame_ref(frame, folder)))
            for t, frame in enumerate(clip.frames)]


def independent_specs(base: RunSpec, clip: Clip, later_steps: int, store: RunStore) -> list[RunSpec]:
    """The specs of `frame_units`."""
    return [unit.spec for unit in frame_units(base, clip, later_steps, store)]


def frame_record(index: int, source: str, result) -> dict:
    """What a stored frame's record says besides its spec (any engine writes the same)."""
    return {"frame": index, "source": source, "steps_run": len(result.history), "stop_reason": result.stop_reason,
            "seconds": result.seconds, "final_losses": result.history[-1] if result.history else None}


def run_frame(unit: FrameUnit, store: RunStore, backbone, targets, callback) -> dict:
    """Optimise one frame-by-frame unit from its spec alone and store it (the `Work` of `transfer.jobs.engine`).

    Module-level, so Ray workers import it by name; the inputs come from the files the spec names.
    """
    from transfer.core import stylizer
    from transfer.core.run import load_inputs

    inputs = load_inputs(unit.spec)
    result = stylizer.stylize(inputs.content, inputs.styles, backbone, unit.spec, callback, targets=targets)
    store.save(unit.spec, result.image, frame_record(unit.index, unit.source, result))
    return store.record(unit.spec)


def check_engine(settings: VideoSettings, choice: EngineChoice) -> None:
    """Refuse `--engine ray` / `--shard` for a warm-started or temporal run: its frames are a chain."""
    if settings.independent or (choice.engine == LOCAL and choice.shard is None):
        return
    flags = f"--engine {choice.engine}" if choice.shard is None else f"--shard {choice.shard}"
    mode = f"--init {settings.init}" if settings.init != "content" else "--temporal-weight"
    raise UsageError(f"{flags} with {mode}: each frame starts from the previous frame's output, so the frames run "
                     "in order in one process; drop it, or run frame by frame (--init content, no --temporal-weight)")


def clip_motions(frames: Sequence[np.ndarray], method: str) -> list[Motion | None]:
    """Each frame's flow back to its predecessor and trusted pixels (None for frame 0)."""
    return [None] + [motion(frames[t], frames[t - 1], method) for t in range(1, len(frames))]


def warm_inputs(settings: VideoSettings, frame: np.ndarray, previous: np.ndarray, move: Motion):
    """`(init image or None, (temporal target, mask, weight) or None)` of a frame after the first."""
    warped = warp(previous, move.flow)
    init = {"content": None, "prev": previous,
            "prevwarped": move.mask[..., None] * warped + (1 - move.mask[..., None]) * frame}[settings.init]
    temporal = None if settings.temporal_weight is None else (warped, move.mask, settings.temporal_weight)
    return init, temporal


def cached_frame(store: RunStore, spec: RunSpec, shape: tuple[int, ...]) -> np.ndarray | None:
    """The stored result of `spec`, or None when absent, unreadable or of another shape (then it is redone)."""
    if store.record(spec) is None:
        return None
    try:
        image = store.load(spec)
    except ImageError:
        return None
    return image if image.shape == tuple(shape) else None


@dataclasses.dataclass
class VideoResult:
    """The stylised frames (as stored), what was run, the time it took and the flicker record."""

    frames: list[np.ndarray]
    specs: list[RunSpec]
    ran: int
    flow_seconds: float
    frame_seconds: list[float | None]  # wall seconds of each frame run here (None: found in the store)
    frame_cpu_seconds: list[float | None]
    flicker: dict
    frame_losses: list[dict | None] = dataclasses.field(default_factory=list)  # each frame's last loss terms


class Observer:
    """What a front end sees: `start` returns a per-step callback (or None), `finish` gets each frame."""

    def start(self, index: int, total: int, cached: bool):
        return None

    def finish(self, index: int, image: np.ndarray, ran: bool) -> None:
        return None


def run_frames(units: Sequence[FrameUnit], store: RunStore, choice: EngineChoice | None = None,
               observer: UnitObserver | None = None, backbone=None) -> EngineReport:
    """Run this process's share of the frame units (all, one `--shard`'s, or on Ray) that `store` lacks.

    A local run uses `backbone`, or loads it on first use (a run with nothing left loads none);
    Ray workers load their own.
    """
    from transfer.io.run_state import Interrupted

    return run_units(units, store, run_frame, choice=choice, observer=observer, backbone=backbone, noun="frames",
                     interrupted=lambda: Interrupted("interrupted: " + done_line(units, store, "frames")))


def collect_frames(clip: Clip, units: Sequence[FrameUnit], store: RunStore, flow: str, ran: int = 0,
                   seconds: Sequence[float | None] | None = None,
                   cpu_seconds: Sequence[float | None] | None = None) -> VideoResult:
    """Every frame-by-frame unit's stored image and the flicker record; a `DetstyleError` if one is missing."""
    missing = sum(store.record(unit.spec) is None for unit in units)
    if missing:
        raise DetstyleError(f"{store.root}: {missing} of {len(units)} frames are not in the cache (another "
                            "shard's, or removed meanwhile); run the same command again to finish them")
    frames = [store.load(unit.spec) for unit in units]
    started = time.perf_counter()
    motions = clip_motions(clip.frames, flow)
    flow_seconds = time.perf_counter() - started
    unknown = [None] * len(units)
    return VideoResult(frames, [unit.spec for unit in units], ran, flow_seconds, list(seconds or unknown),
                       list(cpu_seconds or unknown), metrics.summary(frames, clip.frames, motions),
                       [store.record(unit.spec).get("final_losses") for unit in units])


def run_video(clip: Clip, styles, backbone, base: RunSpec, settings: VideoSettings, store: RunStore,
              observer: Observer | None = None, stylize: Callable | None = None) -> VideoResult:
    """Stylise every frame of `clip` in order; frames found in `store` are reused, the rest are run and stored.

    `styles`: `[(array, weight), ...]` as `stylize` takes them; `stylize` replaces the optimiser
    call (tests count it).  Raises `Interrupted` (naming how many frames are kept) when Ctrl-C
    stops a frame.
    """
    from transfer.core.stylizer import stylize as default_stylize

    runner = _FrameRunner(stylize or default_stylize, styles, backbone, store, clip)
    observer = observer or Observer()
    started = time.perf_counter()
    motions = clip_motions(clip.frames, settings.flow)
    flow_seconds = time.perf_counter() - started
    later = default_later_steps(settings, base.steps)
    plain = independent_specs(base, clip, later, store) if settings.independent else None
    outputs, specs, seconds, cpu_seconds, losses = [], [], [], [], []
    with stop_on_signals() as stop:
        for t, frame in enumerate(clip.frames):
            init = temporal = None
            if plain is None and t > 0:
                init, temporal = warm_inputs(settings, frame, outputs[-1], motions[t])
            spec = plain[t] if plain is not None else frame_spec(base, clip, t, base.steps if t == 0 else later,
                                                                 init, temporal)
            image = cached_frame(store, spec, frame.shape)
            callback = observer.start(t, len(clip.frames), image is not None)
            timing = (None, None) if image is not None else runner.run(t, spec, callback, init, temporal)
            outputs.append(image if image is not None else store.load(spec))  # as stored: what a rerun sees
            losses.append((store.record(spec) or {}).get("final_losses"))
            specs.append(spec)
            seconds.append(timing[0])
            cpu_seconds.append(timing[1])
            observer.finish(t, outputs[-1], timing[0] is not None)
            if stop.is_set() and t + 1 < len(clip.frames):
                raise Interrupted(f"interrupted after frame {t + 1} of {len(clip.frames)}; finished frames are kept "
                                  f"in {store.root}: rerun the same command to continue")
    ran = sum(s is not None for s in seconds)
    return VideoResult(outputs, specs, ran, flow_seconds, seconds, cpu_seconds,
                       metrics.summary(outputs, clip.frames, motions), losses)


@dataclasses.dataclass(frozen=True)
class _FrameRunner:
    """Runs one frame's optimisation and stores its result under the frame's spec."""

    stylize: Callable
    styles: list
    backbone: object
    store: RunStore
    clip: Clip

    def run(self, t: int, spec: RunSpec, callback, init: np.ndarray | None, temporal) -> tuple[float, float]:
        """Wall and process-CPU seconds of frame `t`'s run (stored once finished)."""
        from transfer.core.temporal import TemporalTarget

        wall, cpu = time.perf_counter(), time.process_time()
        target = None if temporal is None else TemporalTarget(temporal[0], temporal[1])
        try:
            result = self.stylize(self.clip.frames[t], self.styles, self.backbone, spec, callback, init_image=init,
                                  temporal=target)
        except Interrupted:
            raise Interrupted(f"interrupted in frame {t + 1} of {len(self.clip.frames)}; the {t} finished frame(s) "
                              f"are kept in {self.store.root}: rerun the same command to continue") from None
        self.store.save(spec, result.image, frame_record(t, self.clip.source, result))
        return time.perf_counter() - wall, time.process_time() - cpu


def check_temporal(base: RunSpec, settings: VideoSettings) -> None:
    """Refuse a temporal term the base spec cannot take (a recipe, tiling) before frame 0 runs, not after."""
    if settings.temporal_weight is None:
        return
    probe = array_ref(np.zeros((1, 1, 3), np.float32), "probe")
    dataclasses.replace(base, temporal_target=probe, temporal_mask=probe, temporal_weight=settings.temporal_weight)
