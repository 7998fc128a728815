"""Grids and comparisons started from the page (`POST /api/grids`, `/api/comparisons`).

Oracles independent of the web code: `detstyle grid` itself (run through `transfer.cli.main`)
writes the reference cache and cell files; `make_spec`'s own error text for a refusal; the
RunStore's files on disk for "a stopped cell is never stored half-done".
"""

import hashlib
import json

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from transfer.web.app import create_app  # noqa: E402
from tests.test_web import events, png_bytes, upload  # noqa: E402

OPTIONS = {"backbone": "random", "size": "32", "steps": "3", "optimizer": "adam", "learning_rate": "0.05",
           "precision": "fp32", "seed": "3"}
CLI_OPTIONS = ["--backbone", "random", "--size", "32", "--steps", "3", "--optimizer", "adam", "--learning-rate",
               "0.05", "--precision", "fp32", "--seed", "3"]


@pytest.fixture()
def served(tmp_path):
    out = tmp_path / "out"
    with TestClient(create_app(out, backbones=("random",), preview_every=1)) as client:
        yield client, out


def digests(folder, pattern="*.png") -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob(pattern))}


def grid_form(content_ids, style_ids, **change):
    return [*[("contents", c) for c in content_ids], *[("styles", s) for s in style_ids],
            *{**OPTIONS, **change}.items()]


def post(client, route, form):
    # repeated fields (the page's multi-selects) as a urlencoded body
    from urllib.parse import urlencode

    return client.post(route, content=urlencode(form), headers={"Content-Type": "application/x-www-form-urlencoded"})


def test_grid_from_the_page_is_the_cli_grid(served, tmp_path):
    from transfer.cli.main import main

    client, out = served
    second = upload(client, "second.png", png_bytes(40, 30, seed=1)).json()["id"]
    job = post(client, "/api/grids", grid_form(["grace_hopper", second], ["generated_style"])).json()
    assert job["kind"] == "grid" and job["units"] == 2
    updates = events(client, job["id"])
    final = updates[-1]
    assert final["status"] == "done", final["message"]
    cells = [c for u in updates for c in u["cells"]]
    assert [c["index"] for c in cells] == [0, 1] and not any(c["cached"] for c in cells)
    steps = [(p["cell"], p["step"]) for u in updates for p in u["points"]]
    assert steps == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]  # each cell's live losses, in order

    # the oracle: `detstyle grid` on the same files with the same options
    uploads = client.app.state.uploads
    contents = [str(uploads.path("grace_hopper")), str(uploads.path(second))]
    cli_figure = tmp_path / "cli" / "grid.png"
    cli_figure.parent.mkdir()
    assert main(["grid", "--contents", *contents, "--styles", str(uploads.path("generated_style")),
                 "-o", str(cli_figure), "--quiet", *CLI_OPTIONS]) == 0
    web_figure = out / "grids" / (final["files"]["figure"].rsplit("/", 1)[1])
    assert final["files"]["figure"] == f"/files/grids/{web_figure.name}" and web_figure.is_file()
    web_cells = web_figure.with_name(web_figure.stem + "_cells")
    assert digests(web_cells) == digests(cli_figure.with_name("grid_cells"))  # same names, same bytes
    web_cache, cli_cache = out / "grids" / "detstyle-cache", cli_figure.parent / "detstyle-cache"
    assert digests(web_cache) == digests(cli_cache)  # cached under the same spec digests, same bytes
    assert len(digests(web_cache)) == 2
    for cell in cells:  # each live cell event shows the cached cell
        assert client.get(cell["image"]).content == (web_cells / f"{cell['name']}.png").read_bytes()

    grids = client.get("/api/gallery").json()["grids"]
    assert [g["image"] for g in grids] == [final["files"]["figure"]] and len(grids[0]["cells"]) == 2
    assert client.get(grids[0]["image"]).content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/api/gallery").json()["runs"] == []  # the cached cells are the grid's, not single runs

    again = post(client, "/api/grids", grid_form(["grace_hopper", second], ["generated_style"])).json()
    rerun = events(client, again["id"])
    assert rerun[-1]["status"] == "done" and rerun[-1]["message"].startswith("finished: 0 of 2 cells run now")
    assert all(c["cached"] for u in rerun for c in u["cells"]) and not [p for u in rerun for p in u["points"]]


@pytest.mark.parametrize("route,change,lists,words", [
    ("/api/grids", {"optimizer": "lbfgs"}, None, None),  # make_spec's own refusal
    ("/api/grids", {"steps": "0"}, None, "--steps: must be at least 1"),
    ("/api/grids", {}, {"contents": []}, "--contents: pick at least one image"),
    ("/api/grids", {}, {"styles": ["0123456789abcdef.png"]}, "no uploaded image"),
    ("/api/comparisons", {}, {"backbones": ["random"]}, "a comparison needs at least 2 backbones, got 1: random"),
    ("/api/comparisons", {}, {"backbones": ["random", "vgg16-imagenet"]}, "vgg16-imagenet: not available here"),
])
def test_refusals_are_one_line_400s_and_queue_nothing(served, route, change, lists, words):
    from transfer.core.spec import make_spec
    from transfer.errors import UsageError

    client, _ = served
    if words is None:
        with pytest.raises(UsageError) as expected:
            make_spec(optimizer="lbfgs", learning_rate=0.05)
        words = str(expected.value)
    chosen = {"contents": ["grace_hopper"], "styles": ["generated_style"], "backbones": ["random"], **(lists or {})}
    form = [(k, v) for k, values in chosen.items() for v in values] + list({**OPTIONS, **change}.items())
    reply = post(client, route, form)
    assert reply.status_code == 400
    assert words in reply.json()["error"] and "\n" not in reply.json()["error"]
    assert client.get("/api/jobs").json()["jobs"] == []


