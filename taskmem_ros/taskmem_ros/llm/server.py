"""``taskmem-serve``: a small OpenAI-compatible server over :class:`TransformersEngine`.

For development and tests where vLLM is not available (vLLM does not run on a CPU-only box);
production fleets point ``endpoint.base_url`` at vLLM or SGLang instead. Standard library
only (``http.server``), no new dependencies.

Endpoints
  ``GET /health``                 liveness + counters (never needs the API key)
  ``GET /v1/models``              OpenAI list format with the served model name
  ``POST /v1/chat/completions``   non-streaming chat completions

Content parts ``text`` and ``image_url`` (base64 ``data:`` URLs, JPEG or PNG) are accepted.
Consecutive images, each optionally preceded by a ``"<t seconds>"`` text part (what
:class:`~taskmem_ros.llm.openai_engine.OpenAIEngine` sends for a clip), are regrouped into
ONE video part with those timestamps (1 s apart where no marker says), so the local engine
sees Qwen3-VL video input with timestamps; a lone image becomes a one-frame video.

``max_tokens`` / ``max_completion_tokens``, ``temperature`` and
``chat_template_kwargs.enable_thinking`` and ``ignore_eos`` are honoured. ``response_format`` is accepted but
ignored: taskmem-serve has no guided decoding (vLLM and SGLang do it). ``stream: true`` and
``n > 1`` are refused with 400. Requests arriving within ``--batch-wait-ms`` of each other are
micro-batched (up to ``--max-batch``) into one ``engine.generate`` call.

``python -m taskmem_ros.llm.server --model DIR_OR_HUB_ID [--port 0] ...`` prints exactly one
line ``taskmem-serve listening on http://HOST:PORT/v1`` on stdout once it serves, and shuts
down cleanly on SIGTERM / SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import logging
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np

from taskmem_ros.llm.base import ChatEngine, ChatRequest, Generation, text_part, video_part

log = logging.getLogger("taskmem_ros.llm.server")

READY_PREFIX = "taskmem-serve listening on "
MARKER_RE = re.compile(r"^\s*<\s*(-?\d+(?:\.\d*)?)\s*seconds?\s*>\s*$")
DEFAULT_MAX_TOKENS = 256
MAX_MAX_TOKENS = 32768


class RequestError(Exception):
    """A request the server refuses, answered as an OpenAI-style error JSON."""

    def __init__(
        self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code)


def error_body(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _bad(message: str, code: str = "invalid_request") -> RequestError:
    return RequestError(400, message, "invalid_request_error", code)


# -- request parsing ---------------------------------------------------------------------------
def decode_data_url(url: Any) -> np.ndarray:
    """A base64 ``data:image/...`` URL -> RGB uint8 array."""
    if not isinstance(url, str):
        raise _bad("image_url.url must be a string", "bad_data_url")
    if not url.startswith("data:"):
        raise _bad(f"taskmem-serve only accepts base64 data URLs for images, got {url[:40]!r}...", "bad_data_url")
    header, sep, payload = url[5:].partition(",")
    if not sep or ";base64" not in header:
        raise _bad("image data URL must look like 'data:image/jpeg;base64,...'", "bad_data_url")
    mime = header.split(";", 1)[0].strip().lower()
    if mime and not mime.startswith("image/"):
        raise _bad(f"image data URL has media type {mime!r}, expected image/jpeg or image/png", "bad_data_url")
    try:
        raw = base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad(f"image data URL is not valid base64: {exc}", "bad_data_url") from exc
    if not raw:
        raise _bad("image data URL is empty", "bad_data_url")
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise _bad(f"cannot decode the {mime or 'image'} in a data URL ({len(raw)} bytes)", "bad_data_url")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _image_url(part: dict[str, Any]) -> Any:
    value = part.get("image_url")
    return value.get("url") if isinstance(value, dict) else value


def parse_content(parts: Any) -> list[dict[str, Any]]:
    """OpenAI content parts -> our parts, timestamped image runs regrouped into one video part."""
    if not isinstance(parts, list):
        raise _bad("message content must be a string or a list of content parts")
    out: list[dict[str, Any]] = []
    frames: list[np.ndarray] = []
    stamps: list[float | None] = []
    marker: tuple[str, float] | None = None  # a "<t seconds>" text waiting for its image

    def flush_video() -> None:
        if not frames:
            return
        ts: list[float] = []
        for t in stamps:
            ts.append(t if t is not None else (ts[-1] + 1.0 if ts else 0.0))
        out.append(video_part(list(frames), ts))
        frames.clear()
        stamps.clear()

    def flush_marker() -> None:
        nonlocal marker
        if marker is not None:
            flush_video()
            out.append(text_part(marker[0]))
            marker = None

    for i, part in enumerate(parts):
        if not isinstance(part, dict):
            raise _bad(f"content part {i} must be an object")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise _bad(f"content part {i}: text must be a string")
            flush_marker()
            m = MARKER_RE.match(text)
            if m:
                marker = (text, float(m.group(1)))
            else:
                flush_video()
                out.append(text_part(text))
        elif kind == "image_url":
            frames.append(decode_data_url(_image_url(part)))
            stamps.append(marker[1] if marker is not None else None)
            marker = None
        else:
            raise _bad(f"content part {i} has type {kind!r}; taskmem-serve accepts 'text' and 'image_url'")
    flush_marker()
    flush_video()
    return out


def parse_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list", "missing_messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise _bad(f"messages[{i}] must be an object")
        role = m.get("role")
        if not isinstance(role, str) or not role:
            raise _bad(f"messages[{i}] needs a 'role'")
        content = m.get("content")
        if content is None:
            content = ""
        elif not isinstance(content, str):
            content = parse_content(content)
        out.append({"role": role, "content": content})
    return out


def _number(body: dict[str, Any], key: str, default: float, lo: float, hi: float, *, integer: bool) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise _bad(f"'{key}' must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not lo <= value <= hi:
        raise _bad(f"'{key}'={value} must be in [{lo:g}, {hi:g}]")
    return value


def parse_chat_request(body: Any, served_name: str) -> ChatRequest:
    """A /v1/chat/completions JSON body -> ChatRequest (RequestError when it is not valid)."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    if body.get("stream"):
        raise _bad("streaming is not supported by taskmem-serve; send stream=false", "stream_unsupported")
    model = body.get("model")
    if model is not None and model != served_name:
        raise RequestError(
            404,
            f"The model {model!r} does not exist; this server serves {served_name!r}.",
            "NotFoundError",
            "model_not_found",
        )
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad("taskmem-serve returns one choice per request (n=1)", "n_unsupported")
    messages = parse_messages(body.get("messages"))
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _number(body, key, DEFAULT_MAX_TOKENS, 1, MAX_MAX_TOKENS, integer=True)
    temperature = _number(body, "temperature", 1.0, 0.0, 2.0, integer=False)
    kwargs = body.get("chat_template_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise _bad("'chat_template_kwargs' must be an object")
    thinking = kwargs.get("enable_thinking", True)  # Qwen3 templates think unless told not to
    if not isinstance(thinking, bool):
        raise _bad("'chat_template_kwargs.enable_thinking' must be true or false")
    ignore_eos = body.get("ignore_eos", False)  # vLLM's sampling extension
    if not isinstance(ignore_eos, bool):
        raise _bad("'ignore_eos' must be true or false")
    # response_format is accepted and ignored: no guided decoding here (vLLM / SGLang do it).
    return ChatRequest(
        messages=messages,
        max_new_tokens=int(max_tokens),
        temperature=float(temperature),
        enable_thinking=thinking,
        ignore_eos=ignore_eos,
    )


# -- micro-batching ----------------------------------------------------------------------------
class MicroBatcher:
    """One worker thread: requests arriving within ``wait_s`` of the first go to the engine together."""

    def __init__(self, engine: ChatEngine, max_batch: int = 4, wait_s: float = 0.005) -> None:
        self.engine = engine
        self.max_batch = max(1, int(max_batch))
        self.wait_s = max(0.0, float(wait_s))
        self._queue: queue.Queue[tuple[ChatRequest, Future[Generation]] | None] = queue.Queue()
        self._closed = False
        self.stats = {"batches": 0, "batched_requests": 0, "max_batch_seen": 0, "engine_errors": 0}
        self._thread = threading.Thread(target=self._loop, name="taskmem-serve-batcher", daemon=True)
        self._thread.start()

    def submit(self, req: ChatRequest) -> Future[Generation]:
        fut: Future[Generation] = Future()
        if self._closed:
            fut.set_result(Generation("", finish_reason="error", error="server is shutting down"))
        else:
            self._queue.put((req, fut))
        return fut

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            stop = False
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._run(batch)
            if stop:
                break
        self._drain()

    def _run(self, batch: list[tuple[ChatRequest, Future[Generation]]]) -> None:
        try:
            gens = self.engine.generate([r for r, _ in batch])
            if len(gens) != len(batch):
                raise RuntimeError(f"engine returned {len(gens)} generations for {len(batch)} requests")
        except Exception as exc:  # the engine should not raise; never let it kill the worker
            log.exception("engine.generate failed")
            self.stats["engine_errors"] += 1
            gens = [Generation("", finish_reason="error", error=f"{type(exc).__name__}: {exc}") for _ in batch]
        self.stats["batches"] += 1
        self.stats["batched_requests"] += len(batch)
        self.stats["max_batch_seen"] = max(self.stats["max_batch_seen"], len(batch))
        for (_, fut), gen in zip(batch, gens, strict=True):
            fut.set_result(gen)

    def _drain(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item[1].set_result(Generation("", finish_reason="error", error="server is shutting down"))

    def close(self, timeout: float = 30.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
        self._drain()


# -- HTTP --------------------------------------------------------------------------------------
class TaskMemServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        batcher: MicroBatcher,
        served_name: str,
        api_key: str | None = None,
        max_body_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.batcher = batcher
        self.served_name = served_name
        self.api_key = api_key or None
        self.max_body_bytes = int(max_body_bytes)
        self.created = int(time.time())
        self.counters = {"requests": 0, "completions": 0, "client_errors": 0, "server_errors": 0}
        self._counter_lock = threading.Lock()
        super().__init__(address, Handler)

    def count(self, key: str) -> None:
        with self._counter_lock:
            self.counters[key] += 1

    @property
    def url(self) -> str:
        raw_host, port = self.server_address[:2]
        host = raw_host.decode() if isinstance(raw_host, bytes) else str(raw_host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/v1"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive for the openai client's connection pool
    server_version = "taskmem-serve"
    timeout = 120  # socket reads/writes (a stalled client), not generation time
    server: TaskMemServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    # -- plumbing --
    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_error(self, err: RequestError) -> None:
        self.server.count("client_errors" if err.status < 500 else "server_errors")
        # a failed generation is not transient (the engine already retried one by one): tell the
        # openai client not to retry it (it honours x-should-retry)
        headers = {"x-should-retry": "false"} if err.code == "generation_failed" else None
        self._send_json(err.status, err.body(), headers)

    def _path(self) -> str:
        return urlsplit(self.path).path.rstrip("/") or "/"

    def _check_auth(self) -> None:
        key = self.server.api_key
        if key is None:
            return
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            self.close_connection = True  # the body (if any) is left unread
            raise RequestError(
                401,
                "invalid or missing API key (send 'Authorization: Bearer <key>')",
                "authentication_error",
                "invalid_api_key",
            )

    def _read_json(self) -> Any:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise _bad("chunked request bodies are not supported; send Content-Length", "bad_body")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            raise _bad("a JSON body with a Content-Length header is required", "bad_body") from None
        if length < 0:
            self.close_connection = True
            raise _bad("negative Content-Length", "bad_body")
        if length > self.server.max_body_bytes:
            self.close_connection = True  # do not read (or keep) what we refuse
            raise _bad(
                f"request body of {length} bytes exceeds the limit of {self.server.max_body_bytes} bytes "
                "(taskmem-serve --max-body-mb)",
                "body_too_large",
            )
        raw = self.rfile.read(length)
        if len(raw) != length:
            self.close_connection = True
            raise _bad(f"request body ended after {len(raw)} of {length} bytes", "bad_body")
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _bad(f"request body is not valid JSON: {exc}", "invalid_json") from exc

    # -- routes --
    def do_GET(self) -> None:
        self.server.count("requests")
        path = self._path()
        try:
            if path in ("/health", "/v1/health"):
                stats = dict(self.server.counters, **self.server.batcher.stats)
                self._send_json(200, {"status": "ok", "model": self.server.served_name, "stats": stats})
            elif path == "/v1/models":
                self._check_auth()
                self._send_json(200, {"object": "list", "data": [self._model_card()]})
            elif path == f"/v1/models/{self.server.served_name}":
                self._check_auth()
                self._send_json(200, self._model_card())
            else:
                raise RequestError(404, f"no route GET {path}", "not_found_error", "not_found")
        except RequestError as err:
            self._send_error(err)

    def do_POST(self) -> None:
        self.server.count("requests")
        path = self._path()
        try:
            if path != "/v1/chat/completions":
                self.close_connection = True
                raise RequestError(404, f"no route POST {path}", "not_found_error", "not_found")
            self._check_auth()
            body = self._read_json()
            req = parse_chat_request(body, self.server.served_name)
            gen = self.server.batcher.submit(req).result()
            if gen.finish_reason == "error":
                raise RequestError(500, f"generation failed: {gen.error}", "server_error", "generation_failed")
            self.server.count("completions")
            self._send_json(200, self._completion(gen))
        except RequestError as err:
            self._send_error(err)
        except Exception as exc:  # never crash a handler thread without an answer
            log.exception("unexpected error handling %s", path)
            self._send_error(RequestError(500, f"internal error: {type(exc).__name__}: {exc}", "server_error"))

    def do_PUT(self) -> None:
        self._method_not_allowed()

    def do_DELETE(self) -> None:
        self._method_not_allowed()

    def _method_not_allowed(self) -> None:
        self.close_connection = True
        self._send_error(RequestError(405, f"method {self.command} not allowed", "invalid_request_error"))

    def _model_card(self) -> dict[str, Any]:
        return {
            "id": self.server.served_name,
            "object": "model",
            "created": self.server.created,
            "owned_by": "taskmem-serve",
        }

    def _completion(self, gen: Generation) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.server.served_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": gen.text},
                    "finish_reason": gen.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": gen.prompt_tokens,
                "completion_tokens": gen.completion_tokens,
                "total_tokens": gen.prompt_tokens + gen.completion_tokens,
            },
        }


def build_server(
    engine: ChatEngine,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    served_name: str | None = None,
    api_key: str | None = None,
    max_batch: int = 4,
    batch_wait_s: float = 0.005,
    max_body_bytes: int = 64 * 1024 * 1024,
) -> TaskMemServer:
    """A bound (not yet serving) server; call ``serve_forever`` on a thread."""
    batcher = MicroBatcher(engine, max_batch=max_batch, wait_s=batch_wait_s)
    try:
        return TaskMemServer(
            (host, port),
            batcher=batcher,
            served_name=served_name or engine.model_id,
            api_key=api_key,
            max_body_bytes=max_body_bytes,
        )
    except BaseException:
        batcher.close()
        raise


# -- CLI ---------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="taskmem-serve", description="OpenAI-compatible chat server over a local Qwen3-VL (transformers)."
    )
    ap.add_argument("--model", required=True, help="local checkpoint directory or hub id")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000, help="0 = pick a free port")
    ap.add_argument("--served-model-name", default=None, help="model name clients send (default: --model)")
    ap.add_argument("--device-map", default="auto", help="auto, cpu, cuda, cuda:N")
    ap.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"))
    ap.add_argument("--max-pixels", type=int, default=320 * 240, help="pixels per keyframe before patching")
    ap.add_argument("--min-pixels", type=int, default=64 * 64)
    ap.add_argument("--revision", default="", help="hub revision")
    ap.add_argument("--max-batch", type=int, default=4, help="requests per engine.generate call")
    ap.add_argument("--batch-wait-ms", type=float, default=5.0, help="how long a batch waits for company")
    ap.add_argument("--max-body-mb", type=float, default=64.0, help="larger request bodies get 400")
    ap.add_argument(
        "--api-key",
        default=os.environ.get("TASKMEM_SERVE_API_KEY") or None,
        help="require 'Authorization: Bearer KEY' on /v1 (default: $TASKMEM_SERVE_API_KEY; unset = open)",
    )
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    if args.max_batch < 1:
        ap.error("--max-batch must be >= 1")
    if args.batch_wait_ms < 0:
        ap.error("--batch-wait-ms must be >= 0")
    if args.max_body_mb <= 0:
        ap.error("--max-body-mb must be > 0")
    if not 0 <= args.port <= 65535:
        ap.error("--port must be in [0, 65535]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    from taskmem_ros.config import ConfigError, ModelConfig
    from taskmem_ros.llm.base import EngineError
    from taskmem_ros.llm.transformers_engine import TransformersEngine

    try:
        cfg = ModelConfig(
            model_id=args.model,
            revision=args.revision,
            device_map=args.device_map,
            dtype=args.dtype,
            max_pixels=args.max_pixels,
            min_pixels=args.min_pixels,
        )
        engine = TransformersEngine(cfg)
    except (ConfigError, EngineError, ImportError) as exc:
        print(f"taskmem-serve: {exc}", file=sys.stderr, flush=True)
        return 2
    server: TaskMemServer | None = None
    try:
        if stop.is_set():
            return 0
        try:
            server = build_server(
                engine,
                host=args.host,
                port=args.port,
                served_name=args.served_model_name or args.model,
                api_key=args.api_key,
                max_batch=args.max_batch,
                batch_wait_s=args.batch_wait_ms / 1000.0,
                max_body_bytes=int(args.max_body_mb * 1024 * 1024),
            )
        except OSError as exc:
            print(f"taskmem-serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr, flush=True)
            return 2
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        thread.start()
        log.info("serving %r (%s) with max_batch=%d", server.served_name, args.model, args.max_batch)
        print(READY_PREFIX + server.url, flush=True)
        while not stop.wait(0.5):
            if not thread.is_alive():
                log.error("the HTTP server thread died")
                return 1
        return 0
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
            server.batcher.close()
        engine.close()
        log.info("stopped")


if __name__ == "__main__":
    raise SystemExit(main())
