"""The viewer app in-process (Starlette's TestClient): every page, the safety rules, the
answerer it shares with AnswerTask, and reading a store while it is being written."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the 'viewer' extra is not installed")
from fastapi.testclient import TestClient
from viewer_data import ADAPTER, HOSTILE_STREAM, SCRIPT, S, add_hostile, add_phase2_round

from taskmem_ros.answer import make_answerer
from taskmem_ros.config import ConfigError, StoreConfig, TaskMemConfig, ViewerConfig
from taskmem_ros.store import EpisodicStore
from taskmem_ros.store.clip_archive import ClipArchive
from taskmem_ros.types import Clip, MemoryDraft, VideoFrame
from taskmem_ros.viewer.app import create_app
from taskmem_ros.viewer.cli import main as viewer_main

T0 = 1_700_000_000 * S
FACTS = ("The spare battery is in the blue cabinet.", "My keys are in the kitchen drawer.", "A sign says DOCK 7.")
TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """A store with three clips of 'robot' (kept in the archive with real pixel data), a logged
    task, an evaluation run, a Phase Two round, and the hostile stream."""
    db, archive = tmp_path / "m.db", tmp_path / "clips"
    cfg = StoreConfig(url=f"sqlite:///{db}", embedder="hash")
    with EpisodicStore(cfg) as store:
        rng = np.random.default_rng(0)
        for i, fact in enumerate(FACTS):
            a, b = T0 + i * 10 * S, T0 + (i + 1) * 10 * S
            frames = [VideoFrame(a + k * S, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for k in range(3)]
            ClipArchive(archive).save(Clip("robot", i, a, b, keyframes=frames))
            cid = store.add_clip("robot", i, a, b, keyframes=3, transcript=fact)
            store.add_entries(
                "robot",
                [MemoryDraft(text=fact, start_ns=a, end_ns=b, source="speech")],
                clip_id=cid,
                model_id="perception",
            )
        ans = make_answerer(TaskMemConfig(store=cfg), store).answer("Where is the spare battery?", as_of_ns=T0 + 30 * S)
        store.log_task("Where is the spare battery?", asked_at_ns=T0 + 30 * S, answer=ans, stream="robot")
        store.log_task("Which dock?", asked_at_ns=T0 + 30 * S, answer="Dock 7", is_eval=True, outcome=True)
        run = store.eval_run("ci-run", {"seed": 0})
        for q, (abst, ok, kind) in enumerate([(False, True, "speech"), (False, False, "text"), (True, False, "text")]):
            result = {
                "qid": f"q{q}",
                "dataset": "videomme-synthetic",
                "stream": "v",
                "ask_ns": 0,
                "question": SCRIPT,
                "reference": "A",
                "prediction": "B",
                "abstained": abst,
                "correct": ok,
                "category": {"task_type": kind},
            }
            store.record_eval_answer(run, "videomme-synthetic", f"q{q}", result)
        add_phase2_round(store, "robot", T0 + 30 * S)
        add_hostile(store, archive, tmp_path / "outside.txt")
    return {"db": db, "archive": archive, "outside": tmp_path / "outside.txt"}


def _client(world: dict[str, Path], **viewer: object) -> Iterator[TestClient]:
    cfg = TaskMemConfig(store=StoreConfig(url=f"sqlite:///{world['db']}", embedder="hash"))
    app = create_app(cfg, ViewerConfig(clips_dir=str(world["archive"]), **viewer))  # type: ignore[arg-type]
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def client(world: dict[str, Path]) -> Iterator[TestClient]:
    yield from _client(world)


def test_pages_render_with_hostile_text_escaped(client: TestClient) -> None:
    pages = {
        "/timeline?stream=robot": "blue cabinet",
        "/timeline?" + f"stream={HOSTILE_STREAM}": "&lt;script&gt;window.__pwned = 1&lt;/script&gt;",
        "/tasks": "Where is the spare battery?",
        "/task?id=1": "blue cabinet",
        "/adapters": ADAPTER,
        "/adapter?id=" + ADAPTER: "The red mug is on the top shelf.",
        "/clip?id=1": "The spare battery is in the blue cabinet.",
        "/evals": "ci-run",
        "/eval?run=ci-run": "videomme-synthetic",
        "/ask?q=Where+is+the+spare+battery%3F": "Answer",
    }
    for url, expect in pages.items():
        r = client.get(url)
        assert r.status_code == 200, (url, r.text[:500])
        assert expect in r.text, url
        assert "<script" not in r.text.lower() and "<img src=x" not in r.text, url  # only ever escaped
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script" not in csp  # no script source is allowed at all
        assert r.headers["x-content-type-options"] == "nosniff"
    assert "&lt;script&gt;" in client.get("/adapters").text  # the hostile adapter id, as text
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/timeline?stream=robot"


def test_timeline_filters_by_time_and_text(client: TestClient) -> None:
    def texts(url: str) -> list[str]:
        html = client.get(url).text
        return [f for f in FACTS if f in html]

    assert texts("/timeline?stream=robot") == list(FACTS)
    assert texts("/timeline?stream=robot&from=11&to=19") == [FACTS[1]]  # entries overlapping [11 s, 19 s]
    assert texts("/timeline?stream=robot&q=kitchen+drawer") == [FACTS[1]]
    html = client.get("/timeline?stream=robot&highlight=2").text
    assert 'id="e2" class="entry evidence"' in html and 'id="e1" class="entry"' in html


def test_ask_is_the_answer_task_answerer_with_evidence_highlighted(world: dict[str, Path], client: TestClient) -> None:
    cfg = TaskMemConfig(store=StoreConfig(url=f"sqlite:///{world['db']}", embedder="hash"))
    with EpisodicStore(cfg.store, read_only=True) as store:
        direct = make_answerer(cfg, store).answer("Where is the spare battery?", as_of_ns=T0 + 25 * S, stream="robot")
        early = make_answerer(cfg, store).answer("Where is the spare battery?", as_of_ns=T0 + 5 * S, stream="robot")
    assert not direct.abstained and direct.evidence_ids
    html = client.get("/ask", params={"q": "Where is the spare battery?", "asked_at": "25", "stream": "robot"}).text
    assert f'<p class="answer-text" id="answer-text">{direct.text}</p>' in html
    for eid in direct.evidence_ids:
        assert f'id="e{eid}" class="entry evidence"' in html
    assert FACTS[2] not in html  # as of 25 s the third clip (20-30 s) had not ended
    # as of 5 s no clip has ended: the answerer has nothing, the page says so
    assert early.abstained
    assert (
        "Abstained"
        in client.get("/ask", params={"q": "Where is the spare battery?", "asked_at": "5", "stream": "robot"}).text
    )
    mc = client.get(
        "/ask",
        params={
            "q": "Where are my keys?",
            "choices": "In the car\nIn the kitchen drawer\nOn the desk",
            "stream": "robot",
        },
    )
    assert "choice B: In the kitchen drawer" in mc.text


def test_adapter_page_shows_the_phase_two_round(client: TestClient) -> None:
    html = client.get("/adapter", params={"id": ADAPTER}).text
    assert "<td>accuracy</td><td>0.5</td><td>1.0</td>" in html
    assert "<td>sampled_useful</td><td>0.62</td><td>0.92</td>" in html
    before, after = html.split('id="after"')
    assert all(f in before for f in FACTS) and "red mug" not in before  # what was written before it
    assert "red mug" in after and not any(f in after for f in FACTS)
    listing = client.get("/adapters").text
    assert "ab" * 32 in listing and 'class="adapter active"' in listing


def test_eval_report_tables_and_plot(client: TestClient) -> None:
    html = client.get("/eval", params={"run": "ci-run"}).text
    # 3 questions, 2 answered, 1 correct: Acc 33.3 = Cov 66.7 x Prec 50.0
    assert "<td>videomme-synthetic</td><td>3</td><td>2</td><td>1</td><td>33.3</td><td>66.7</td><td>50.0</td>" in html
    png = client.get("/eval/plot.png", params={"run": "ci-run", "dataset": "videomme-synthetic", "key": "task_type"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    img = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] >= 600
    assert client.get("/eval/plot.png", params={"run": "ci-run", "dataset": "x", "key": "y"}).status_code == 404


def test_frames_come_only_from_the_archive(world: dict[str, Path], client: TestClient) -> None:
    r = client.get("/frame/1/0.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (48, 64, 3)  # smaller than the thumbnail width: not upscaled
    assert client.get("/frame/1/3.jpg").status_code == 404  # the clip has 3 keyframes
    assert client.get("/frame/1/0.jpg?w=7").status_code == 404  # only the fixed widths
    hostile = client.get("/frame/4/0.jpg")  # its archive file is a symlink to a file outside
    assert hostile.status_code == 404 and b"root:" not in hostile.content
    for url in (
        "/frame/..%2F..%2Fetc%2Fpasswd/0.jpg",
        "/static/../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/etc/passwd",
    ):
        r = client.get(url)
        assert r.status_code in (404, 422) and b"root:" not in r.content, url
    assert "/frame/4/" not in client.get("/timeline", params={"stream": HOSTILE_STREAM}).text


def test_bad_parameters_are_clear_400s(client: TestClient) -> None:
    for url, message in (
        ("/timeline?stream=robot&from=abc", "is not a number of seconds"),
        ("/timeline?stream=%3Cscript%3Ex", "no stream"),
        ("/task?id=999", "no task 999"),
        ("/adapter?id=nope", "no adapter"),
        ("/eval?run=nope", "no evaluation run"),
        ("/ask?q=x&asked_at=-3", "out of range"),
    ):
        r = client.get(url)
        assert r.status_code == 400 and message in r.text and "<script>" not in r.text, url
    assert client.get("/ask", params={"q": "x", "choices": "\n".join("abcdefghijkl")}).status_code == 400
    assert client.get("/task?id=abc").status_code == 422


def test_reads_never_change_the_store(world: dict[str, Path], client: TestClient) -> None:
    digest = hashlib.sha256(world["db"].read_bytes()).hexdigest()
    for url in ("/timeline?stream=robot&q=battery", "/ask?q=where+is+the+battery", "/tasks", "/adapters", "/evals"):
        assert client.get(url).status_code == 200
    assert hashlib.sha256(world["db"].read_bytes()).hexdigest() == digest
    store = client.app.state.viewer.store  # type: ignore[attr-defined]
    assert store.read_only
    with EpisodicStore(StoreConfig(url=f"sqlite:///{world['db']}", embedder="hash")) as rw:
        assert len(rw.tasks()) == 2  # asking from the viewer logs nothing


def test_sees_what_a_live_memorizer_writes(world: dict[str, Path], client: TestClient) -> None:
    cfg = StoreConfig(url=f"sqlite:///{world['db']}", embedder="hash", busy_timeout_ms=0)
    with EpisodicStore(cfg) as writer:  # another process's role: never waits for a lock
        for i in range(3):
            text = f"Visitor number {i} waved at the robot."
            writer.add_entries("robot", [MemoryDraft(text=text, start_ns=T0 + (40 + i) * S, end_ns=T0 + (41 + i) * S)])
            assert text in client.get("/timeline?stream=robot").text
            assert text in client.get("/timeline", params={"stream": "robot", "q": f"visitor number {i}"}).text


def test_token_guards_every_page(world: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="token"):
        ViewerConfig(host="0.0.0.0")
    with pytest.raises(ConfigError, match="16 characters"):
        ViewerConfig(token="short")
    ViewerConfig(host="0.0.0.0", token=TOKEN)
    for client in _client(world, token=TOKEN):
        assert client.get("/timeline?stream=robot").status_code == 401
        assert client.get("/frame/1/0.jpg").status_code == 401
        assert (
            client.get("/timeline?stream=robot", headers={"Authorization": "Bearer wrong-token-0000000"}).status_code
            == 401
        )
        assert client.get("/timeline?stream=robot", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        r = client.get(f"/timeline?stream=robot&token={TOKEN}", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/timeline?stream=robot"  # token leaves the URL
        assert "httponly" in r.headers["set-cookie"].lower()
        assert client.get("/timeline?stream=robot").status_code == 200  # now by cookie


def test_cli_refuses_unsafe_or_missing_setup(
    tmp_path: Path, world: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert viewer_main(["--db", str(tmp_path / "nope.db")]) == 2
    assert "existing database" in capsys.readouterr().err
    assert not (tmp_path / "nope.db").exists()
    assert viewer_main(["--db", str(world["db"]), "--host", "0.0.0.0"]) == 2
    assert "token" in capsys.readouterr().err


def test_frames_of_a_later_memorizer_run(world: dict[str, Path], client: TestClient) -> None:
    """A second run over the same times (a reboot, a second replay) has its own clip rows and
    archive files: each memory shows its own run's keyframes."""
    a, b = T0, T0 + 10 * S
    frame = np.full((48, 64, 3), 200, np.uint8)
    ClipArchive(world["archive"]).save(Clip("robot", 0, a, b, keyframes=[VideoFrame(a, frame)], run="run-2"))
    with EpisodicStore(StoreConfig(url=f"sqlite:///{world['db']}", embedder="hash")) as rw:
        cid = rw.add_clip("robot", 0, a, b, keyframes=1, run="run-2")
        (rec,) = rw.add_entries("robot", [MemoryDraft(text="Second run memory.", start_ns=a, end_ns=b)], clip_id=cid)
        assert rw.clips_by_id([cid])[cid].index != 0  # the store's ordinal is not the run's index
    first = cv2.imdecode(np.frombuffer(client.get("/frame/1/0.jpg").content, np.uint8), cv2.IMREAD_COLOR)
    second = cv2.imdecode(np.frombuffer(client.get(f"/frame/{cid}/0.jpg").content, np.uint8), cv2.IMREAD_COLOR)
    assert abs(float(second.mean()) - 200) < 3 and abs(float(first.mean()) - 200) > 20
    assert f'src="/frame/{cid}/0.jpg"' in client.get("/timeline?stream=robot").text and rec.clip_id == cid
