"""`detstyle serve` at the HTTP level (FastAPI's TestClient): specs, refusals, uploads, files, jobs.

The oracles are independent of the web code: the CLI's own spec builder (`detstyle stylize`'s
parser and `build_spec`) for spec parity, `make_spec`'s own error text for refusals, hashlib for
upload ids, Pillow for decoded previews, and a direct `transfer.core.run.run` for the pixels.
"""

import hashlib
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from transfer.web.app import create_app  # noqa: E402

RUN = {"style": "generated_style", "backbone": "random", "size": "32", "steps": "6", "optimizer": "adam",
       "learning_rate": "0.05", "precision": "fp32", "seed": "3"}


def png_bytes(width: int, height: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture()
def served(tmp_path):
    out = tmp_path / "out"
    with TestClient(create_app(out, backbones=("random",), preview_every=1, max_upload_bytes=200_000)) as client:
        yield client, out


def upload(client, name: str, data: bytes):
    return client.post("/api/inputs", files={"file": (name, data, "application/octet-stream")})


def events(client, job_id: str) -> list[dict]:
    """Every update of a job's event stream until it ends."""
    found = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data:"):
                found.append(json.loads(line[5:]))
    return found


def decode(uri: str) -> Image.Image:
    import base64

    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


# --- uploads: the CLI's checks, one line each -------------------------------------------------------
def test_upload_is_named_by_its_sha256_and_listed(served):
    client, out = served
    data = png_bytes(50, 40)
    reply = upload(client, "photo.png", data)
    assert reply.status_code == 200
    assert reply.json() == {"id": hashlib.sha256(data).hexdigest()[:16] + ".png", "name": "photo.png",
                            "width": 50, "height": 40}
    assert (out / "uploads" / reply.json()["id"]).read_bytes() == data
    assert reply.json()["id"] in [i["id"] for i in client.get("/api/inputs").json()["inputs"]]
    assert not [p for p in (out / "uploads").iterdir() if p.name.startswith(".upload.")]  # no temp file left


@pytest.mark.parametrize("name,data,status,words", [
    ("notes.png", b"this is not a picture", 400, "not an image file Pillow can read"),
    ("empty.png", b"", 400, "file is empty"),
    ("big.png", png_bytes(260, 260), 413, "200,000-byte upload limit"),  # refused while streaming to disk
    ("huge.png", png_bytes(400, 400), 413, "200,000-byte upload limit"),  # refused from Content-Length
])
def test_bad_uploads_are_refused_with_one_line(served, name, data, status, words):
    client, out = served
    reply = upload(client, name, data)
    assert reply.status_code == status
    message = reply.json()["error"]
    assert words in message and "\n" not in message and (name in message or name == "huge.png")
    assert str(out) not in message  # the temp file's path is not shown
    assert not [p for p in (out / "uploads").glob("*") if not p.name.startswith("generated")]


def test_pixel_limit_and_decompression_bomb_refused_from_the_header(tmp_path):
    from transfer.limits import Limits

    app = create_app(tmp_path, backbones=("random",), limits=Limits(image_pixels=1000))
    with TestClient(app) as client:
        reply = upload(client, "wide.png", png_bytes(50, 40))  # 2000 pixels > 1000
        assert reply.status_code == 400 and "image_pixels" in reply.json()["error"]
    # a 64-byte PNG whose header claims 100000 x 100000 pixels (no pixel data): refused before decoding
    header = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", (100000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0]))
    with TestClient(create_app(tmp_path / "b", backbones=("random",))) as client:
        reply = upload(client, "bomb.png", header + _chunk(b"IEND", b""))
        assert reply.status_code == 400
        assert "decompression bomb" in reply.json()["error"] or "image_pixels" in reply.json()["error"]


def _chunk(kind: bytes, data: bytes) -> bytes:
    import zlib

    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


# --- nothing outside the output folder is served ---------------------------------------------------
@pytest.mark.parametrize("path", [
    "../secret.png", "%2e%2e/secret.png", "%2e%2e%2fsecret.png", "%252e%252e%252fsecret.png", "..%2fsecret.png",
    "sub/../../secret.png", "/secret.png", "%2Fsecret.png", "link.png", "linkdir/secret.png", "uploads/..%2f..%2fsecret.png",
])
def test_traversal_and_symlinks_are_not_served(tmp_path, path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"SECRET" + png_bytes(4, 4))
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "inside.png").write_bytes(png_bytes(4, 4))
    os.symlink(secret, out / "link.png")
    os.symlink(tmp_path, out / "linkdir")
    with TestClient(create_app(out, backbones=("random",))) as client:
        assert client.get("/files/inside.png").content == (out / "inside.png").read_bytes()  # the control
        reply = client.get("/files/" + path)
        assert reply.status_code == 404 and b"SECRET" not in reply.content


