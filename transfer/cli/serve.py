"""`detstyle serve`: a local web page to stylise, watch it converge and browse past results (issue 23).

parse -> `transfer.web.create_app(out_dir)` -> uvicorn.  Each run the page starts is built by
the same `make_spec` (through `spec_from_args`) and run by the same `transfer.core.run.run`
as `detstyle stylize`; see `transfer/web/`.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from transfer.cli.options import positive_int

EXAMPLES = """\
examples:
  detstyle serve                                  # http://127.0.0.1:8000, results in out/
  detstyle serve --port 8080 --out-dir results/   # another port and folder
  detstyle serve --limit image_pixels=60e6        # refuse uploads above 60 megapixels
"""


def add_command(sub) -> None:
    p = sub.add_parser("serve", help="a local web page: upload, stylise, watch it converge, browse results",
                       description="Serve a web page on HOST:PORT to pick or upload a content and a style image, "
                                   "choose the run's options, start, watch the image and the loss curve update "
                                   "live, stop, resume and download the PNG. Results, uploads and resumable states "
                                   "live in OUT_DIR; the gallery lists the runs, grids and comparisons found there. "
                                   "One run at a time; later ones wait in a queue. There is no login: keep the "
                                   "default loopback address unless you trust your network.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes the page, "
                        "and everything in OUT_DIR, to the network)")
    p.add_argument("--port", type=positive_int, default=8000, help="port (default 8000)")
    p.add_argument("--out-dir", default="out", help="folder for uploads, results and states (default out/, created)")
    p.add_argument("--preview-every", type=positive_int, default=None, metavar="N",
                   help="send the live image every N steps (default: about 60 images per run, and the first step)")
    p.set_defaults(func=cmd_serve)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from transfer.errors import UsageError
    from transfer.io.outputs import check_can_create
    from transfer.web import create_app

    if args.port > 65535:
        raise UsageError(f"--port must be at most 65535, got {args.port}")
    check_can_create(Path(args.out_dir))
    app = create_app(args.out_dir, preview_every=args.preview_every)
    if not is_loopback(args.host):
        print(f"warning: listening on {args.host}, not loopback: anyone who can reach this address can run jobs "
              f"and read every file in {args.out_dir} (there is no login)", file=sys.stderr)
    print(f"detstyle serve: http://{args.host}:{args.port}/ (results in {args.out_dir}; Ctrl-C stops, "
          "saving the running job's state)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
