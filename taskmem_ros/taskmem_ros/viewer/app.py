"""The viewer's web app: FastAPI routes over a read-only EpisodicStore, Jinja2 pages.

Why this stack: FastAPI/Starlette are maintained, typed, and run in-process with uvicorn
(no build step, no node); server-rendered Jinja2 pages with autoescaping need no JavaScript
at all, so the Content-Security-Policy can forbid every script: memory text comes from
models and speech and is untrusted, and even an escaping slip could not run code. Gradio
would bring its own JS front end and a websocket protocol we would have to lock down.

Every request is a read: the store is opened ``read_only`` (the database refuses writes),
each call is one short snapshot transaction (WAL readers never block the memorizer), and
requests only pass typed parameters to the store's API (no SQL from requests). Asking a
question runs the same answerer AnswerTask uses (``answer.make_answerer``) but is not logged.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from taskmem_ros.config import TaskMemConfig, ViewerConfig
from taskmem_ros.store import EpisodicStore, StoreError
from taskmem_ros.store.browse import ClipRow
from taskmem_ros.types import NS_PER_S, MemoryRecord
from taskmem_ros.viewer import evalview
from taskmem_ros.viewer.media import THUMB_WIDTHS, ClipFrames

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
COOKIE = "taskmem_viewer_token"
MAX_QUESTION = 2000
MAX_CHOICES = 10
THUMBS_PER_ROW = 3
RANKED_LIMIT = 20  # hybrid / vector search on the timeline: the best this many, shown in time order
CSP = (
    "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


_ANSWERER_LOCK = threading.Lock()


class BadRequest(ValueError):
    """A request parameter is out of range; shown as a 400 page, never a traceback."""


@dataclass
class Viewer:
    """What the routes share: the store, the answerer config, the archive, the limits."""

    cfg: TaskMemConfig
    viewer: ViewerConfig
    store: EpisodicStore
    frames: ClipFrames
    answerer: Any = None

    def answer(self, question: str, *, as_of_ns: int, choices: list[str] | None, stream: str | None) -> Any:
        with _ANSWERER_LOCK:  # requests run on a thread pool: build one answerer, once
            if self.answerer is None:
                from taskmem_ros.answer import make_answerer

                self.answerer = make_answerer(self.cfg, self.store)
        return self.answerer.answer(question, as_of_ns=as_of_ns, choices=choices, stream=stream)

    def close(self) -> None:
        from taskmem_ros.answer import close_answerer

        if self.answerer is not None:
            close_answerer(self.answerer)
        self.store.close()


# -- formatting -------------------------------------------------------------------------------
def utc(ns: int | None) -> str:
    if ns is None:
        return "—"
    return datetime.fromtimestamp(ns / NS_PER_S, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def offset(ns: int | None, t0: int | None) -> str:
    """mm:ss.s since the stream's first memory (how the demo prints times)."""
    if ns is None or t0 is None:
        return "—"
    s = max(0.0, (ns - t0) / NS_PER_S)
    h, rem = divmod(s, 3600)
    return f"{int(h)}:{int(rem // 60):02d}:{rem % 60:04.1f}" if h else f"{int(rem // 60):02d}:{rem % 60:04.1f}"


def _seconds(name: str, text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"{name}={text[:40]!r} is not a number of seconds") from None
    if not 0.0 <= value <= 10 * 365 * 86400:
        raise BadRequest(f"{name}={value} is out of range (seconds from the stream start)")
    return value


def _ids(text: str | None) -> set[int]:
    if not text:
        return set()
    out: set[int] = set()
    for part in text.split(",")[:1000]:
        if part.strip().isdigit():
            out.add(int(part))
    return out