def test_stop_keeps_no_half_done_cell(served):
    client, out = served
    form = grid_form(["grace_hopper"], ["generated_style"], steps="400", plateau="0")
    job = post(client, "/api/grids", form).json()
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data:") and json.loads(line[5:])["points"]:
                break
    client.post(f"/api/jobs/{job['id']}/stop")
    final = events(client, job["id"])[-1]
    assert final["status"] == "stopped" and "0 of 1 cells finished" in final["message"]
    cache = out / "grids" / "detstyle-cache"
    assert not list(cache.glob("*.json")) and not list(cache.glob("*.png"))  # the running cell was dropped


def test_resume_after_a_stop_between_cells_reuses_the_finished_cell(served):
    client, out = served
    job = post(client, "/api/grids", grid_form(["grace_hopper"], ["generated_style", "grace_hopper"],
                                                 steps="150", plateau="0")).json()
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
        for line in stream.iter_lines():  # stop as soon as the first cell is finished
            if line.startswith("data:") and json.loads(line[5:])["cells"]:
                client.post(f"/api/jobs/{job['id']}/stop")
                break
    final = events(client, job["id"])[-1]
    assert final["status"] == "stopped" and "1 of 2 cells finished" in final["message"], final["message"]
    assert len(list((out / "grids" / "detstyle-cache").glob("*.json"))) == 1
    resumed = client.post(f"/api/jobs/{job['id']}/resume").json()
    updates = events(client, resumed["id"])
    assert updates[-1]["status"] == "done" and "1 of 2 cells run now, 1 taken from the cache" in updates[-1]["message"]
    assert [(c["index"], c["cached"]) for u in updates for c in u["cells"]] == [(0, True), (1, False)]
    assert {p["cell"] for u in updates for p in u["points"]} == {1}  # only the missing cell was optimised


def test_grid_started_in_a_real_browser(tmp_path):
    """The page's Grid form: two contents picked in the multi-select, two cells shown live, the figure linked."""
    import os

    from transfer.web.local import CHROMIUM, CHROMIUM_ARGS, serving

    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} missing: `apt-get install -y chromium`")
    sync_api = pytest.importorskip("playwright.sync_api")
    app = create_app(tmp_path / "out", backbones=("random",), preview_every=1)
    with serving(app) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready='1']")
            picked = page.locator("#contents").evaluate("s => [...s.selectedOptions].map(o => o.value)")
            assert picked == ["grace_hopper"]  # the demo's content preselected
            page.select_option("#contents", ["grace_hopper", "generated_style"])
            page.select_option("#styles", ["generated_style"])
            page.fill("#size", "32")
            page.fill("#steps", "2")
            page.select_option("#optimizer", "adam")
            page.select_option("#precision", "fp32")
            page.click("#start-grid")
            page.wait_for_selector("#status[data-status='done']", timeout=60_000)
            assert "grid: 2 of 2 cells done" in page.inner_text("#status")
            assert page.locator("#cells figure").count() == 2
            figure = page.locator("#files a", has_text="figure").get_attribute("href")
            assert figure.startswith("/files/grids/grid-") and figure.endswith(".png")
            page.click("#start-compare")  # one backbone offered: compare's refusal shows on the page
            page.wait_for_selector("#error:not([hidden])")
            assert "at least 2 backbones" in page.inner_text("#error")
            page.click("#tab-gallery")
            page.wait_for_selector("#gallery-grids .card")
            assert "(2 cells)" in page.inner_text("#gallery-grids")
        finally:
            browser.close()


def test_comparison_form_is_compares_plan(tmp_path):
    """The comparison the page queues has `detstyle compare`'s specs (parsed by the CLI's own parser)."""
    from transfer.cli.compare import build_plan
    from transfer.cli.main import build_parser

    out = tmp_path / "out"
    with TestClient(create_app(out, backbones=("random", "random-vgg19"))) as client:
        client.app.state.runner.closing = True  # keep the worker from running it: only the plan is compared
        form = [("contents", "grace_hopper"), ("styles", "generated_style"), ("backbones", "random"),
                ("backbones", "random-vgg19"), ("layers", "gatys"),
                *{k: v for k, v in OPTIONS.items() if k != "backbone"}.items()]
        reply = post(client, "/api/comparisons", form)
        assert reply.status_code == 200, reply.text
        queued = client.app.state.runner.jobs[reply.json()["id"]].batch
        uploads = client.app.state.uploads
        argv = ["compare", str(uploads.path("grace_hopper")), "--styles", str(uploads.path("generated_style")),
                "--backbones", "random,random-vgg19", "--layers", "gatys", "-o", str(tmp_path / "cmp"),
                *CLI_OPTIONS[2:]]
    expected = build_plan(build_parser().parse_args(argv))
    assert [r.spec.digest() for r in queued.plan.runs] == [r.spec.digest() for r in expected.runs]
    assert len(expected.runs) == 2 and reply.json()["command"][:9] == argv[:9]
