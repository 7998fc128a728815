"""`python -m bench.web_screenshot`: the README's picture of `detstyle serve`, taken mid-run.

Serves the page on 127.0.0.1 (in this process, into a temporary output folder), opens it in
Debian's Chromium through Playwright, starts a run with the demo's defaults (grace_hopper.jpg,
the generated swirl style, `--backbone`), waits until the run is `--at` of the way through,
takes the screenshot and stops the run.  The PNG is reduced to a 256-colour palette when it
is above `--max-kb`, so the README stays light.

  python -m bench.web_screenshot -o docs/web/page.png
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.web_screenshot", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/web/page.png"))
    parser.add_argument("--backbone", default="vgg16-mri")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--at", type=float, default=0.5, help="share of the steps done when the picture is taken")
    parser.add_argument("--max-kb", type=int, default=400)
    return parser


def shoot(args: argparse.Namespace, out_dir: Path) -> bytes:
    """The PNG bytes of the page, taken once the live image has reached `--at` of the steps."""
    from playwright.sync_api import sync_playwright

    from transfer.web.app import create_app
    from transfer.web.local import CHROMIUM, CHROMIUM_ARGS, serving

    app = create_app(out_dir, preview_every=max(1, args.steps // 40))
    with serving(app) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": 1180, "height": 820})
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready='1']")
            page.select_option("#backbone", args.backbone)
            page.fill("#size", str(args.size))
            page.fill("#steps", str(args.steps))
            page.select_option("#optimizer", "adam")
            page.click("#start")
            wanted = max(2, int(args.steps * args.at))
            page.wait_for_function(f"Number(document.getElementById('live-image').dataset.step) >= {wanted}",
                                   timeout=600_000)
            picture = page.screenshot()
            page.click("#stop")
            page.wait_for_selector("#status[data-status='stopped']", timeout=120_000)
        finally:
            browser.close()
    return picture


def write(picture: bytes, path: Path, max_kb: int) -> Path:
    """The screenshot, as a 256-colour palette PNG when it is above `max_kb`, written atomically."""
    import io

    from PIL import Image

    from transfer.io.images import atomic_write

    image = Image.open(io.BytesIO(picture)).convert("RGB")
    if len(picture) > max_kb * 1024:
        image = image.quantize(256, method=Image.Quantize.MEDIANCUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG", optimize=True))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="web_screenshot_") as tmp:
        picture = shoot(args, Path(tmp))
    write(picture, args.output, args.max_kb)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
