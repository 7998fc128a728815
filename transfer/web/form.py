"""The page's run form -> the same `RunSpec` the CLI builds, with the same refusals.

Why a Namespace: `transfer.cli.options.spec_from_args` is the one place a spec is built
from run options, so the form is turned into the Namespace `detstyle stylize` would parse
(values through the CLI's own type functions, choices from the same registries) and handed
to it.  A web run and a command line with the same options have the same spec digest.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

from transfer.backbones.architectures import ALL_PRESETS
from transfer.cli.options import AUTO_PRECISION, non_negative_float, positive_int, resolved_precision, spec_from_args
from transfer.core.schedules import SCHEDULE_NAMES
from transfer.core.spec import OPTIMIZERS, PRECISIONS, RunSpec
from transfer.errors import UsageError
from transfer.seeds.registry import RECIPE_NAMES

#: `stylize`'s defaults for what the form leaves empty (the toolkit's own fill the rest, in make_spec).
DEFAULT_SIZE, DEFAULT_STEPS = 512, 300
PRECISION_CHOICES = (AUTO_PRECISION, *PRECISIONS)


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


#: form field -> (parser of its text, allowed values or None).  A field missing or empty is "not given".
NUMBER_FIELDS: dict[str, Callable[[str], object]] = {
    "size": positive_int, "steps": positive_int, "scales": positive_int, "seed": _seed,
    "style_weight": non_negative_float, "content_weight": non_negative_float, "tv_weight": non_negative_float,
    "learning_rate": non_negative_float, "style_scale": non_negative_float, "plateau": non_negative_float,
}
CHOICE_FIELDS: dict[str, tuple[str, ...]] = {
    "layers": ALL_PRESETS, "recipe": RECIPE_NAMES, "schedule": SCHEDULE_NAMES, "optimizer": OPTIMIZERS,
    "precision": PRECISION_CHOICES,
}


def choices(backbones: tuple[str, ...]) -> dict:
    """What the page offers: every choice list from its registry, the available backbones, the defaults."""
    return {"backbones": list(backbones), **{name: list(values) for name, values in CHOICE_FIELDS.items()},
            "defaults": {"size": DEFAULT_SIZE, "steps": DEFAULT_STEPS, "precision": AUTO_PRECISION,
                         "backbone": backbones[0] if backbones else None, "seed": 0}}


def parse_form(form: Mapping[str, str], backbones: tuple[str, ...]) -> argparse.Namespace:
    """The Namespace `detstyle stylize` would have parsed; a bad value is a one-line `UsageError`."""
    values: dict[str, object] = {}
    for name, parse in NUMBER_FIELDS.items():
        text = (form.get(name) or "").strip()
        try:
            values[name] = parse(text) if text else None
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"--{name.replace('_', '-')}: {exc}") from None
    for name, allowed in CHOICE_FIELDS.items():
        text = (form.get(name) or "").strip() or None
        if text is not None and text not in allowed:
            raise UsageError(f"--{name}: invalid choice {text!r} (choose from {', '.join(allowed)})")
        values[name] = text
    backbone = (form.get("backbone") or "").strip() or (backbones[0] if backbones else "random")
    if backbone not in backbones:
        raise UsageError(f"--backbone {backbone!r} is not available here (available: {', '.join(backbones)})")
    values.update(size=values["size"] or DEFAULT_SIZE, seed=values["seed"] or 0,
                  precision=values["precision"] or AUTO_PRECISION, backbone=backbone, profile=None,
                  style_layers=None, content_layers=None, preserve_colors=None, style_transform=None,
                  init=None, tile=None)
    return argparse.Namespace(**values)


def build_spec(args: argparse.Namespace, content_path, style_path) -> RunSpec:
    """The run spec of the form's options and the two chosen images (exactly as `stylize` builds it)."""
    from transfer.backbones.load import resolve_backbone
    from transfer.core.run import check_output_size
    from transfer.io.images import image_ref

    backbone = resolve_backbone(args.backbone, precision=resolved_precision(args.precision))
    spec = spec_from_args(args, steps=DEFAULT_STEPS, content=image_ref(content_path), styles=[image_ref(style_path)],
                          backbone=backbone)
    check_output_size(spec)
    return spec


def available_backbones() -> tuple[str, ...]:
    """Registry names whose weights are here now (no download is tried): what the page offers.

    Files are found, not hashed (a 100 MB sha256 per page load would be slow); the run itself
    verifies them through `resolve_backbone`, like the CLI.
    """
    from weights.errors import WeightsError
    from weights.registry import REGISTRY
    from weights.resolver import resolve

    found = []
    for name in REGISTRY:
        try:
            resolve(name, allow_download=False, verify=False)
        except WeightsError:
            continue
        found.append(name)
    preferred = [n for n in ("vgg16-mri", "random") if n in found]  # the demo's backbone first, then the control
    return tuple(preferred + [n for n in found if n not in preferred])