def test_raw_paths_over_a_real_socket_are_not_served(tmp_path):
    """The same escapes sent byte for byte (no client-side normalisation of `..`) to uvicorn."""
    import http.client

    from transfer.web.local import serving

    (tmp_path / "secret.png").write_bytes(b"SECRET")
    out = tmp_path / "out"
    out.mkdir()
    with serving(create_app(out, backbones=("random",))) as url:
        connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
        for raw in ("/files/../secret.png", "/files/%2e%2e/secret.png", "/files/%2e%2e%2fsecret.png",
                    "/files//" + str(tmp_path / "secret.png"), "/static/../../secret.png", "/static/%2e%2e/app.py",
                    "/api/inputs/..%2f..%2fsecret.png/image"):
            connection.request("GET", raw)
            reply = connection.getresponse()
            body = reply.read()
            assert reply.status == 404 and b"SECRET" not in body and b"create_app" not in body, raw


def test_served_file_refuses_each_escape_directly(tmp_path):
    from transfer.web.files import NotServed, served_file

    (tmp_path / "out").mkdir()
    (tmp_path / "outside.png").write_bytes(b"x")
    os.symlink(tmp_path / "outside.png", tmp_path / "out" / "link.png")
    for relative in ("../outside.png", str(tmp_path / "outside.png"), "link.png", "", "a//b.png", "x\x00.png"):
        with pytest.raises(NotServed):
            served_file(tmp_path / "out", relative)


# --- the web request builds the CLI's spec and refuses what the CLI refuses ------------------------
def test_web_spec_is_the_cli_spec(served):
    from transfer.cli.main import build_parser
    from transfer.cli.stylize import build_spec

    client, out = served
    content = upload(client, "c.png", png_bytes(40, 30)).json()["id"]
    style_path = client.app.state.uploads.path("generated_style")
    args = build_parser().parse_args(["stylize", str(out / "uploads" / content), str(style_path), "-o", "x.png",
                                      "--backbone", "random", "--size", "32", "--steps", "6", "--optimizer", "adam",
                                      "--learning-rate", "0.05", "--precision", "fp32", "--seed", "3"])
    expected = build_spec(args)
    client.app.state.runner.closing = True  # keep the worker from running it: only the spec is compared
    reply = client.post("/api/jobs", data={**RUN, "content": content})
    assert reply.status_code == 200
    assert reply.json()["digest"] == expected.digest()[:16]
    assert reply.json()["spec"] == expected.to_dict()


