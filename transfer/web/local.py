"""Run an app on 127.0.0.1 in a background thread: for the browser test, the bench and the screenshot.

`detstyle serve` runs uvicorn in the main thread instead (signals, Ctrl-C); this is for
callers that drive the page themselves and need the server to stop when they are done.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

#: Debian's Chromium (Playwright's own browser download cannot work offline) and the flags that keep a
#: headless run quiet and off the network: the browser test and the README screenshot use both.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(app, timeout: float = 30.0) -> Iterator[str]:
    """Serve `app` on a free loopback port; yield its base URL; shut it down (lifespan included) on exit."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="detstyle-web-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the web server did not start on 127.0.0.1:{port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
