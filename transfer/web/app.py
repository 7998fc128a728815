"""`create_app(out_dir)`: the FastAPI app behind `detstyle serve`.

Why FastAPI + one static page + server-sent events: the page needs a form, an upload, one
live stream and a few JSON lists.  SSE is a plain `text/event-stream` response the browser's
`EventSource` reads natively, so no websocket layer, no UI framework and no CDN: every
script and style is a file of `transfer/web/static/`.  All state (the job queue, the
uploads) belongs to the app object this function returns; nothing happens at import.

Routes: `GET /` the page; `GET /api/options` the choice lists; `GET|POST /api/inputs`
pick or upload an image; `POST /api/jobs` start a run (the form's fields are `detstyle
stylize`'s options); `GET /api/jobs/{id}/events` the live stream; `POST .../stop`,
`POST .../resume`; `POST /api/grids`, `POST /api/comparisons` start a grid or a comparison
(`transfer.web.batch`: `detstyle grid` / `compare`'s plan, in the same queue); `GET
/api/gallery`; `GET /files/{path}` a file of the output folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from transfer import limits as run_limits
from transfer.errors import DetstyleError
from transfer.web import batch, files, form
from transfer.web.jobs import FAILED, FINAL, STOPPED, Cursor, JobRunner
from transfer.web.uploads import MAX_UPLOAD_BYTES, Uploads, UploadTooLarge

STATIC = Path(__file__).with_name("static")
#: How often a stream looks for news (s), and how often it sends a keep-alive comment when there is none.
POLL_S, KEEPALIVE_S = 0.05, 15.0
UPLOAD_CHUNK = 1 << 20


def error(status: int, message: str) -> JSONResponse:
    """The one error shape the page shows: `{"error": "one line"}`."""
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


def create_app(out_dir: str | Path, *, limits: run_limits.Limits | None = None, preview_every: int | None = None,
               max_upload_bytes: int = MAX_UPLOAD_BYTES, backbones: tuple[str, ...] | None = None) -> FastAPI:
    """The app serving `out_dir` (created); `limits` default to those in force for the caller.

    `backbones` restricts the offered backbones (default: every registry entry whose weights are here).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    limits = limits or run_limits.current()
    runner = JobRunner(out, limits=limits, preview_every=preview_every)
    uploads = Uploads(out, max_upload_bytes)
    offered = backbones if backbones is not None else form.available_backbones()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await asyncio.to_thread(runner.close)  # a running job stops after its step and saves its state

    app = FastAPI(title="detstyle", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runner, app.state.uploads, app.state.out_dir = runner, uploads, out

    @app.middleware("http")
    async def same_origin_posts(request: Request, call_next):
        """Refuse a POST that another web site's page sends (a browser names that page in `Origin`)."""
        origin = request.headers.get("origin")
        if request.method == "POST" and origin and urlsplit(origin).netloc != request.headers.get("host"):
            return error(403, f"a request from {origin} was refused: only this page may start or stop runs")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(422, f"{where}: {first.get('msg', 'invalid request')}")

    _add_page_routes(app, offered)
    _add_input_routes(app, uploads, limits)
    _add_job_routes(app, runner, uploads, offered, limits)
    _add_batch_routes(app, runner, uploads, offered, limits)
    _add_file_routes(app, out)
    return app


def _add_page_routes(app: FastAPI, offered: tuple[str, ...]) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/options")
    def options():
        return form.choices(offered)


def _add_input_routes(app: FastAPI, uploads: Uploads, limits: run_limits.Limits) -> None:
    @app.get("/api/inputs")
    def inputs():
        with run_limits.using(limits):
            return {"inputs": uploads.listing()}

    @app.get("/api/inputs/{upload_id}/image")
    def input_image(upload_id: str):
        try:
            return FileResponse(uploads.path(upload_id), headers={"Cache-Control": "no-store"})
        except DetstyleError as exc:
            return error(404, str(exc))

    @app.post("/api/inputs")
    async def upload(request: Request):
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > uploads.max_bytes + 64 * 1024:
            return error(413, f"the upload is larger than the {uploads.max_bytes:,}-byte upload limit")
        data = await request.form(max_part_size=uploads.max_bytes + 1)
        item = data.get("file")
        if item is None or isinstance(item, str):
            return error(400, "no file in the upload (form field 'file')")
        try:
            saved = await asyncio.to_thread(_save_upload, uploads, item, limits)
        except UploadTooLarge as exc:
            return error(413, str(exc))
        except DetstyleError as exc:
            return error(400, str(exc))
        finally:
            await item.close()
        return saved.to_dict()


def _save_upload(uploads: Uploads, item, limits: run_limits.Limits):
    """Copy the spooled upload under the byte cap and validate it (a worker thread: files block)."""
    item.file.seek(0)
    chunks = iter(lambda: item.file.read(UPLOAD_CHUNK), b"")
    with run_limits.using(limits):
        return uploads.save(item.filename or "upload", chunks)


def _add_job_routes(app: FastAPI, runner: JobRunner, uploads: Uploads, offered: tuple[str, ...],
                    limits: run_limits.Limits) -> None:
    from weights.errors import WeightsError

    @app.post("/api/jobs")
    async def start(request: Request):
        fields = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        try:
            spec = await asyncio.to_thread(_spec_of, fields, uploads, offered, limits)
        except (DetstyleError, WeightsError) as exc:
            return error(400, str(exc))
        names = {"content": fields.get("content", ""), "style": fields.get("style", "")}
        job = runner.submit(spec, names)
        return job.summary(runner.position(job))

    @app.get("/api/jobs")
    def jobs():
        return {"jobs": runner.listing()}

    @app.post("/api/jobs/{job_id}/stop")
    def stop(job_id: str):
        if job_id not in runner.jobs:
            return error(404, f"no job {job_id!r}")
        job = runner.stop(job_id)
        return job.summary(runner.position(job))

    @app.post("/api/jobs/{job_id}/resume")
    def resume(job_id: str):
        old = runner.jobs.get(job_id)
        if old is None:
            return error(404, f"no job {job_id!r}")
        if old.batch is not None:  # a grid or comparison starts again; its finished cells come from the cache
            if old.status not in (STOPPED, FAILED):
                return error(400, "only a stopped or failed grid or comparison can be resumed")
            job = runner.submit_batch(old.batch, old.inputs)
            return job.summary(runner.position(job))
        if not runner.state_path(old.spec).is_file():
            return error(400, "no saved state for this run: only a stopped run can be resumed")
        job = runner.submit(old.spec, old.inputs, resume_from=old)
        return job.summary(runner.position(job))

    @app.get("/api/jobs/{job_id}/events")
    async def events(job_id: str):
        job = runner.jobs.get(job_id)
        if job is None:
            return error(404, f"no job {job_id!r}")
        return StreamingResponse(_stream(runner, job), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _spec_of(fields: dict[str, str], uploads: Uploads, offered: tuple[str, ...], limits: run_limits.Limits):
    """The run spec of a form (the images by upload id), built under the server's limits."""
    with run_limits.using(limits):
        args = form.parse_form(fields, offered)
        content = uploads.path(fields.get("content") or "")
        style = uploads.path(fields.get("style") or "")
        return form.build_spec(args, content, style)


def _add_batch_routes(app: FastAPI, runner: JobRunner, uploads: Uploads, offered: tuple[str, ...],
                      limits: run_limits.Limits) -> None:
    """`POST /api/grids` and `POST /api/comparisons`: the form (images as repeated fields) -> a queued batch."""
    from weights.errors import WeightsError

    async def start(request: Request, kind: str):
        data = await request.form()
        fields = {k: v for k, v in data.items() if isinstance(v, str) and k not in batch.LIST_FIELDS}
        lists = {k: [v for v in data.getlist(k) if isinstance(v, str)] for k in batch.LIST_FIELDS}
        try:
            planned = await asyncio.to_thread(_batch_of, kind, fields, lists, uploads, offered, limits,
                                              runner.out_dir)
        except (DetstyleError, WeightsError) as exc:
            return error(400, str(exc))
        job = runner.submit_batch(planned, {k: ", ".join(lists[k]) for k in ("contents", "styles")})
        return job.summary(runner.position(job))

    @app.post("/api/grids")
    async def grid(request: Request):
        return await start(request, batch.GRID)

    @app.post("/api/comparisons")
    async def comparison(request: Request):
        return await start(request, batch.COMPARE)


def _batch_of(kind: str, fields: dict[str, str], lists: dict[str, list[str]], uploads: Uploads,
              offered: tuple[str, ...], limits: run_limits.Limits, out: Path):
    """The CLI's plan of a grid or comparison form, built under the server's limits (a worker thread: it hashes)."""
    with run_limits.using(limits):
        return batch.plan_batch(kind, fields, lists, uploads.path, offered, out)


async def _stream(runner: JobRunner, job):
    """Server-sent events: the job's state first, then every change, until it ends."""
    cursor, seen, quiet = Cursor(), None, 0.0
    while True:
        update, after = runner.view(job, cursor)
        state = (update["status"], update["position"], update["message"], update["result"])
        if after != cursor or state != seen:
            yield f"event: update\ndata: {json.dumps(update)}\n\n"
            cursor, seen, quiet = after, state, 0.0
        if update["status"] in FINAL:
            return
        await asyncio.sleep(POLL_S)
        quiet += POLL_S
        if quiet >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet = 0.0


def _add_file_routes(app: FastAPI, out: Path) -> None:
    @app.get("/api/gallery")
    def gallery():
        return files.gallery(out)

    @app.get("/files/{relative:path}")
    def served(relative: str):
        try:
            path = files.served_file(out, relative)
        except files.NotServed:
            return error(404, "not found")
        return FileResponse(path, headers={"Cache-Control": "no-store"})
