"""`--engine ray` for real, on a 2-CPU Ray cluster started once for this module.

Oracles: the bytes of the PNGs a local (in-process) run of the same grid caches; a worker
process killed from outside (found by the title Ray gives it, as `ps` shows it) while units
run; the records' modification times, which a rerun must leave alone for finished cells.
Tiny grid (32 px, the random backbone, fp32), as in test_engine.
"""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.test_engine import cached_pngs, grid_args, inputs, one_error_line, run_main  # noqa: F401 (fixture)

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster():
    """One local cluster for the module's tests; shut down at the end (no global state left behind)."""
    assert not ray.is_initialized()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_a_grid_on_ray_makes_the_same_cells_as_one_process(ray_cluster, inputs, tmp_path, capsys):
    local, remote = tmp_path / "local", tmp_path / "remote"
    local.mkdir(), remote.mkdir()
    assert run_main(capsys, *grid_args(inputs, local / "g.png"))[0] == 0
    status, out, err = run_main(capsys, *grid_args(inputs, remote / "g.png", "--engine", "ray"))
    assert status == 0, err
    assert "4 run" in out and ray.is_initialized()  # the caller's cluster is not shut down by the command
    # pixel-equal, not merely close: the same PNG bytes for every cell
    assert len(cached_pngs(remote / "detstyle-cache")) == 4
    assert cached_pngs(remote / "detstyle-cache") == cached_pngs(local / "detstyle-cache")
    assert cached_pngs(remote / "g_cells") == cached_pngs(local / "g_cells")
    assert ray.available_resources().get("CPU") == 2  # the command's actors are gone


def _busy_worker_pids() -> list[int]:
    """The grid's actors running a unit now: Ray titles them `ray::UnitWorker.run` (idle: `ray::UnitWorker`)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and title.startswith(b"ray::UnitWorker.run"):
            pids.append(int(entry.name))
    return pids


def _records(cache: Path) -> list[Path]:
    return list(cache.glob("[0-9a-f]*.json"))  # not the atomic writes' hidden temporary files


def _kill_a_worker_after_the_first_record(cache: Path, killed: list, timeout: float = 120) -> None:
    """SIGKILL one grid actor once a cell is finished and its writer has had time to take the next cell.

    Both actors are then in the middle of a cell (a cell takes seconds here), so the kill
    loses exactly one running cell, whichever actor it hits.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not _records(cache):
        time.sleep(0.02)
    time.sleep(0.3)
    for pid in _busy_worker_pids()[:1]:
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds Ray's workers through /proc (Linux)")
def test_a_killed_worker_loses_only_its_unit_and_the_rerun_completes_the_rest(ray_cluster, inputs, tmp_path,
                                                                              capsys):
    output, cache = tmp_path / "g.png", tmp_path / "detstyle-cache"
    args = grid_args(inputs, output, "--engine", "ray", "--steps", 30, "--plateau", 0)  # cells long enough to be hit
    killed: list[int] = []
    watcher = threading.Thread(target=_kill_a_worker_after_the_first_record, args=(cache, killed))
    watcher.start()
    status, out, err = run_main(capsys, *args)
    watcher.join()
    assert killed, "no Ray worker was found to kill"
    line = one_error_line(err)
    assert status == 1 and "run the same command again to finish" in line, err
    done = len(_records(cache))
    assert done == 3 and "3 of 4 cells done" in line  # one lost with the worker, the other actor did the rest
    assert not output.exists()  # no figure from a partial grid
    finished = {p.name: p.stat().st_mtime_ns for p in _records(cache)}

    status, out, err = run_main(capsys, *args)
    assert status == 0, err
    assert "1 run" in out and "3 from" in out
    assert {name: (cache / name).stat().st_mtime_ns for name in finished} == finished  # finished cells untouched
    assert len(_records(cache)) == 4 and output.is_file()
