"""Backbones by registry name or file: a feature network with weights (VGG16 through `block5_conv3` by default).

Two steps, so a run can be specified before anything heavy is loaded:

* `resolve_backbone(name_or_path)` -> `BackboneRef`: finds the file (the registry's search
  order, `weights.resolver`), verifies it against the registry's checksum when it has one,
  and records its sha256 and preprocessing profile;
* `load_backbone(ref)` -> `Backbone`: reads that file, checks it still has that sha256,
  copies its weights by name into the network of `ref.architecture` (VGG16: its 13
  convolutions; VGG19, ResNet50: every weight of the cut network, BatchNorm statistics
  included, `transfer.backbones.architectures`) and applies the precision.

Names come from `weights.registry.REGISTRY` (`vgg16-mri`, `ssd300-voc`, `vgg16-imagenet`,
`vgg16-reducedfc`, `vgg19-imagenet`, `resnet50-imagenet`, and the generated controls
`random`, `random-vgg19`, `random-resnet50`); any path `weights.read_checkpoint` understands
works too, and so does a `.weights.h5` written by `detstyle weights convert` (with its JSON
sidecar).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np

from models.vgg16 import VGG16_CONV_LAYERS
from transfer.backbones.architectures import DEFAULT_ARCHITECTURE, build_model, get_architecture
from transfer.backbones.copy import CopyReport, copy_backbone
from transfer.core.preprocessing import check_profile
from transfer.core.spec import BackboneRef
from transfer.errors import DetstyleError
from weights.checksum import sha256
from weights.registry import REGISTRY, default_profile_for

#: Suffix of the toolkit's own format (Keras 3 weights of the truncated VGG16 + JSON sidecar).
SAVED_SUFFIX = ".weights.h5"


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A feature network ready for feature extraction, and which weights it holds (`ref`)."""

    ref: BackboneRef
    model: keras.Model  # input -> the architecture's deepest tap (VGG16: block5_conv3), Keras layer names
    description: str
    report: CopyReport | None = None

    @property
    def name(self) -> str:
        """The registry name, or the weights file's base name."""
        return self.ref.name if self.ref.name in REGISTRY else Path(self.ref.name).name

    @property
    def profile(self) -> str:
        return self.ref.profile


def truncated_vgg16(dtype: str | None = None) -> keras.Model:
    """An untrained VGG16 cut after `block5_conv3`, accepting any input size."""
    return build_model("vgg16", dtype)


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(SAVED_SUFFIX) + ".json")


