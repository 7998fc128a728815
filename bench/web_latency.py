"""`python -m bench.web_latency`: how soon `detstyle serve` shows the first live image, and what it does
with a 50-megapixel upload.

The server is the real command (`python -m transfer serve`) in its own process, driven over
HTTP like the page does, so its memory and CPU time are read from /proc for that process alone:

* first image: for each repeat, the wall time from the start of `POST /api/jobs` (demo content
  and style, the given backbone, 256 px) to the first event of the job's stream that carries a
  preview image; each run is then stopped.  The first repeat pays the backbone's load and
  TensorFlow's first tracing; later ones reuse the loaded backbone (a server keeps it);
* 50 megapixels: a 8660 x 5774 PNG (generated in a temporary folder) is uploaded to a server
  with the default limits (accepted or refused, the time to the answer, the server's peak
  memory) and to one started with `--limit image_pixels=40e6` (refused from the header); with
  `--run-large`, a 256 px run from the accepted upload is started and timed to its first image
  (the full-size decode happens there).

Writes `bench/results/web_first_image.json` and `.md` (each repeat, wall and server CPU seconds,
peak resident memory of the server process).

  python -m bench.web_latency --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
LARGE = (8660, 5774)  # width, height: 50.0 megapixels


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.web_latency", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs timed to their first live image (default 3)")
    parser.add_argument("--size", type=int, default=256, help="output size in px (default 256)")
    parser.add_argument("--backbone", default="vgg16-mri", help="default vgg16-mri, the demo's backbone")
    parser.add_argument("--precision", default="auto", help="as `detstyle stylize --precision` (default auto)")
    parser.add_argument("--run-large", action="store_true", help="also run 256 px from the 50-megapixel upload")
    parser.add_argument("--skip-large", action="store_true", help="leave out the 50-megapixel upload")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


class Server:
    """`python -m transfer serve` on a free loopback port, with /proc readings of its process."""

    def __init__(self, out_dir: Path, *extra: str):
        from transfer.web.local import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "transfer", "serve", "--port", str(self.port), "--out-dir", str(out_dir),
                   *extra]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.started = time.perf_counter()
        self._wait_ready()

    def _wait_ready(self, timeout: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                httpx.get(self.url + "/api/options", timeout=5).raise_for_status()
                self.ready_seconds = time.perf_counter() - self.started
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("the server did not answer in time")

    def status(self, field: str) -> float:
        """A /proc/PID/status memory field (VmHWM: peak resident, VmRSS: now) in MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
        raise KeyError(field)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server process so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def first_image(server: Server, form: dict) -> dict:
    """Start a run; seconds from the POST to the first event with a preview; then stop it."""
    import httpx

    cpu, start = server.cpu_seconds(), time.perf_counter()
    reply = httpx.post(server.url + "/api/jobs", data=form, timeout=60)
    if reply.status_code != 200:
        raise RuntimeError(reply.json()["error"])
    job = reply.json()
    seen = None
    with httpx.stream("GET", f"{server.url}/api/jobs/{job['id']}/events", timeout=600) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            update = json.loads(line[5:])
            if update["previews"]:
                seen = time.perf_counter() - start, update["previews"][0]["step"]
                break
            if update["status"] in ("failed", "done", "stopped"):
                raise RuntimeError(f"the run ended before an image: {update['message']}")
    result = {"seconds": round(seen[0], 3), "server_cpu_seconds": round(server.cpu_seconds() - cpu, 3),
              "step": seen[1], "precision": job["spec"]["backbone"]["precision"]}
    httpx.post(f"{server.url}/api/jobs/{job['id']}/stop", timeout=60)
    _wait_final(server, job["id"])
    return result


def _wait_final(server: Server, job_id: str) -> None:
    import httpx

    with httpx.stream("GET", f"{server.url}/api/jobs/{job_id}/events", timeout=600) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:") and json.loads(line[5:])["status"] in ("failed", "done", "stopped"):
                return


def make_large_png(path: Path) -> Path:
    """A 50-megapixel photo-like PNG (smooth colour fields and grain), written in bands to keep memory low."""
    from PIL import Image

    width, height = LARGE
    image = Image.new("RGB", LARGE)
    rng = np.random.default_rng(0)
    x = np.linspace(0, 6 * np.pi, width, dtype=np.float32)
    for top in range(0, height, 512):
        rows = np.arange(top, min(top + 512, height), dtype=np.float32)[:, None] / height
        band = np.stack([np.sin(x + 3 * rows), np.cos(x * 0.7 - 2 * rows), np.sin(0.5 * x + rows * 5)], -1)
        band = (band * 0.4 + 0.5) * 255 + rng.normal(0, 4, band.shape)
        image.paste(Image.fromarray(np.clip(band, 0, 255).astype(np.uint8)), (0, top))
    image.save(path, compress_level=1)
    return path