# -- the app ----------------------------------------------------------------------------------
def create_app(cfg: TaskMemConfig, viewer: ViewerConfig, *, store: EpisodicStore | None = None) -> FastAPI:
    """The viewer app over ``cfg.store.url`` (opened read-only here unless ``store`` is given)."""
    own = store is None
    if store is None:
        store = EpisodicStore(cfg.store, read_only=True).open()
    state = Viewer(cfg, viewer, store, ClipFrames(viewer.clips_dir))
    has_fts = bool(store.stats()["fts5"])

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if own:
            state.close()

    app = FastAPI(title="taskmem viewer", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.viewer = state
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
    env.filters.update(utc=utc, offset=offset)
    env.globals.update(urlencode=urlencode, widths=THUMB_WIDTHS)
    templates = Jinja2Templates(env=env)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def page(request: Request, name: str, code: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.setdefault("read_only", store.read_only)
        return templates.TemplateResponse(request, name, ctx, status_code=code)

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        token = viewer.token
        if token:
            given = request.query_params.get("token")
            if given is not None and hmac.compare_digest(given.encode(), token.encode()):
                # once via ?token=, then an HttpOnly cookie, so the token leaves the address bar
                query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
                target = request.url.path + (f"?{query}" if query else "")
                resp: Response = RedirectResponse(target, status_code=303)
                resp.set_cookie(COOKIE, token, httponly=True, samesite="strict")
                return _secure(resp)
            bearer = request.headers.get("authorization", "")
            have = bearer[7:] if bearer.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
            if not hmac.compare_digest(have.encode(), token.encode()):
                return _secure(HTMLResponse("<h1>401</h1><p>This viewer needs its token.</p>", status_code=401))
        return _secure(await call_next(request))

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> Response:
        return page(request, "error.html", 400, message=str(exc), status=400)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> Response:
        log.warning("store error on %s: %s", request.url.path, exc)
        return page(request, "error.html", 503, message=str(exc), status=503)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> Response:
        spans = store.stream_spans()
        first = next((s.name for s in spans if s.entries), spans[0].name if spans else None)
        if first is None:
            return page(request, "timeline.html", spans=spans, stream=None, rows=[], t0=None, args={})
        return RedirectResponse("/timeline?" + urlencode({"stream": first}), status_code=303)

    @app.get("/timeline", response_class=HTMLResponse)
    def timeline(
        request: Request,
        stream: str | None = None,
        q: str = Query("", max_length=MAX_QUESTION),
        start: str | None = Query(None, alias="from", max_length=32),
        end: str | None = Query(None, alias="to", max_length=32),
        limit: int = Query(0, ge=0),
        highlight: str | None = Query(None, max_length=20000),
        mode: str = Query("", pattern="^(|fts|hybrid|vector)$"),
    ) -> Response:
        spans = store.stream_spans()
        span = next((s for s in spans if s.name == stream), None)
        if stream is not None and span is None:
            raise BadRequest(f"no stream {stream[:80]!r} in this store")
        t0 = span.start_ns if span is not None else min((s.start_ns for s in spans if s.start_ns), default=None)
        lo, hi = _seconds("from", start), _seconds("to", end)
        start_ns = None if lo is None or t0 is None else t0 + int(lo * NS_PER_S)
        end_ns = None if hi is None or t0 is None else t0 + int(hi * NS_PER_S)
        n = min(limit or viewer.max_rows, 4 * viewer.max_rows)
        scores: dict[int, float] = {}
        # "fts" filters (every entry containing the words); "hybrid"/"vector" rank by meaning and
        # keep the best RANKED_LIMIT. PostgreSQL has no full text yet: hybrid there.
        mode = mode or ("fts" if has_fts else "hybrid")
        if q.strip():
            k = min(n, 1000) if mode == "fts" else min(n, RANKED_LIMIT)
            found = store.search(q, stream=stream, start_ns=start_ns, end_ns=end_ns, limit=k, mode=mode)
            scores = {s.record.id: s.score for s in found}
            records = sorted((s.record for s in found), key=lambda r: (r.start_ns, r.id))
        else:
            records = store.timeline(stream, start_ns=start_ns, end_ns=end_ns, limit=n)
        rows = _rows(state, records, _ids(highlight), scores)
        args = {"stream": stream or "", "q": q, "from": start or "", "to": end or "", "mode": mode}
        return page(
            request,
            "timeline.html",
            spans=spans,
            stream=stream,
            rows=rows,
            t0=t0,
            t0s={} if stream else _t0s(store),  # all streams: each row's time from its own stream's start
            args=args,
            limit=n,
            searched=bool(q.strip()),
        )

    @app.get("/ask", response_class=HTMLResponse)
    def ask(
        request: Request,
        q: str = Query("", max_length=MAX_QUESTION),
        choices: str = Query("", max_length=MAX_CHOICES * 500),
        asked_at: str | None = Query(None, max_length=32),
        stream: str | None = None,
    ) -> Response:
        spans = store.stream_spans()
        if stream is None:  # first visit: the first stream with memories; stream="" asks all streams
            stream = next((s.name for s in spans if s.entries), "")
        span = next((s for s in spans if s.name == stream), None)
        if stream and span is None:
            raise BadRequest(f"no stream {stream[:80]!r} in this store")
        t0 = span.start_ns if span is not None else None
        ctx: dict[str, Any] = {
            "spans": spans,
            "stream": stream,
            "t0s": _t0s(store),
            "args": {"q": q, "choices": choices, "asked_at": asked_at or ""},
        }
        if not q.strip():
            return page(request, "ask.html", result=None, **ctx)
        opts = [c.strip() for c in choices.splitlines() if c.strip()]
        if len(opts) > MAX_CHOICES:
            raise BadRequest(f"{len(opts)} choices given; at most {MAX_CHOICES}")
        at = _seconds("asked_at", asked_at)
        if at is not None and t0 is None:
            raise BadRequest("asked_at is in seconds from a stream's start: choose the stream")
        latest = max((s.end_ns for s in spans if s.end_ns is not None), default=0)
        as_of = (t0 + int(at * NS_PER_S)) if (at is not None and t0 is not None) else max(time.time_ns(), latest)
        answer = state.answer(q, as_of_ns=as_of, choices=opts or None, stream=stream or None)
        result = _answer_view(state, answer, as_of, stream or None, opts)
        return page(request, "ask.html", result=result, t0=t0, now=at is None, **ctx)

    @app.get("/tasks", response_class=HTMLResponse)
    def tasks(request: Request, show: str = Query("all", pattern="^(all|eval|train)$")) -> Response:
        flag = {"all": None, "eval": True, "train": False}[show]
        rows = store.tasks(is_eval=flag)[::-1][: 4 * viewer.max_rows]
        return page(request, "tasks.html", tasks=rows, show=show, t0s=_t0s(store))

    @app.get("/task", response_class=HTMLResponse)
    def task(request: Request, id: int = Query(..., ge=0)) -> Response:
        found = [t for t in store.tasks() if t.id == id]
        if not found:
            raise BadRequest(f"no task {id}")
        t = found[0]
        t0s = _t0s(store)
        t0 = t0s.get(t.stream or "", min(t0s.values(), default=None))
        context = store.timeline(t.stream, as_of_ns=t.asked_at_ns, limit=viewer.max_rows, newest_first=True)[::-1]
        rows = _rows(state, context, set(t.evidence_ids), {})
        return page(request, "task.html", t=t, rows=rows, t0=t0, evidence=store.get_entries(t.evidence_ids))

    @app.get("/adapters", response_class=HTMLResponse)
    def adapters(request: Request) -> Response:
        usage = store.adapter_usage()
        return page(request, "adapters.html", adapters=store.adapters(), usage=usage, base=usage.get(""))

    @app.get("/adapter", response_class=HTMLResponse)
    def adapter(request: Request, id: str = Query(..., max_length=255)) -> Response:
        found = [a for a in store.adapters() if a.adapter_id == id]
        if not found:
            raise BadRequest(f"no adapter {id[:80]!r}")
        a = found[0]
        use = store.adapter_usage().get(a.adapter_id)
        after = store.entries_by_adapter(a.adapter_id, limit=50)
        before = store.entries_before(use.first_created_ns, exclude_adapter=a.adapter_id, limit=50) if use else []
        pairs, other = _metric_pairs(a.metrics)
        return page(
            request,
            "adapter.html",
            a=a,
            use=use,
            before=_rows(state, before, set(), {}),
            after=_rows(state, after, set(), {}),
            mix_before=_mix(before),
            mix_after=_mix(after),
            pairs=pairs,
            other=other,
            t0s=_t0s(store),
        )

    @app.get("/clip", response_class=HTMLResponse)
    def clip(request: Request, id: int = Query(..., ge=0)) -> Response:
        row = store.clips_by_id([id]).get(id)
        if row is None:
            raise BadRequest(f"no clip {id}")
        t0s = _t0s(store)
        return page(
            request,
            "clip.html",
            c=row,
            kept=state.frames.file_for(row) is not None,
            entries=store.clip_entries(id),
            t0=t0s.get(row.stream),
        )

    @app.get("/frame/{clip_id}/{index}.jpg")
    def frame(clip_id: int, index: int, w: int = Query(160)) -> Response:
        row = store.clips_by_id([clip_id]).get(clip_id)
        data = state.frames.jpeg(row, index, w) if row is not None and index < max(row.keyframes, 1) else None
        if data is None:
            return Response(b"", status_code=404, media_type="text/plain")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/evals", response_class=HTMLResponse)
    def evals(request: Request) -> Response:
        runs = []
        for name in store.eval_run_names():
            run_id = store.eval_run_id(name)
            res = evalview.results_by_dataset(store, run_id) if run_id is not None else {}
            runs.append((name, {ds: evalview.score_of(rows) for ds, rows in res.items()}))
        return page(request, "evals.html", runs=runs, cells=evalview.cells)

    @app.get("/eval", response_class=HTMLResponse)
    def eval_run(request: Request, run: str = Query(..., max_length=255)) -> Response:
        run_id = store.eval_run_id(run)
        if run_id is None:
            raise BadRequest(f"no evaluation run {run[:80]!r}")
        view = evalview.run_view(run, evalview.results_by_dataset(store, run_id))
        return page(request, "eval.html", v=view, cells=evalview.cells, label=evalview.REPORTED_LABEL)

    @app.get("/eval/plot.png")
    def eval_plot(
        run: str = Query(..., max_length=255),
        dataset: str = Query(..., max_length=64),
        key: str = Query(..., max_length=64),
    ) -> Response:
        run_id = store.eval_run_id(run)
        rows = evalview.results_by_dataset(store, run_id).get(dataset, []) if run_id is not None else []
        by_value = evalview.breakdown(rows, key) if key in evalview.category_keys(rows) else {}
        if not by_value:
            return Response(b"", status_code=404, media_type="text/plain")
        try:
            png = evalview.plot_png(run, dataset, key, (run_id or 0, len(rows)), tuple(by_value.items()))
        except ImportError:  # matplotlib is in the 'eval' extra
            return Response(b"plots need the 'eval' extra (matplotlib)", status_code=404, media_type="text/plain")
        return Response(png, media_type="image/png")

    return app


def _secure(resp: Response) -> Response:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Frame-Options"] = "DENY"
    return resp


def _t0s(store: EpisodicStore) -> dict[str, int]:
    return {s.name: s.start_ns for s in store.stream_spans() if s.start_ns is not None}


@dataclass
class Row:
    """One memory on a page, with its clip's kept keyframes."""

    r: MemoryRecord
    clip: ClipRow | None
    thumbs: list[int]
    highlight: bool
    score: float | None


def _rows(state: Viewer, records: Sequence[MemoryRecord], highlight: set[int], scores: dict[int, float]) -> list[Row]:
    clips = state.store.clips_by_id([r.clip_id for r in records if r.clip_id is not None])
    kept: dict[int, bool] = {}
    out = []
    for r in records:
        c = clips.get(r.clip_id) if r.clip_id is not None else None
        thumbs: list[int] = []
        if c is not None:
            if c.id not in kept:
                kept[c.id] = state.frames.file_for(c) is not None
            if kept[c.id] and c.keyframes > 0:
                step = max(1, c.keyframes // THUMBS_PER_ROW)
                thumbs = list(range(0, c.keyframes, step))[:THUMBS_PER_ROW]
        out.append(Row(r, c, thumbs, r.id in highlight, scores.get(r.id)))
    return out


def _answer_view(state: Viewer, answer: Any, as_of: int, stream: str | None, choices: list[str]) -> dict[str, Any]:
    evidence = set(int(i) for i in answer.evidence_ids)
    context = state.store.timeline(stream, as_of_ns=as_of, limit=state.viewer.max_rows, newest_first=True)[::-1]
    known = {r.id for r in context}
    extra = [r for r in state.store.get_entries(sorted(evidence - known))]  # evidence older than the window
    rows = _rows(state, sorted([*extra, *context], key=lambda r: (r.start_ns, r.id)), evidence, {})
    return {
        "answer": answer,
        "as_of": as_of,
        "choices": choices,
        "rows": rows,
        "evidence": state.store.get_entries(answer.evidence_ids),
    }


def _metric_pairs(metrics: dict[str, Any]) -> tuple[list[tuple[str, Any, Any]], list[tuple[str, Any]]]:
    """Phase Two's held-out ``before_X`` / ``after_X`` side by side; the rest as they are."""
    names = sorted(
        {k[7:] for k in metrics if k.startswith("before_")} | {k[6:] for k in metrics if k.startswith("after_")}
    )
    pairs = [(n, metrics.get(f"before_{n}"), metrics.get(f"after_{n}")) for n in names]
    other = sorted((k, v) for k, v in metrics.items() if not k.startswith(("before_", "after_")))
    return pairs, other


def _mix(records: Sequence[MemoryRecord]) -> dict[str, int]:
    """How many memories of each source/kind: what a round changed in what gets written."""
    out: dict[str, int] = {}
    for r in records:
        key = f"{r.kind} / {r.source or '—'}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