def read_sidecar(path: Path) -> dict:
    """The JSON beside a `.weights.h5` ({} when there is none); a corrupt one is a clear error."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return {}
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DetstyleError(f"{sidecar}: not a readable sidecar JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise DetstyleError(f"{sidecar}: not a sidecar JSON object")
    return meta


def resolve_backbone(name_or_path: str, *, profile: str | None = None, precision: str = "fp32",
                     architecture: str | None = None) -> BackboneRef:
    """Which weights a name or path means: the file's sha256, the profile and the architecture.

    The profile is the one given, else the registry entry's, else the sidecar's (the
    toolkit's own files), else the default of the file's format (`weights.registry`).  The
    architecture is the registry entry's (a registered name or file), else the sidecar's,
    else `architecture`, else VGG16; a given one that contradicts the registry is refused.
    """
    from weights.resolver import resolve

    entry = REGISTRY.get(name_or_path)
    if entry is not None and entry.filename is None:  # generated weights: the seed fixes them
        return BackboneRef(name_or_path, None, check_profile(profile or entry.preprocessing_profile), precision,
                           _architecture(entry.architecture, architecture, name_or_path))
    path = Path(name_or_path)
    if path.name.endswith(SAVED_SUFFIX) and path.is_file():
        meta = read_sidecar(path)
        chosen = profile or meta.get("preprocessing_profile", "caffe")
        return BackboneRef(str(path), sha256(path), check_profile(chosen), precision,
                           _architecture(meta.get("architecture"), architecture, str(path)))
    resolved = resolve(name_or_path)
    digest = resolved.verify_result.actual_digest if _sha256_verified(resolved) else sha256(resolved.path)
    entry = resolved.entry
    chosen = profile or (entry.preprocessing_profile if entry else default_profile_for(resolved.path))
    name = entry.name if entry is not None and name_or_path == entry.name else str(resolved.path)
    return BackboneRef(name, digest, check_profile(chosen), precision,
                       _architecture(entry.architecture if entry else None, architecture, name))


def _architecture(recorded: str | None, given: str | None, source: str) -> str:
    """The recorded architecture (registry, sidecar), else the given one, else VGG16."""
    if recorded is not None and given is not None and given != recorded:
        raise DetstyleError(f"{source} holds a {recorded}, not a {given}")
    return get_architecture(recorded or given or DEFAULT_ARCHITECTURE).name


def _sha256_verified(resolved) -> bool:
    result = resolved.verify_result
    return bool(resolved.verified and result is not None and result.algorithm == "sha256")


def load_backbone(ref_or_name: BackboneRef | str, *, profile: str | None = None, precision: str = "fp32",
                  seed: int = 0) -> Backbone:
    """A ready feature network for a `BackboneRef` (or a name/path, resolved first).

    `seed` fixes the generated weights of the random controls and nothing else.
    """
    from transfer.backbones.precision import with_precision

    ref = ref_or_name if isinstance(ref_or_name, BackboneRef) else \
        resolve_backbone(ref_or_name, profile=profile, precision=precision)
    entry = REGISTRY.get(ref.name)
    if entry is not None and entry.architecture != ref.architecture:
        raise DetstyleError(f"{ref.name} is a {entry.architecture}, but the run spec says {ref.architecture}")
    if ref.sha256 is None:
        from transfer.backbones.random_control import random_backbone

        backbone = random_backbone(seed, ref.profile, ref.architecture)
    else:
        backbone = _backbone_from_file(ref, _checked_file(ref))
    return with_precision(backbone, ref.precision)


def _checked_file(ref: BackboneRef) -> Path:
    """The file `ref` names, refused unless its bytes still have the sha256 recorded in `ref`."""
    from weights.resolver import resolve

    path = Path(ref.name) if ref.name not in REGISTRY else resolve(ref.name, verify=False).path
    actual = sha256(path)
    if actual != ref.sha256:
        raise DetstyleError(f"{path}: sha256 {actual} differs from the {ref.sha256} recorded for this run; "
                            "the file changed since the run was specified")
    return path


def _backbone_from_file(ref: BackboneRef, path: Path) -> Backbone:
    if ref.architecture != DEFAULT_ARCHITECTURE:
        return named_backbone(ref, path)
    if path.name.endswith(SAVED_SUFFIX):
        return saved_backbone(ref, path)
    from transfer.backbones.convert import backbone_weights_from_checkpoint
    from weights import read_checkpoint

    checkpoint = read_checkpoint(path)
    weights = backbone_weights_from_checkpoint(checkpoint)
    entry = REGISTRY.get(ref.name)
    description = entry.description if entry is not None else f"{checkpoint.layout} from {path}"
    return backbone_from_weights(ref, weights, description)


def backbone_from_weights(ref: BackboneRef, weights: dict[str, list[np.ndarray]], description: str,
                          allow_partial: bool = False) -> Backbone:
    """Build a truncated VGG16 and fill its 13 convs from `{layer: [kernel, bias]}`."""
    model = truncated_vgg16()
    report = copy_backbone(weights, model, layers=VGG16_CONV_LAYERS, allow_partial=allow_partial)
    return Backbone(ref, model, description, report)


def named_backbone(ref: BackboneRef, path: Path) -> Backbone:
    """`ref.architecture` filled from a Keras-named file: every weight of the cut network, by name.

    Each layer's weights are matched by layer name and weight name (kernel, bias, gamma, beta,
    moving_mean, moving_variance), every shape is checked, and any missing or mismatched layer
    refuses the whole copy (`copy_backbone`); layers past the cut are reported as unused.
    """
    from transfer.backbones.convert import keras_weights_for_model
    from weights import read_checkpoint

    checkpoint = read_checkpoint(path)
    model = build_model(ref.architecture)
    report = copy_backbone(keras_weights_for_model(checkpoint, model), model)
    entry = REGISTRY.get(ref.name)
    description = entry.description if entry is not None else f"{ref.architecture} from {checkpoint.layout} {path}"
    return Backbone(ref, model, description, report)


def saved_backbone(ref: BackboneRef, path: Path) -> Backbone:
    """A truncated VGG16 `.weights.h5` written by this toolkit (described by its sidecar)."""
    meta = read_sidecar(path)
    model = truncated_vgg16()
    try:
        model.load_weights(str(path))
    except Exception as exc:  # Keras raises ValueError/OSError/KeyError for foreign files
        raise DetstyleError(f"{path}: not a truncated-VGG16 weights file ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    return Backbone(ref, model, str(meta.get("description") or meta.get("source") or path))
