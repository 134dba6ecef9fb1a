"""OpenAIEngine against a real ``taskmem-serve`` subprocess over a tiny Qwen3-VL (no mocks).

The server runs as ``python -m taskmem_ros.llm.server`` on a free port; the client is the real
``openai`` package. Results are compared with TransformersEngine called in-process, which
proves that video parts round-trip (frames as JPEG data URLs, timestamps as text markers).
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import taskmem_ros
from taskmem_ros.config import EndpointConfig, ModelConfig
from taskmem_ros.llm.base import ChatRequest, EngineError, text_part, video_part
from taskmem_ros.llm.openai_engine import OpenAIEngine, jpeg_data_url, to_openai_messages
from taskmem_ros.llm.server import READY_PREFIX
from taskmem_ros.llm.transformers_engine import TransformersEngine

SERVED = "tiny-qwen3vl"
MAX_PIXELS = 128 * 96
JPEG_QUALITY = 85
READY_TIMEOUT_S = 180.0
PACKAGE_ROOT = Path(taskmem_ros.__file__).resolve().parents[1]  # what `import taskmem_ros` needs on sys.path


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny Qwen3-VL whose weights are large enough that greedy output depends on the input
    (the default init is so small that every prompt gives the same text)."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    from taskmem_ros.llm.tiny import build_tiny_qwen3vl

    path = build_tiny_qwen3vl(tmp_path_factory.mktemp("openai_engine") / "tiny")
    model = Qwen3VLForConditionalGeneration.from_pretrained(path)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    model.save_pretrained(path)
    return str(path)


@dataclass
class Server:
    proc: subprocess.Popen[str]
    base_url: str  # http://127.0.0.1:PORT/v1
    log_path: Path

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/v1")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return int(self.proc.returncode)


def start_server(model: str, log_path: Path, *extra: str) -> Server:
    cmd = [sys.executable, "-m", "taskmem_ros.llm.server", "--model", model, "--port", "0", "--device-map", "cpu"]
    cmd += ["--max-pixels", str(MAX_PIXELS), "--served-model-name", SERVED, *extra]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("TASKMEM_SERVE_API_KEY", None)
    log_file = log_path.open("w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log_file, text=True, env=env, cwd=log_path.parent)
    log_file.close()
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    server = Server(proc, "", log_path)
    try:
        line = lines.get(timeout=READY_TIMEOUT_S)
    except queue.Empty:
        server.stop()
        pytest.fail(f"taskmem-serve did not get ready in {READY_TIMEOUT_S:.0f} s:\n{server.log()}")
    if not line.startswith(READY_PREFIX):
        server.stop()
        pytest.fail(f"unexpected first stdout line {line!r} (exit {proc.poll()}):\n{server.log()}")
    server.base_url = line[len(READY_PREFIX) :].strip()
    return server


@pytest.fixture(scope="module")
def server(model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # --max-body-mb 1: the oversize check stays cheap; --batch-wait-ms 100: concurrent requests share a batch
    srv = start_server(
        model_dir, tmp_path_factory.mktemp("server") / "server.log", "--max-body-mb", "1", "--batch-wait-ms", "100"
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def local_engine(model_dir: str) -> Iterator[TransformersEngine]:
    engine = TransformersEngine(ModelConfig(model_id=model_dir, device_map="cpu", max_pixels=MAX_PIXELS))
    yield engine
    engine.close()


def endpoint(srv_url: str, **kw: Any) -> EndpointConfig:
    defaults: dict[str, Any] = {"model": SERVED, "timeout_s": 60.0, "max_retries": 0, "jpeg_quality": JPEG_QUALITY}
    return EndpointConfig(base_url=srv_url, **dict(defaults, **kw))


# -- helpers -----------------------------------------------------------------------------------
def make_frames(n: int, seed: int) -> list[np.ndarray]:
    """Smooth coloured scenes with a moving square (JPEG-friendly, distinct per frame)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:96, 0:128]
    frames = []
    for i in range(n):
        base = rng.integers(0, 255, 3)
        f = np.stack([(xx * 2 + base[0]) % 256, (yy * 2 + base[1]) % 256, (xx + yy + base[2]) % 256], -1)
        f = f.astype(np.uint8)
        x0 = 10 + 20 * i
        f[20:50, x0 : x0 + 30] = rng.integers(0, 255, 3, dtype=np.uint8)
        frames.append(f)
    return frames


