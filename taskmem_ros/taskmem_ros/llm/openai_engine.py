"""Qwen3-VL behind an OpenAI-compatible server (vLLM, SGLang, ``taskmem-serve``).

This is how a fleet or an offboard evaluation scales past one GPU: e.g. Qwen3-VL-30B-A3B
served by vLLM with tensor parallelism, many robots / evaluation workers as clients.

* Requests of one ``generate`` call go out concurrently, at most ``endpoint.max_concurrency``
  in flight per engine (one thread pool shared by every caller of the engine), and come back
  in order.
* A ``video`` part (RGB keyframes + seconds from clip start) becomes, per frame, a text part
  ``"<t.t seconds>"`` followed by an ``image_url`` part holding a JPEG data URL: what vLLM
  accepts for Qwen3-VL with several images, and the same timestamp text Qwen3-VL's own video
  placeholder carries (``taskmem-serve`` regroups them into one video).
* The official ``openai`` client does the retries (exponential backoff on connection errors,
  408/409/429/5xx); each attempt is bounded by ``endpoint.timeout_s``. Whatever still fails
  becomes ``Generation(finish_reason="error")`` with the endpoint and the cause, never an
  exception, so one failed clip does not sink its batch.
* ``ChatRequest.use_adapter`` is not applied here: on a server, an adapter (LoRA) is chosen
  by serving it under its own model name (``endpoint.model``).
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

from taskmem_ros.config import EndpointConfig
from taskmem_ros.errors import MissingDependencyError
from taskmem_ros.llm.base import ChatEngine, ChatRequest, EngineError, Generation, Message

log = logging.getLogger(__name__)

# HTTP statuses the openai client retries by itself (see openai._base_client._should_retry).
_RETRIED_STATUSES = frozenset({408, 409, 429})


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingDependencyError.for_extra("llm", "openai") from exc
    return openai


def timestamp_marker(t: float) -> str:
    """The text put before each keyframe (Qwen3-VL's video timestamp format)."""
    return f"<{float(t):.1f} seconds>"


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    """RGB (or gray / RGBA) uint8 array -> JPEG bytes."""
    arr = np.asarray(frame)
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 3:
        bgr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        bgr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGR)
    elif arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1):
        bgr = np.ascontiguousarray(arr)
    else:
        raise ValueError(f"a frame must be (H, W, 3) RGB, got shape {arr.shape}")
    ok, buf = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError(f"cannot JPEG-encode a frame of shape {arr.shape}")
    return bytes(buf.tobytes())


def jpeg_data_url(frame: np.ndarray, quality: int) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(frame, quality)).decode("ascii")


