"""The run spec: one immutable, serialisable, hashable description of a stylisation run.

Why one object: a run used to be spread over a config, a backbone object, keyword
arguments and CLI-only flags, so resume, caching and every new front end (grid cell, web
request, notebook) had to re-derive it.  A `RunSpec` is built once, by `make_spec`, which
fills defaults (the toolkit's, a seed recipe's or a schedule's) and refuses options that
the run would ignore; everything after that only reads it.

What it holds: the inputs (path and sha256 of each image), the backbone (name, sha256 of
its file, preprocessing profile, precision), the output size, the objective (this
toolkit's normalised loss or a seed recipe, its layers and weights), the schedule and its
budget, and the seed.  A field that the chosen objective or schedule does not use is
`None`, so two specs that would run identically compare (and hash) equal.

Importable without TensorFlow, so `detstyle --help` stays instant.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence

from transfer.backbones.architectures import ARCHITECTURES, DEFAULT_ARCHITECTURE, layer_preset
from transfer.core.features import LAYER_PRESETS, LayerSpec
from transfer.core.schedules import MIN_SIDE, SCALE_RATIO, SCHEDULES
from transfer.core.style_transforms import STYLE_TRANSFORMS
from transfer.core.tiles import MIN_TILE, TILE_MULTIPLE
from transfer.errors import DetstyleError, UsageError

#: Objectives: this toolkit's normalised loss, or one of the seed recipes (transfer.seeds).
DEFAULT_OBJECTIVE = "default"
INIT_CHOICES = ("content", "noise", "style", "image")
OPTIMIZERS = ("adam", "lbfgs")
COLOUR_METHODS = ("luminance", "histogram")
#: precision name -> Keras dtype policy of the backbone (None: float32 as built).
PRECISIONS: dict[str, str | None] = {"fp32": None, "bf16": "mixed_bfloat16"}
#: The toolkit's defaults for its own objective (`make_spec` fills them when not given).
#: `layers` is VGG16's default preset; every architecture has its own (`ARCHITECTURES[...].default_layers`).
#: Seeds feed numpy's and TensorFlow's generators, which take 32-bit (TF: 64-bit signed) seeds.
MAX_SEED = 2**32 - 1
#: Loss weights above this overflow float32 for no gain: every loss term is normalised to about 1.
MAX_LOSS_WEIGHT = 1e6

#: The optimiser (L-BFGS), the plateau rule and automatic bf16 are issue 21's measured fastest route to the
#: loss of the former default, Adam 0.02 for 300 steps in fp32 (bench/results/default_speed_512.json).
DEFAULTS = dict(layers="gatys", style_weight=1.0, content_weight=0.05, tv_weight=1.0, steps=300,
                optimizer="lbfgs", learning_rate=0.02, scales=1, style_scale=1.0, init="content", plateau=0.005)
#: The plateau rule compares the mean loss of the last PLATEAU_WINDOW steps with the window before.
PLATEAU_WINDOW = 20


@dataclasses.dataclass(frozen=True)
class ImageRef:
    """An input image as a run names it: where it was read and the sha256 of its bytes.

    `weight` is the blend weight of a style image (1.0 for everything else).
    """

    source: str
    sha256: str
    weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class BackboneRef:
    """Which weights compute the features: registry name or file, its sha256, profile, precision.

    `sha256` is None only for generated weights (the random controls, fixed by the seed).
    `architecture` names the network the weights fill (`transfer.backbones.architectures`);
    the run's layer presets are resolved against it.
    """

    name: str
    sha256: str | None
    profile: str
    precision: str = "fp32"
    architecture: str = DEFAULT_ARCHITECTURE


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything that decides a run's result.  Build it with `make_spec`; never mutate it."""

    # what is stylised, with what
    content: ImageRef | None = None
    styles: tuple[ImageRef, ...] = ()
    init: str = "content"  # content | noise | style | image (then init_image)
    init_image: ImageRef | None = None
    backbone: BackboneRef | None = None
    size: int | None = None  # longest side of the output; None: the arrays' own size
    # what is minimised
    objective: str = DEFAULT_OBJECTIVE  # "default" or a seed recipe name
    style_layers: tuple[str, ...] = LAYER_PRESETS["gatys"].style
    content_layers: tuple[str, ...] = LAYER_PRESETS["gatys"].content
    style_weight: float | None = 1.0  # None under a recipe: the recipe fixes its weights
    content_weight: float | None = 0.05
    tv_weight: float | None = 1.0
    style_scale: float | None = 1.0  # None where the objective resizes the style itself
    preserve_colors: str | None = None
    style_transform: str | None = None  # a STYLE_TRANSFORMS name (SWAG) applied to style taps before Grams
    # how it is minimised
    schedule: str = "plain"  # "plain" (--scales levels of --optimizer) or a SCHEDULES name
    steps: int = 300  # plain: iterations per scale; a named schedule: its whole budget
    optimizer: str | None = "lbfgs"  # None under a named schedule: it picks its own
    learning_rate: float | None = None  # Adam only
    scales: int | None = 1
    plateau: float | None = 0.005  # stop when the loss fell less than this share over PLATEAU_WINDOW steps
    tile: int | None = None  # optimise in tiles of this side (transfer.core.tiling); None: the whole image at once
    seed: int = 0
    # video (transfer.core.temporal): stay close to the previous output warped to this frame, where the flow holds
    temporal_target: ImageRef | None = None  # the warped previous output (by pixel digest)
    temporal_mask: ImageRef | None = None  # where the warp is trusted (1) or occluded (0), by pixel digest
    temporal_weight: float | None = None

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def layers(self) -> LayerSpec:
        """The features the objective compares: its taps and how the style taps are transformed."""
        return LayerSpec(self.style_layers, self.content_layers, self.style_transform)

    @property
    def recipe(self) -> str | None:
        return None if self.objective == DEFAULT_OBJECTIVE else self.objective

    def to_dict(self) -> dict:
        """Plain JSON types only (tuples become lists).

        The video fields are left out when unset, so the digest of every other run (and every
        cached result named by it) is what it was before they existed.
        """
        data = json.loads(json.dumps(dataclasses.asdict(self)))
        return {k: v for k, v in data.items() if not (k in _UNSET_OMITTED and v is None)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        """sha256 of the canonical JSON: the cache key of the run's result."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping) -> RunSpec:
        """The inverse of `to_dict`; unknown or malformed fields are a DetstyleError."""
        try:
            fields = dict(data)
            fields["styles"] = tuple(ImageRef(**s) for s in fields.get("styles", ()))
            for name, kind in (("content", ImageRef), ("init_image", ImageRef), ("backbone", BackboneRef),
                               ("temporal_target", ImageRef), ("temporal_mask", ImageRef)):
                if fields.get(name) is not None:
                    fields[name] = kind(**fields[name])
            for name in ("style_layers", "content_layers"):
                fields[name] = tuple(fields[name])
            return cls(**fields)
        except (TypeError, KeyError, ValueError) as exc:
            raise DetstyleError(f"not a run spec ({exc})") from None

    def differences(self, other: RunSpec | Mapping) -> list[str]:
        """Dotted names of the fields that differ, e.g. `["backbone.precision", "size"]`.

        A mapping saved before a field existed (e.g. `backbone.architecture`, `style_transform`)
        is read with that field at its default, so an old state of the same run still matches.
        """
        theirs = other.to_dict() if isinstance(other, RunSpec) else _with_defaults(other)
        return _diff(self.to_dict(), theirs)


#: Fields `to_dict` leaves out while None (added after results were cached under the older digests).
_UNSET_OMITTED = ("temporal_target", "temporal_mask", "temporal_weight")


def _with_defaults(data: Mapping) -> dict:
    """`data` as a spec dict with any missing field at its default (as is, when it is no valid spec)."""
    try:
        return RunSpec.from_dict(data).to_dict()
    except DetstyleError:
        return dict(data)


def _diff(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        names = sorted(set(a) | set(b))
        return [d for k in names for d in _diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def max_scales(size: int) -> int:
    """How many sqrt(2)-spaced pyramid levels end at `size` with none below MIN_SIDE px."""
    return 1 + max(0, math.floor(math.log(size / MIN_SIDE) / math.log(SCALE_RATIO) + 1e-9))


def _validate(spec: RunSpec) -> None:
    """Values a run cannot use; combinations are checked by `make_spec`, where flags are known."""
    if spec.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {spec.steps}")
    if spec.init not in INIT_CHOICES:
        raise UsageError(f"--init must be content, noise, style or an image path, got {spec.init!r}")
    if (spec.init == "image") != (spec.init_image is not None):
        raise UsageError("init 'image' needs an init_image, and an init_image needs init 'image'")
    if spec.optimizer not in (None, *OPTIMIZERS):
        raise UsageError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {spec.optimizer!r}")
    if spec.preserve_colors not in (None, *COLOUR_METHODS):
        raise UsageError(f"--preserve-colors must be one of {', '.join(COLOUR_METHODS)}")
    if spec.schedule != "plain" and spec.schedule not in SCHEDULES:
        raise UsageError(f"--schedule must be one of plain, {', '.join(SCHEDULES)}, got {spec.schedule!r}")
    if spec.scales is not None and spec.scales < 1:
        raise UsageError(f"--scales must be at least 1, got {spec.scales}")
    if spec.scales is not None and spec.size is not None and spec.scales > max_scales(spec.size):
        raise UsageError(f"--scales {spec.scales} at --size {spec.size}: at most {max_scales(spec.size)} pyramid "
                         f"levels keep the coarsest one at {MIN_SIDE} px or more")
    if spec.size is not None and spec.size < 1:
        raise UsageError(f"--size must be at least 1, got {spec.size}")
    if spec.backbone is not None and spec.backbone.precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {spec.backbone.precision!r}")
    if spec.backbone is not None and spec.backbone.architecture not in ARCHITECTURES:
        raise UsageError(f"unknown architecture {spec.backbone.architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    if spec.style_transform not in (None, *STYLE_TRANSFORMS):
        raise UsageError(f"--style-transform must be one of {', '.join(STYLE_TRANSFORMS)}, got {spec.style_transform!r}")
    if not spec.style_layers or not spec.content_layers:
        raise UsageError("a run needs at least one style layer and one content layer")
    for name in ("style_weight", "content_weight", "tv_weight", "learning_rate", "style_scale"):
        value = getattr(spec, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UsageError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value}")
    for name in ("style_weight", "content_weight", "tv_weight"):
        if (getattr(spec, name) or 0) > MAX_LOSS_WEIGHT:
            raise UsageError(f"--{name.replace('_', '-')} {getattr(spec, name):g} is above {MAX_LOSS_WEIGHT:g}: the "
                             "losses are normalised to about 1, so such a weight only overflows float32")
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, int) or not 0 <= spec.seed <= MAX_SEED:
        raise UsageError(f"--seed must be a whole number from 0 to {MAX_SEED}, got {spec.seed!r}")
    for name in ("learning_rate", "style_scale"):
        if getattr(spec, name) == 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0")
    if spec.plateau is not None and not (math.isfinite(spec.plateau) and 0 < spec.plateau < 1):
        raise UsageError(f"--plateau must be a share of the loss between 0 and 1 (0 turns the rule off), got {spec.plateau}")
    if spec.tile is not None:
        _validate_tile(spec)
    _validate_temporal(spec)


def _validate_temporal(spec: RunSpec) -> None:
    """The temporal term needs its target, its mask and a weight > 0, and pixels as parameters.

    A recipe optimises in its own parameter space and tiling sees one tile at a time, so the
    term (a per-pixel distance to the whole warped previous frame) is refused with either.
    """
    parts = (spec.temporal_target, spec.temporal_mask, spec.temporal_weight)
    if all(p is None for p in parts):
        return
    if any(p is None for p in parts):
        raise UsageError("a temporal term needs its target, its mask and its weight together")
    weight = spec.temporal_weight
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (math.isfinite(weight) and weight > 0):
        raise UsageError(f"--temporal-weight must be a finite number > 0 (leave it out for no temporal term), got {weight}")
    if weight > MAX_LOSS_WEIGHT:
        raise UsageError(f"--temporal-weight {weight:g} is above {MAX_LOSS_WEIGHT:g}: it only overflows float32")
    if spec.recipe is not None:
        raise UsageError(f"--temporal-weight adds a pixel term to this toolkit's loss; --recipe {spec.recipe} "
                         "optimises in its own space with its own loss: drop one of them")
    if spec.tile is not None:
        raise UsageError("--temporal-weight compares whole frames; --tile optimises one tile at a time: drop one of them")


def _validate_tile(spec: RunSpec) -> None:
    """`--tile N`: a size the backbone's pooling grid divides, and a run that can be cut into tiles.

    Tiled Adam needs one optimiser at one size (plain schedule, Adam, one scale) and a loss that is
    a per-pixel average (this toolkit's normalised objective), so a tile's loss estimates the image's.
    """
    tile = spec.tile
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < MIN_TILE or tile % TILE_MULTIPLE:
        raise UsageError(f"--tile must be a whole number of pixels, at least {MIN_TILE} and a multiple of "
                         f"{TILE_MULTIPLE} (the backbone pools four times), got {tile!r}")
    if spec.schedule != "plain":
        raise UsageError(f"--tile works with the plain schedule only: --schedule {spec.schedule} chooses its own "
                         "optimisers and sizes, and tiling runs one Adam stage at one size; drop one of them")
    if spec.optimizer != "adam":
        raise UsageError(f"--tile needs --optimizer adam: {spec.optimizer}'s line search needs the loss of the whole "
                         "image at once, which tiling never computes; drop one of them")
    if spec.scales != 1:
        raise UsageError(f"--tile optimises one size: drop --scales {spec.scales} or --tile")
    if spec.recipe is not None:
        raise UsageError(f"--tile needs this toolkit's normalised loss (per-pixel averages, so a tile's loss estimates "
                         f"the image's); --recipe {spec.recipe} has its own: drop one of them")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _refuse(given: Mapping, names: Sequence[str], why: str) -> None:
    """UsageError naming every given option in `names` that the run would ignore."""
    ignored = [_flag(n) for n in names if given.get(n) is not None]
    if ignored:
        raise UsageError(f"{', '.join(ignored)} would be ignored: {why}; drop {'it' if len(ignored) == 1 else 'them'}")


def make_spec(
    *,
    recipe: str | None = None,
    layers: str | None = None,
    style_layers: Sequence[str] | None = None,
    content_layers: Sequence[str] | None = None,
    style_weight: float | None = None,
    content_weight: float | None = None,
    tv_weight: float | None = None,
    style_scale: float | None = None,
    preserve_colors: str | None = None,
    style_transform: str | None = None,
    schedule: str | None = None,
    steps: int | None = None,
    optimizer: str | None = None,
    learning_rate: float | None = None,
    scales: int | None = None,
    tile: int | None = None,
    plateau: float | None = None,
    init: str | None = None,
    seed: int = 0,
    size: int | None = None,
    content: ImageRef | None = None,
    styles: Sequence[ImageRef] = (),
    init_image: ImageRef | None = None,
    backbone: BackboneRef | None = None,
) -> RunSpec:
    """The one way to build a `RunSpec`: `None` means "not given" (the default applies).

    A recipe fixes its loss (terms, weights, layers) and brings its own optimiser, step size,
    init and budget, which options may replace; a named schedule (`fast`) fixes its optimiser,
    step sizes and sizes; L-BFGS has no learning rate.  Giving an option that the run would not
    use is a `UsageError` naming it, never a silent drop.  `layers` names a preset of the
    backbone's architecture (`backbone.architecture`, VGG16 without a backbone; default: that
    architecture's own default preset); one it does not have is a `UsageError`.
    """
    given = dict(layers=layers, style_layers=style_layers, content_layers=content_layers,
                 style_weight=style_weight, content_weight=content_weight, tv_weight=tv_weight,
                 style_transform=style_transform,
                 style_scale=style_scale, optimizer=optimizer, learning_rate=learning_rate, scales=scales,
                 init=init if init_image is None else "image", tile=tile, plateau=plateau)
    schedule = schedule or "plain"
    if recipe is not None:
        _check_recipe_name(recipe)
        _refuse(given, ("layers", "style_layers", "content_layers", "style_weight", "content_weight",
                        "tv_weight", "style_transform"), f"--recipe {recipe} fixes its own loss, its weights and layers")
        _check_recipe_architecture(recipe, backbone)
    if schedule != "plain":
        _refuse(given, ("optimizer", "learning_rate", "scales"),
                f"--schedule {schedule} chooses its own optimiser, step sizes and image sizes")
    if layers is not None and style_layers and content_layers:
        _refuse(given, ("layers",), "--style-layers and --content-layers replace every layer of the preset")
    architecture = backbone.architecture if backbone is not None else DEFAULT_ARCHITECTURE
    fields = _objective_fields(recipe, given, architecture) | _schedule_fields(recipe, schedule, steps, given)
    if fields["optimizer"] == "lbfgs":
        _refuse(given, ("learning_rate",), "L-BFGS chooses its own step length" +
                ("" if optimizer else " (L-BFGS is the default optimiser: add --optimizer adam to set Adam's step)"))
        fields["learning_rate"] = None
    if recipe in _RECIPES_RESIZING_STYLE:
        _refuse(given, ("style_scale",), f"--recipe {recipe} compares feature maps, so the style takes the content's size")
        fields["style_scale"] = None
    return RunSpec(content=content, styles=tuple(styles), init_image=init_image, backbone=backbone, size=size,
                   preserve_colors=preserve_colors, seed=seed, tile=tile, **fields)


#: Recipes whose objective resizes the style to the content (raw feature maps, no Gram).
_RECIPES_RESIZING_STYLE = ("article",)


def _check_recipe_name(recipe: str) -> None:
    from transfer.seeds.registry import RECIPE_NAMES

    if recipe not in RECIPE_NAMES:
        raise UsageError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPE_NAMES)}")


def _check_recipe_architecture(recipe: str, backbone: BackboneRef | None) -> None:
    """The seed recipes name VGG16 layers (their documents' truncated VGG16)."""
    if backbone is not None and backbone.architecture != DEFAULT_ARCHITECTURE:
        raise UsageError(f"--recipe {recipe} is defined on VGG16's layers; the backbone {backbone.name} is a "
                         f"{backbone.architecture}: drop --recipe or use a VGG16 backbone")


def _objective_fields(recipe: str | None, given: Mapping, architecture: str) -> dict:
    """The loss part: a recipe's layers with no free weights, or the default objective's.

    The preset is the architecture's (`--layers gatys` means different layers on VGG16 and
    VGG19, and ResNet50 has no `gatys`).
    """
    from transfer.core.features import layer_spec

    style_scale = _given_or(given["style_scale"], DEFAULTS["style_scale"])
    if recipe is not None:
        from transfer.seeds.registry import RECIPE_SETTINGS

        settings = RECIPE_SETTINGS[recipe]
        return dict(objective=recipe, style_layers=settings.layers.style, content_layers=settings.layers.content,
                    style_weight=None, content_weight=None, tv_weight=None, style_scale=style_scale,
                    init=_given_or(given["init"], settings.init))
    explicit = given["style_layers"] and given["content_layers"]
    base = None if explicit else layer_preset(architecture, given["layers"])
    spec = layer_spec(base or "custom", given["style_layers"], given["content_layers"])
    weights = {name: _given_or(given[name], DEFAULTS[name]) for name in ("style_weight", "content_weight", "tv_weight")}
    return dict(objective=DEFAULT_OBJECTIVE, style_layers=spec.style, content_layers=spec.content,
                style_transform=given["style_transform"], style_scale=style_scale,
                init=_given_or(given["init"], DEFAULTS["init"]), **weights)


def _schedule_fields(recipe: str | None, schedule: str, steps: int | None, given: Mapping) -> dict:
    """The optimiser part: a named schedule's own, a recipe's, or the given/default ones."""
    if schedule != "plain":
        if schedule not in SCHEDULES:
            raise UsageError(f"--schedule must be one of plain, {', '.join(SCHEDULES)}, got {schedule!r}")
        return dict(schedule=schedule, steps=_given_or(steps, SCHEDULES[schedule].default_steps), optimizer=None,
                    learning_rate=None, scales=None, plateau=given["plateau"] or None)
    if recipe is not None:
        from transfer.seeds.registry import RECIPE_SETTINGS

        settings = RECIPE_SETTINGS[recipe]
        own_rate = settings.adam.learning_rate if settings.adam else DEFAULTS["learning_rate"]
        return dict(schedule="plain", steps=_given_or(steps, settings.steps),
                    optimizer=_given_or(given["optimizer"], settings.optimizer),
                    learning_rate=_given_or(given["learning_rate"], own_rate),
                    scales=_given_or(given["scales"], DEFAULTS["scales"]), plateau=given["plateau"] or None)
    tiled = given["tile"] is not None  # tiles are optimised by Adam (L-BFGS needs the whole image's loss)
    return dict(schedule="plain", steps=_given_or(steps, DEFAULTS["steps"]),
                optimizer=_given_or(given["optimizer"], "adam" if tiled else DEFAULTS["optimizer"]),
                learning_rate=_given_or(given["learning_rate"], DEFAULTS["learning_rate"]),
                scales=_given_or(given["scales"], DEFAULTS["scales"]),
                plateau=_given_or(given["plateau"], DEFAULTS["plateau"]) or None)  # 0: the rule is off


def _given_or(value, default):
    return default if value is None else value