def jpeg_roundtrip(frame: np.ndarray) -> np.ndarray:
    """What the server decodes from the data URL the engine sends."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def video_request(frames: list[np.ndarray], stamps: list[float], prompt: str, max_new_tokens: int = 12) -> ChatRequest:
    msgs = [
        {"role": "system", "content": "You are the memory of a robot."},
        {"role": "user", "content": [video_part(frames, stamps), text_part(prompt)]},
    ]
    return ChatRequest(msgs, max_new_tokens=max_new_tokens, temperature=0.0)


def text_request(prompt: str, max_new_tokens: int = 12) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": prompt}], max_new_tokens=max_new_tokens, temperature=0.0)


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def assert_openai_error(status: int, body: dict[str, Any], expected: int) -> dict[str, Any]:
    assert status == expected, body
    err = body["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert {"message", "type", "code"} <= set(err)
    return err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- tests -------------------------------------------------------------------------------------
def test_conversion_sends_timestamped_jpeg_images() -> None:
    frames = make_frames(3, seed=0)
    req = video_request(frames, [0.0, 1.25, 2.5], "What happened?")
    req.json_schema = {"type": "object"}
    engine = OpenAIEngine(endpoint("http://127.0.0.1:9/v1"))
    try:
        kw = engine.request_kwargs(req)
    finally:
        engine.close()
    parts = kw["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"] * 3 + ["text"]
    assert [p["text"] for p in parts[0:6:2]] == ["<0.0 seconds>", "<1.2 seconds>", "<2.5 seconds>"]
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert kw["messages"][0] == {"role": "system", "content": "You are the memory of a robot."}
    assert kw["max_tokens"] == 12 and kw["temperature"] == 0.0 and kw["model"] == SERVED
    assert kw["extra_body"] == {"chat_template_kwargs": {"enable_thinking": False}}
    assert kw["response_format"]["json_schema"] == {"name": "memories", "schema": {"type": "object"}}
    assert to_openai_messages([{"role": "user", "content": "hi"}], 85) == [{"role": "user", "content": "hi"}]


def test_batch_with_video_and_text_in_order(server: Server, local_engine: TransformersEngine) -> None:
    reqs = [
        video_request(make_frames(4, seed=1), [0.0, 1.5, 3.0, 4.5], "Describe the clip."),
        text_request("hello"),
        video_request(make_frames(6, seed=2), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0], "What is new?"),
        text_request("Where are the keys? Answer with the letter of the correct option."),
        video_request(make_frames(2, seed=3), [0.5, 1.0], "Who is there?"),
    ]
    with OpenAIEngine(endpoint(server.base_url, max_concurrency=5)) as engine:
        gens = engine.generate(reqs)
        assert engine.stats["requests"] == 5 and engine.stats["errors"] == 0
        assert engine.stats["prompt_tokens"] == sum(g.prompt_tokens for g in gens) > 0
    assert len(gens) == len(reqs)
    for g in gens:
        assert g.finish_reason in ("stop", "length") and not g.error
        assert g.prompt_tokens > 0 and 0 < g.completion_tokens <= 12
    # prompt sizes identify each request: the order is kept and the video tokens arrived
    expected = [local_engine.prepare([r])["attention_mask"].sum().item() for r in reqs]
    assert [g.prompt_tokens for g in gens] == expected
    assert gens[0].prompt_tokens > gens[1].prompt_tokens and gens[2].prompt_tokens > gens[0].prompt_tokens
    _, health = get(server.root + "/health")
    assert health["stats"]["max_batch_seen"] >= 2  # concurrent requests were micro-batched


def test_results_match_in_process_engine(server: Server, local_engine: TransformersEngine) -> None:
    frames = make_frames(4, seed=4)
    sent = [jpeg_roundtrip(f) for f in frames]  # the pixels the server will see
    stamps_a, stamps_b = [0.0, 1.5, 3.0, 4.5], [0.0, 5.0, 10.0, 15.0]
    thinking = text_request("What is on the kitchen table?")
    thinking.enable_thinking = True  # no extra_body sent: the server's template default (think) applies
    reqs = [
        video_request(frames, stamps_a, "Describe the clip."),
        video_request(frames, stamps_b, "Describe the clip."),
        text_request("What is on the kitchen table?"),
        thinking,
    ]
    local_reqs = [
        video_request(sent, stamps_a, "Describe the clip."),
        video_request(sent, stamps_b, "Describe the clip."),
        reqs[2],
        reqs[3],
    ]
    with OpenAIEngine(endpoint(server.base_url, max_concurrency=1)) as engine:  # one at a time, like local
        remote = engine.generate(reqs)
    local = [local_engine.generate([r])[0] for r in local_reqs]
    assert local[0].text != local[1].text  # the model is sensitive to the timestamps ...
    assert local[2].prompt_tokens != local[3].prompt_tokens  # (and to enable_thinking)
    assert [g.text for g in remote] == [g.text for g in local]  # ... and they survive the round trip
    assert [(g.prompt_tokens, g.completion_tokens, g.finish_reason) for g in remote] == [
        (g.prompt_tokens, g.completion_tokens, g.finish_reason) for g in local
    ]


def test_concurrency_limit_respected(server: Server) -> None:
    reqs = [video_request(make_frames(2, seed=10 + i), [0.0, 1.0], f"Clip {i}.", max_new_tokens=4) for i in range(6)]
    with OpenAIEngine(endpoint(server.base_url, max_concurrency=2)) as engine:
        gens = engine.generate(reqs)
        stats = dict(engine.stats)
    assert [g.finish_reason for g in gens].count("error") == 0
    assert all(g.prompt_tokens > 0 for g in gens)
    assert stats["requests"] == 6 and stats["in_flight"] == 0
    assert 1 <= stats["max_in_flight"] <= 2


def test_health_lists_served_name(server: Server) -> None:
    with OpenAIEngine(endpoint(server.base_url)) as engine:
        assert engine.health() == [SERVED]
        engine.ensure_served()
    with OpenAIEngine(endpoint(server.base_url, model="someone-else")) as engine:
        with pytest.raises(EngineError, match="does not serve"):
            engine.ensure_served()
        gen = engine.generate([text_request("hi")])[0]  # vLLM-like 404 for an unknown model
        assert gen.finish_reason == "error" and "404" in gen.error and server.base_url in gen.error


def test_unreachable_endpoint_fails_fast_without_raising() -> None:
    port = free_port()  # bound then closed: connection refused
    url = f"http://127.0.0.1:{port}/v1"
    with OpenAIEngine(EndpointConfig(base_url=url, model=SERVED, timeout_s=2.0, max_retries=1)) as engine:
        t0 = time.monotonic()
        gens = engine.generate([text_request("hi"), video_request(make_frames(2, 0), [0.0, 1.0], "x")])
        elapsed = time.monotonic() - t0
        assert engine.stats["errors"] == 2 and engine.stats["retries"] == 2
        with pytest.raises(EngineError, match=f"127.0.0.1:{port}"):
            engine.health()
    assert elapsed < 10.0
    for g in gens:
        assert g.finish_reason == "error" and g.text == ""
        assert url in g.error and "connect" in g.error.lower()


def test_silent_endpoint_times_out() -> None:
    with socket.socket() as listener:  # accepts connections (kernel backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        with OpenAIEngine(EndpointConfig(base_url=url, model=SERVED, timeout_s=1.0, max_retries=0)) as engine:
            t0 = time.monotonic()
            gen = engine.generate([text_request("hi")])[0]
            elapsed = time.monotonic() - t0
    assert elapsed < 8.0
    assert gen.finish_reason == "error" and url in gen.error and "timeout" in gen.error.lower()


def test_bad_requests_get_400_and_server_keeps_serving(server: Server) -> None:
    url = server.base_url + "/chat/completions"
    ok_msgs = [{"role": "user", "content": "hi"}]

    err = assert_openai_error(*post(url, b"{not json"), 400)
    assert err["code"] == "invalid_json"
    assert_openai_error(*post(url, b"\xff\xfe garbage"), 400)
    err = assert_openai_error(*post(url, json.dumps({"model": SERVED}).encode()), 400)
    assert "messages" in err["message"]
    assert_openai_error(*post(url, json.dumps({"messages": []}).encode()), 400)
    assert_openai_error(*post(url, b"[1, 2]"), 400)
    err = assert_openai_error(*post(url, json.dumps({"messages": ok_msgs, "stream": True}).encode()), 400)
    assert "stream" in err["message"]
    assert_openai_error(*post(url, json.dumps({"messages": ok_msgs, "max_tokens": "ten"}).encode()), 400)

    def with_image(image_url: str) -> bytes:
        content = [{"type": "text", "text": "<0.0 seconds>"}, {"type": "image_url", "image_url": {"url": image_url}}]
        return json.dumps({"messages": [{"role": "user", "content": content}], "max_tokens": 4}).encode()

    for bad in (
        "data:image/jpeg;base64,!!!not-base64!!!",
        "data:image/png;base64,aGVsbG8gd29ybGQ=",  # valid base64, not an image
        "data:image/jpeg,rawbytes",
        "https://example.com/cat.jpg",  # no fetching from the network
    ):
        err = assert_openai_error(*post(url, with_image(bad)), 400)
        assert err["code"] == "bad_data_url", err
    bad_part = {"messages": [{"role": "user", "content": [{"type": "audio", "data": "x"}]}]}
    assert_openai_error(*post(url, json.dumps(bad_part).encode()), 400)

    # oversized: refused from the Content-Length alone (body never sent)
    conn = http.client.HTTPConnection("127.0.0.1", int(server.base_url.rsplit(":", 1)[1].split("/")[0]), timeout=30)
    try:
        conn.putrequest("POST", "/v1/chat/completions")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(5 * 1024 * 1024))
        conn.endheaders()
        resp = conn.getresponse()
        err = assert_openai_error(resp.status, json.loads(resp.read()), 400)
        assert err["code"] == "body_too_large"
    finally:
        conn.close()

    # a raw valid request (one image without a marker = a one-frame video) and the engine still work
    status, body = post(url, with_image(jpeg_data_url(make_frames(1, 5)[0], 85)))
    assert status == 200, body
    assert body["object"] == "chat.completion" and body["model"] == SERVED
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    with OpenAIEngine(endpoint(server.base_url)) as engine:
        gen = engine.generate([text_request("still there?")])[0]
    assert gen.finish_reason != "error" and gen.prompt_tokens > 0
    assert server.proc.poll() is None


def test_api_key_required_and_accepted(model_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    srv = start_server(model_dir, tmp_path / "server.log", "--api-key", "s3cret")
    try:
        monkeypatch.setenv("TASKMEM_TEST_KEY", "s3cret")
        with OpenAIEngine(endpoint(srv.base_url, api_key_env="TASKMEM_TEST_KEY")) as engine:
            assert engine.health() == [SERVED]
            gen = engine.generate([text_request("hello")])[0]
            assert gen.finish_reason != "error" and gen.prompt_tokens > 0, gen.error

        monkeypatch.setenv("TASKMEM_TEST_KEY", "wrong")
        with OpenAIEngine(endpoint(srv.base_url, api_key_env="TASKMEM_TEST_KEY")) as engine:
            gen = engine.generate([text_request("hello")])[0]
            assert gen.finish_reason == "error" and "401" in gen.error
            with pytest.raises(EngineError, match="did not list"):
                engine.health()

        monkeypatch.delenv("TASKMEM_TEST_KEY")  # unset -> "EMPTY"
        with OpenAIEngine(endpoint(srv.base_url, api_key_env="TASKMEM_TEST_KEY")) as engine:
            gen = engine.generate([text_request("hello")])[0]
            assert gen.finish_reason == "error" and "401" in gen.error

        body = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
        err = assert_openai_error(*post(srv.base_url + "/chat/completions", body), 401)
        assert err["type"] == "authentication_error"
        assert get(srv.root + "/health")[0] == 200  # liveness stays open
    finally:
        rc = srv.stop()
    assert rc == 0, srv.log()  # SIGTERM -> clean shutdown
    assert "stopped" in srv.log()


def test_memorizer_over_the_openai_backend_writes_entries(taught_qwen3vl: Path, tmp_path: Path) -> None:
    """Clip -> OpenAIEngine -> taskmem-serve (the taught tiny model) -> parsed entries -> store:
    the path a fleet takes with vLLM, end to end through the same Memorizer the node runs."""
    from tiny_models import TAUGHT_MEMORY

    from taskmem_ros.config import TaskMemConfig, from_nested
    from taskmem_ros.llm.tiny import synthetic_clip
    from taskmem_ros.memorizer import Memorizer
    from taskmem_ros.policy.factory import make_policy
    from taskmem_ros.store import EpisodicStore

    # the pixel budget the model was taught with (64 x 64 per keyframe)
    srv = start_server(str(taught_qwen3vl), tmp_path / "taught.log", "--max-batch", "2", "--max-pixels", "4096")
    try:
        cfg = from_nested(
            TaskMemConfig,
            {
                "store": {"url": f"sqlite:///{tmp_path / 'm.db'}", "embedder": "hash"},
                "policy": {"backend": "openai", "batch_size": 2, "max_new_tokens": 48, "context_size": 0},
                "endpoint": {"base_url": srv.base_url, "model": SERVED, "structured_output": True},
            },
        )
        with EpisodicStore(cfg.store) as store:
            mem = Memorizer(cfg, store, make_policy(cfg))
            mem.submit([synthetic_clip(i, "Hello robot.") for i in range(3)])
            records = mem.process_pending()
            stats = mem.all_stats()
            mem.policy.close()
        assert stats["clips_memorized"] == 3 and stats.get("policy_generation_errors", 0) == 0, stats
        assert records and all(r.model_id == SERVED for r in records)
        assert sum(r.text == TAUGHT_MEMORY for r in records) == 2, stats  # one per batch: the batch dedupes
    finally:
        srv.stop()


def test_ignore_eos_generates_the_full_budget(server: Server) -> None:
    """Benchmarks compare equal work: ignore_eos (vLLM's extension) reaches the server."""
    req = text_request("Count.", max_new_tokens=20)
    req.ignore_eos = True
    engine = OpenAIEngine(endpoint(server.base_url))
    try:
        assert engine.request_kwargs(req)["extra_body"]["ignore_eos"] is True
        gen = engine.generate([req])[0]
    finally:
        engine.close()
    assert gen.completion_tokens == 20 and gen.finish_reason == "length", gen