def to_openai_messages(messages: Sequence[Message], jpeg_quality: int) -> list[dict[str, Any]]:
    """Our chat layout -> OpenAI chat messages (video parts become timestamped JPEG images)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        content = m.get("content")
        if content is None or isinstance(content, str):
            out.append(dict(m))
            continue
        parts: list[dict[str, Any]] = []
        for p in content:
            kind = p.get("type")
            if kind == "video":
                frames, stamps = p["frames"], p["timestamps_s"]
                if len(frames) != len(stamps):
                    raise ValueError(f"video part has {len(frames)} frames but {len(stamps)} timestamps")
                for frame, t in zip(frames, stamps, strict=True):
                    parts.append({"type": "text", "text": timestamp_marker(t)})
                    parts.append({"type": "image_url", "image_url": {"url": jpeg_data_url(frame, jpeg_quality)}})
            elif kind == "image" and isinstance(p.get("image"), np.ndarray):
                parts.append({"type": "image_url", "image_url": {"url": jpeg_data_url(p["image"], jpeg_quality)}})
            else:  # text, and parts already in OpenAI form (image_url, ...), pass through
                parts.append(dict(p))
        out.append({**m, "content": parts})
    return out


def _cause(exc: BaseException) -> str:
    """The error and what caused it (openai's connection errors only say 'Connection error.')."""
    text = f"{type(exc).__name__}: {exc}"
    seen = {id(exc)}
    inner = exc.__cause__ or exc.__context__
    while inner is not None and id(inner) not in seen:
        seen.add(id(inner))
        text += f" <- {type(inner).__name__}: {inner}"
        inner = inner.__cause__ or inner.__context__
    return text


class OpenAIEngine(ChatEngine):
    """A ChatEngine over an OpenAI-compatible ``/v1/chat/completions`` endpoint."""

    def __init__(self, cfg: EndpointConfig) -> None:
        openai = _import_openai()
        self.cfg = cfg
        self.model_id = cfg.model
        self.base_url = cfg.base_url.rstrip("/")
        self._openai = openai
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=os.environ.get(cfg.api_key_env) or "EMPTY",
            timeout=cfg.timeout_s,
            max_retries=cfg.max_retries,
        )
        # One pool per engine: every caller (policy, answerer) shares the concurrency limit.
        self._pool = ThreadPoolExecutor(max_workers=cfg.max_concurrency, thread_name_prefix="openai-engine")
        self._stats_lock = threading.Lock()
        self._closed = False
        self.stats: dict[str, int] = {
            "requests": 0,
            "errors": 0,
            "retries": 0,  # exact for answered requests; failures count the client's full retry budget
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "in_flight": 0,
            "max_in_flight": 0,
        }

    # -- health ------------------------------------------------------------------------------
    def health(self, timeout_s: float | None = None) -> list[str]:
        """The model ids the endpoint serves (GET /models); EngineError if it cannot say."""
        timeout = min(self.cfg.timeout_s, 10.0) if timeout_s is None else timeout_s
        try:
            page = self.client.with_options(timeout=timeout).models.list()
            return [str(m.id) for m in page.data]
        except Exception as exc:
            raise EngineError(
                f"OpenAI-compatible endpoint {self.base_url} did not list its models: {_cause(exc)}"
            ) from exc

    def ensure_served(self) -> None:
        """Raise EngineError unless the endpoint serves ``endpoint.model``."""
        served = self.health()
        if self.cfg.model not in served:
            raise EngineError(
                f"endpoint {self.base_url} does not serve endpoint.model={self.cfg.model!r}; it serves {served}"
            )

    # -- generation ----------------------------------------------------------------------------
    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        futures: list[Future[Generation] | None] = []
        for r in requests:
            try:
                futures.append(None if self._closed else self._pool.submit(self._one, r))
            except RuntimeError:  # the pool was shut down by close()
                futures.append(None)
        out: list[Generation] = []
        for f in futures:  # _one never raises; each attempt is bounded by timeout_s
            try:
                out.append(f.result() if f is not None else self._closed_error())
            except CancelledError:  # close() while this request was still queued
                out.append(self._closed_error())
        return out

    def _closed_error(self) -> Generation:
        return Generation("", finish_reason="error", error=f"OpenAIEngine for {self.base_url} is closed")

    def request_kwargs(self, req: ChatRequest) -> dict[str, Any]:
        """The chat.completions.create arguments for one request."""
        kw: dict[str, Any] = {
            "model": self.cfg.model,
            "messages": to_openai_messages(req.messages, self.cfg.jpeg_quality),
            "max_tokens": int(req.max_new_tokens),
            "temperature": float(req.temperature),
        }
        if req.json_schema and self.cfg.structured_output:
            kw["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "memories", "schema": req.json_schema},
            }
        extra: dict[str, Any] = {}
        if not req.enable_thinking:
            extra["chat_template_kwargs"] = {"enable_thinking": False}
        if req.ignore_eos:
            extra["ignore_eos"] = True  # vLLM / SGLang sampling extension (benchmarks)
        if extra:
            kw["extra_body"] = extra
        return kw

    def _one(self, req: ChatRequest) -> Generation:
        with self._stats_lock:
            self.stats["requests"] += 1
            self.stats["in_flight"] += 1
            self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.stats["in_flight"])
        try:
            return self._call(req)
        except Exception as exc:  # never raise out of a worker
            log.exception("OpenAI request failed unexpectedly")
            return self._error(f"request to {self.base_url} failed: {_cause(exc)}")
        finally:
            with self._stats_lock:
                self.stats["in_flight"] -= 1

    def _call(self, req: ChatRequest) -> Generation:
        openai = self._openai
        try:
            kw = self.request_kwargs(req)
        except (ValueError, KeyError, TypeError) as exc:
            return self._error(f"cannot convert the request for {self.base_url}: {type(exc).__name__}: {exc}")
        try:
            raw = self.client.chat.completions.with_raw_response.create(**kw)
            retries = int(getattr(raw, "retries_taken", 0) or 0)
            completion = raw.parse()
        except openai.APITimeoutError as exc:
            self._count_retries(self.cfg.max_retries)
            return self._error(
                f"no answer from {self.base_url} within timeout_s={self.cfg.timeout_s:g} "
                f"(after {self.cfg.max_retries} retries): {_cause(exc)}"
            )
        except openai.APIConnectionError as exc:
            self._count_retries(self.cfg.max_retries)
            return self._error(
                f"cannot connect to {self.base_url} (after {self.cfg.max_retries} retries): {_cause(exc)}"
            )
        except openai.APIStatusError as exc:
            status = int(exc.status_code)
            if status in _RETRIED_STATUSES or status >= 500:
                self._count_retries(self.cfg.max_retries)
            return self._error(f"{self.base_url} answered HTTP {status} for model {self.cfg.model!r}: {exc.message}")
        except (openai.APIError, ValueError) as exc:  # e.g. a body that is not a chat completion
            return self._error(f"bad response from {self.base_url}: {_cause(exc)}")
        self._count_retries(retries)
        choices = getattr(completion, "choices", None) or []
        if not choices:
            return self._error(f"response from {self.base_url} has no choices")
        choice = choices[0]
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None) or ""
        finish = "length" if getattr(choice, "finish_reason", None) == "length" else "stop"
        usage = getattr(completion, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        with self._stats_lock:
            self.stats["prompt_tokens"] += prompt_tokens
            self.stats["completion_tokens"] += completion_tokens
        return Generation(text, prompt_tokens, completion_tokens, finish)

    def _count_retries(self, n: int) -> None:
        if n:
            with self._stats_lock:
                self.stats["retries"] += n

    def _error(self, message: str) -> Generation:
        with self._stats_lock:
            self.stats["errors"] += 1
        log.warning("%s", message)
        return Generation("", finish_reason="error", error=message)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            self.client.close()
        except Exception:  # pragma: no cover - closing twice / transport already gone
            log.debug("closing the openai client failed", exc_info=True)

    def __enter__(self) -> OpenAIEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