@pytest.mark.parametrize("change,words", [
    ({"optimizer": "lbfgs"}, None),  # learning rate without Adam: make_spec's own refusal
    ({"optimizer": "sgd"}, "--optimizer: invalid choice 'sgd'"),
    ({"steps": "0"}, "--steps: must be at least 1"),
    ({"backbone": "vgg16-imagenet"}, "not available here"),
    ({"content": "0123456789abcdef.png"}, "no uploaded image"),
    ({"content": "../../etc/passwd"}, "no uploaded image"),
])
def test_refusals_are_one_line_400s(served, change, words):
    from transfer.core.spec import make_spec
    from transfer.errors import UsageError

    client, _ = served
    if words is None:
        with pytest.raises(UsageError) as expected:
            make_spec(optimizer="lbfgs", learning_rate=0.05)
        words = str(expected.value)
    reply = client.post("/api/jobs", data={**RUN, "content": "grace_hopper", **change})
    assert reply.status_code == 400
    assert words in reply.json()["error"]
    assert client.get("/api/jobs").json()["jobs"] == []


# --- a run: live events, the result, the store, the same pixels as the library call -----------------
def test_run_streams_every_step_and_stores_the_library_result(served):
    from transfer.core.run import run
    from transfer.core.spec import RunSpec

    client, out = served
    job = client.post("/api/jobs", data={**RUN, "content": "grace_hopper"}).json()
    updates = events(client, job["id"])
    points = [p for u in updates for p in u["points"]]
    previews = [p for u in updates for p in u["previews"]]
    assert [p["step"] for p in points] == [1, 2, 3, 4, 5, 6]
    assert updates[-1]["status"] == "done" and updates[-1]["total"] == 6
    assert [p["step"] for p in previews] == sorted({p["step"] for p in previews}) and previews[-1]["step"] == 6
    assert all(decode(p["image"]).size == (32 * 512 // 600, 32) for p in previews)  # grace_hopper is 512x600
    png = client.get(updates[-1]["result"])
    assert png.headers["content-type"] == "image/png"
    result = np.asarray(Image.open(io.BytesIO(png.content)), np.float32) / 255
    spec = RunSpec.from_dict(job["spec"])
    direct = run(spec).image
    assert np.abs(result - direct).max() <= 1 / 255 + 1e-6  # the page's run is the library's run
    record = json.loads((out / "runs" / f"{spec.digest()[:16]}.json").read_text())
    assert record["spec"] == job["spec"] and record["steps"] == 6
    listed = client.get("/api/gallery").json()["runs"]
    assert [r["image"] for r in listed] == [updates[-1]["result"]] and listed[0]["spec"] == job["spec"]
    late = events(client, job["id"])  # a second tab, after the end: the whole state at once
    assert len(late) == 1 and [p["step"] for p in late[0]["points"]] == [1, 2, 3, 4, 5, 6]
    assert [p["step"] for p in late[0]["previews"]] == [6]


def test_queue_stop_and_resume(served):
    client, out = served
    long_run = {**RUN, "content": "grace_hopper", "steps": "400", "plateau": "0"}
    first = client.post("/api/jobs", data=long_run).json()
    second = client.post("/api/jobs", data={**RUN, "content": "grace_hopper", "seed": "4"}).json()
    assert second["status"] == "queued" and second["position"] in (1, 2)  # 2 while the first is still queued
    with client.stream("GET", f"/api/jobs/{first['id']}/events") as stream:  # wait until it has run a few steps
        for line in stream.iter_lines():
            if line.startswith("data:") and sum(1 for _ in json.loads(line[5:])["points"]) >= 1:
                break
    queued = {j["id"]: j for j in client.get("/api/jobs").json()["jobs"]}[second["id"]]
    assert queued["status"] == "queued" and queued["position"] == 1
    client.post(f"/api/jobs/{first['id']}/stop")
    updates = events(client, first["id"])
    stopped, done_at = updates[-1], sum(len(u["points"]) for u in updates)
    assert stopped["status"] == "stopped" and 0 < done_at < 400
    state = client.app.state.runner.state_path(client.app.state.runner.jobs[first["id"]].spec)
    assert state.is_file()  # the resumable state was written
    assert Image.open(io.BytesIO(client.get(stopped["result"]).content)).size == (27, 32)
    assert events(client, second["id"])[-1]["status"] == "done"  # the queue went on after the stop
    resumed = client.post(f"/api/jobs/{first['id']}/resume").json()
    time.sleep(0.5)
    client.post(f"/api/jobs/{resumed['id']}/stop")
    steps = [p["step"] for u in events(client, resumed["id"]) for p in u["points"]]
    # the stopped run's curve, then steps that continue where it stopped (a fresh run would restart at 1)
    assert steps[:done_at] == list(range(1, done_at + 1)) and len(steps) > done_at
    assert steps[done_at:] == list(range(done_at + 1, len(steps) + 1))


def test_resume_without_state_and_unknown_job(served):
    client, _ = served
    assert client.post("/api/jobs/nope/stop").status_code == 404
    assert client.get("/api/jobs/nope/events").status_code == 404
    job = client.post("/api/jobs", data={**RUN, "content": "grace_hopper"}).json()
    assert events(client, job["id"])[-1]["status"] == "done"
    reply = client.post(f"/api/jobs/{job['id']}/resume")
    assert reply.status_code == 400 and "no saved state" in reply.json()["error"]


def test_gallery_lists_grids_and_comparisons_by_their_markers(tmp_path):
    from transfer.io.outputs import MARKER_PREFIX

    out = tmp_path / "out"
    cells = out / "g" / "fig_cells"
    cells.mkdir(parents=True)
    (cells / (MARKER_PREFIX + "grid")).touch()
    (cells / "a__b.png").write_bytes(png_bytes(4, 4))
    (out / "g" / "fig.jpg").write_bytes(b"jpeg")
    (out / "orphan_cells").mkdir()  # no marker: not a grid
    cmp = out / "cmp"
    cmp.mkdir()
    (cmp / (MARKER_PREFIX + "compare")).touch()
    (cmp / "comparison.png").write_bytes(png_bytes(4, 4))
    (cmp / "metrics.json").write_text(json.dumps({"command": "detstyle compare x", "runs": [{"spec": {"size": 8}}]}))
    outside = tmp_path / "x.json"
    outside.write_text(json.dumps({"spec": {}}))
    (out / "evil.png").write_bytes(png_bytes(4, 4))
    os.symlink(outside, out / "evil.json")
    with TestClient(create_app(out, backbones=("random",))) as client:
        found = client.get("/api/gallery").json()
    assert found["grids"] == [{"image": "/files/g/fig.jpg", "name": "fig.jpg",
                               "cells": [{"name": "a__b", "image": "/files/g/fig_cells/a__b.png"}]}]
    assert found["comparisons"] == [{"name": "cmp", "image": "/files/cmp/comparison.png", "command": "detstyle compare x",
                                     "runs": 1, "spec": {"size": 8}}]
    assert found["runs"] == []  # metrics.json has no PNG twin; the symlinked record points outside


def test_posts_from_another_site_are_refused(served):
    client, _ = served
    reply = client.post("/api/jobs", data={**RUN, "content": "grace_hopper"}, headers={"Origin": "https://evil.example"})
    assert reply.status_code == 403 and client.get("/api/jobs").json()["jobs"] == []
    same = client.post("/api/jobs/nope/stop", headers={"Origin": "http://testserver"})
    assert same.status_code == 404  # the page's own origin passes the check


def test_only_loopback_counts_as_local():
    from transfer.cli.serve import is_loopback

    assert all(map(is_loopback, ("127.0.0.1", "127.8.0.1", "::1", "localhost")))
    assert not any(map(is_loopback, ("0.0.0.0", "::", "192.168.1.4", "example.org")))


def test_page_and_assets_are_served_locally(served):
    client, _ = served
    page = client.get("/").text
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page and client.get(asset).status_code == 200
    assert "http://" not in page and "https://" not in page  # no CDN
    assert Path(__file__).parents[1].joinpath("transfer/web/static/app.js").read_text().count("http") == 0
