"""`detstyle serve` in a real browser: Debian's Chromium, driven headless by Playwright.

What a user does, checked by what they would see: upload two images, start a 6-step run at
64 px, watch the live image change, download the PNG (decoded here by Pillow), find the run in
the gallery, and get a refusal on the page for a file that is not an image.
"""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transfer.web.local import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                                reason=f"{CHROMIUM} missing: `apt-get install -y chromium` (Playwright's own browser "
                                       "download cannot work offline)")
sync_api = pytest.importorskip("playwright.sync_api")


def write_png(path: Path, width: int, height: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width, y / height, 0.5 + 0.0 * x], -1) * 255
    noise = rng.integers(-30, 30, (height, width, 3))
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path)
    return path


#: Collects every `src` the live image takes (each data URI is a different picture or the same one re-sent).
WATCH_LIVE_IMAGE = """() => {
  window.__frames = [];
  new MutationObserver(() => window.__frames.push(document.getElementById('live-image').src))
    .observe(document.getElementById('live-image'), {attributes: true, attributeFilter: ['src']});
}"""


def test_browser_run_download_gallery_and_refusal(tmp_path):
    from transfer.web.app import create_app
    from transfer.web.local import serving

    content = write_png(tmp_path / "content.png", 80, 60, 1)
    style = write_png(tmp_path / "style.png", 48, 48, 2)
    not_image = tmp_path / "notes.png"
    not_image.write_text("not a picture at all")
    app = create_app(tmp_path / "out", backbones=("random",), preview_every=1)
    with serving(app) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(accept_downloads=True, viewport={"width": 1200, "height": 900})
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready='1']")
            assert page.locator("#content").input_value() == "grace_hopper"  # the demo's defaults preselected
            assert page.locator("#style").input_value() == "generated_style"

            page.set_input_files("#content-file", str(content))
            page.wait_for_function("document.getElementById('content').selectedOptions[0].text.includes('80x60')")
            page.set_input_files("#style-file", str(style))
            page.wait_for_function("document.getElementById('style').selectedOptions[0].text.includes('48x48')")

            page.select_option("#backbone", "random")
            page.fill("#size", "64")
            page.fill("#steps", "6")
            page.select_option("#optimizer", "adam")
            page.select_option("#precision", "fp32")
            page.evaluate(WATCH_LIVE_IMAGE)
            page.click("#start")
            page.wait_for_selector("#status[data-status='done']", timeout=60_000)

            frames = page.evaluate("window.__frames")
            assert len(set(frames)) >= 3, "the live image should change at least twice"
            assert "step 6 of 6" in page.inner_text("#status")
            assert page.locator("#loss-curve polyline").count() == 1

            with page.expect_download() as download:
                page.click("#download")
            result = Image.open(download.value.path())
            assert result.format == "PNG" and result.size == (64, 48)
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

            page.click("#tab-gallery")
            page.wait_for_selector("#gallery-runs .card")
            assert "random · 64px · 6 steps" in page.inner_text("#gallery-runs")

            page.click("#tab-run")
            page.set_input_files("#content-file", str(not_image))
            page.wait_for_selector("#error:not([hidden])")
            assert "notes.png: not an image file Pillow can read" in page.inner_text("#error")
        finally:
            browser.close()
    assert (tmp_path / "page.png").stat().st_size > 0