def upload(server: Server, path: Path) -> dict:
    import httpx

    cpu, before, start = server.cpu_seconds(), server.status("VmHWM"), time.perf_counter()
    with open(path, "rb") as file:
        reply = httpx.post(server.url + "/api/inputs", files={"file": (path.name, file, "image/png")}, timeout=600)
    body = reply.json()
    return {"http_status": reply.status_code, "answer": body.get("error") or body,
            "seconds": round(time.perf_counter() - start, 3), "server_cpu_seconds": round(server.cpu_seconds() - cpu, 3),
            "server_peak_rss_mib_before": round(before, 1), "server_peak_rss_mib_after": round(server.status("VmHWM"), 1)}


def large_upload(args, folder: Path) -> dict:
    png = make_large_png(folder / "large_50mp.png")
    found = {"file": {"width": LARGE[0], "height": LARGE[1], "megapixels": round(LARGE[0] * LARGE[1] / 1e6, 2),
                      "bytes": png.stat().st_size}}
    server = Server(folder / "out_default")
    try:
        found["default_limits"] = upload(server, png)
        if args.run_large and found["default_limits"]["http_status"] == 200:
            form = _form(args, found["default_limits"]["answer"]["id"], 0)
            found["default_limits"]["run_first_image"] = first_image(server, form)
            found["default_limits"]["server_peak_rss_mib_after_run"] = round(server.status("VmHWM"), 1)
    finally:
        server.close()
    server = Server(folder / "out_limited", "--limit", "image_pixels=40e6")
    try:
        found["limit_image_pixels_40e6"] = upload(server, png)
    finally:
        server.close()
    return found


def _form(args, content: str, seed: int) -> dict:
    return {"content": content, "style": "generated_style", "backbone": args.backbone, "size": str(args.size),
            "precision": args.precision, "seed": str(seed)}


def markdown(payload: dict) -> str:
    lines = [f"Time from \"start\" to the first live image, {payload['settings']['size']} px, "
             f"{payload['settings']['backbone']} (`python -m bench.web_latency`, measured)", "",
             "| repeat | wall s | server CPU s | precision | first image at step |", "|---:|---:|---:|---|---:|"]
    for i, r in enumerate(payload["first_image"], 1):
        lines.append(f"| {i} | {r['seconds']:.2f} | {r['server_cpu_seconds']:.2f} | {r['precision']} | {r['step']} |")
    large = payload.get("large_upload")
    if large:
        lines += ["", f"A {large['file']['width']}x{large['file']['height']} PNG ({large['file']['megapixels']} MP, "
                      f"{large['file']['bytes'] / 2**20:.0f} MiB) uploaded:", "",
                  "| server | HTTP | answer | wall s | server peak RSS MiB (before -> after) |", "|---|---:|---|---:|---|"]
        for name in ("default_limits", "limit_image_pixels_40e6"):
            r = large[name]
            answer = r["answer"] if isinstance(r["answer"], str) else f"accepted as {r['answer']['id']}"
            lines.append(f"| {name} | {r['http_status']} | {answer} | {r['seconds']:.2f} | "
                         f"{r['server_peak_rss_mib_before']:.0f} -> {r['server_peak_rss_mib_after']:.0f} |")
        run = large["default_limits"].get("run_first_image")
        if run:
            lines += ["", f"A {payload['settings']['size']} px run from it: first image after {run['seconds']:.2f} s; "
                          f"server peak RSS {large['default_limits']['server_peak_rss_mib_after_run']:.0f} MiB."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    with tempfile.TemporaryDirectory(prefix="web_latency_") as tmp:
        folder = Path(tmp)
        server = Server(folder / "out")
        try:
            ready = server.ready_seconds
            timings = [first_image(server, _form(args, "grace_hopper", seed))
                       for seed in tqdm(range(args.repeats), desc="first image", unit="run")]
            peak = server.status("VmHWM")
        finally:
            server.close()
        payload = {"settings": {"size": args.size, "backbone": args.backbone, "precision": args.precision,
                                "content": "grace_hopper.jpg", "style": "generated swirl (demo)"},
                   "server_ready_seconds": round(ready, 2), "first_image": timings,
                   "server_peak_rss_mib": round(peak, 1), "cpus": os.cpu_count(),
                   "load_average_after": [round(x, 2) for x in os.getloadavg()],
                   "command": "python -m bench.web_latency " + " ".join(argv if argv is not None else sys.argv[1:])}
        if not args.skip_large:
            payload["large_upload"] = large_upload(args, folder)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "web_first_image.json").write_text(json.dumps(payload, indent=1) + "\n")
    (args.out / "web_first_image.md").write_text(markdown(payload))
    print(markdown(payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
