"""The viewer in a real browser (headless Debian chromium via Selenium) on memory written by
the real memory loop: a short real recording replayed in-process through the perception
policy, with its clips kept in the archive. Drives the timeline, a search, an ask and the
adapter pages, checks the DOM and a screenshot, and that hostile memory text stays inert."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the 'viewer' extra is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (extra 'dev')")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from viewer_data import ADAPTER, HOSTILE_STREAM, add_hostile, add_phase2_round  # noqa: E402

from taskmem_ros.answer import make_answerer  # noqa: E402
from taskmem_ros.cli.replay import main as replay_main  # noqa: E402
from taskmem_ros.config import StoreConfig, TaskMemConfig  # noqa: E402
from taskmem_ros.store import EpisodicStore  # noqa: E402

pytestmark = pytest.mark.slow
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
QUESTION = "Where is the spare battery?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[str], deadline_s: float = 300.0) -> None:
    """Until the server answers (or exits): waits on the condition, with a deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"viewer exited early: {proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(f"viewer did not answer on {url} within {deadline_s} s")


@pytest.fixture(scope="module")
def robot_memory(small_bag: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Memory from the real loop, then what a robot's life adds: a task answered by AnswerTask's
    answerer and logged, a Phase Two adapter round, and hostile text and clip paths."""
    bag, _summary = small_bag
    out = tmp_path_factory.mktemp("viewer_world")
    db, clips = out / "memory.db", out / "clips"
    params = out / "params.yaml"
    # SMALL_SPEECH's sentences were picked for pocketsphinx, which keeps them exact (Whisper tiny.en
    # hears espeak-ng's "the spare battery" as "the Ceramagerie"); the viewer needs the fact, not the ASR
    ingest = {"keep_clips_dir": str(clips), "max_pending_clips": 100}
    params.write_text(json.dumps({"ingest": ingest, "segmenter": {"asr": "pocketsphinx"}}))
    assert replay_main([str(bag), "--in-process", "--db", str(db), "--params", str(params), "--no-progress"]) == 0
    cfg = TaskMemConfig(store=StoreConfig(url=f"sqlite:///{db}"))
    with EpisodicStore(cfg.store) as store:
        timeline = store.timeline("robot")
        assert any("cabinet" in r.text.lower() for r in timeline)
        last = max(r.end_ns for r in timeline)
        answer = make_answerer(cfg, store).answer(QUESTION, as_of_ns=last, stream="robot")
        assert not answer.abstained and "cabinet" in answer.text.lower()
        store.log_task(QUESTION, asked_at_ns=last, answer=answer, stream="robot")
        add_phase2_round(store, "robot", last)
        hostile_clip = add_hostile(store, clips, out / "outside.txt")
    return {"db": db, "clips": clips, "answer": answer, "hostile_clip": hostile_clip, "out": out}


@pytest.fixture(scope="module")
def viewer_url(robot_memory: dict[str, Any]) -> Iterator[str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "taskmem_ros.viewer.cli", "--db", str(robot_memory["db"])]
    cmd += ["--clips", str(robot_memory["clips"]), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url + "/tasks", proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("Debian chromium + chromium-driver are not installed (scripts/setup_env.sh installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=opts)
    driver.set_page_load_timeout(300)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, css: str) -> Any:
    return WebDriverWait(driver, 300).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def _images_loaded(driver: Any, css: str) -> list[int]:
    """naturalWidth of each matching image once the page has finished loading (0 = broken)."""
    WebDriverWait(driver, 300).until(lambda d: d.execute_script("return document.readyState") == "complete")
    for img in driver.find_elements(By.CSS_SELECTOR, css):
        driver.execute_script("arguments[0].scrollIntoView()", img)  # lazy images load when visible
        WebDriverWait(driver, 300).until(lambda d, i=img: d.execute_script("return arguments[0].complete", i))
    return [
        int(driver.execute_script("return arguments[0].naturalWidth", i))
        for i in driver.find_elements(By.CSS_SELECTOR, css)
    ]


def _screenshot(driver: Any, name: str) -> np.ndarray:
    """The page as rendered; kept under $TASKMEM_VIEWER_SHOTS when set (the README's picture)."""
    png = driver.get_screenshot_as_png()
    shots = os.environ.get("TASKMEM_VIEWER_SHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        (Path(shots) / f"{name}.png").write_bytes(png)
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[0] >= 500 and img.shape[1] >= 1000
    return img


def test_timeline_search_ask_and_adapters_in_a_browser(
    browser: Any, viewer_url: str, robot_memory: dict[str, Any]
) -> None:
    d = browser
    d.get(viewer_url + "/")
    _wait(d, "table.memories tr.entry")
    assert d.current_url.endswith("/timeline?stream=robot")
    texts = [e.text.lower() for e in d.find_elements(By.CSS_SELECTOR, "tr.entry td.text")]
    assert any("cabinet" in t for t in texts) and any("drawer" in t for t in texts) and any("dock" in t for t in texts)
    widths = _images_loaded(d, "img.thumb")
    assert widths and all(w > 0 for w in widths)  # keyframes from the clip archive, decoded by the browser
    shot = _screenshot(d, "timeline")
    # the thumbnails are real video pixels: the screenshot is no flat page of text
    thumb = d.find_element(By.CSS_SELECTOR, "img.thumb")
    x, y = int(thumb.location["x"]), int(thumb.location["y"] - d.execute_script("return window.scrollY"))
    region = shot[max(0, y) : y + 40, x : x + 80]
    assert region.size and float(region.std()) > 10.0

    # a search through the filter form
    box = d.find_element(By.ID, "q")
    box.clear()
    box.send_keys("battery")
    old_summary = d.find_element(By.ID, "summary")
    d.find_element(By.ID, "filter").click()
    WebDriverWait(d, 300).until(ec.staleness_of(old_summary))  # the filtered page replaced the old one
    WebDriverWait(d, 300, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda dr: "matches" in dr.find_element(By.ID, "summary").text
    )
    found = [e.text.lower() for e in d.find_elements(By.CSS_SELECTOR, "tr.entry td.text")]
    assert found and all("battery" in t for t in found)

    # an ask: same answerer as AnswerTask, evidence highlighted on the timeline below it
    d.find_element(By.ID, "nav-ask").click()
    _wait(d, "#question").send_keys(QUESTION)
    d.find_element(By.ID, "ask").click()
    answer = _wait(d, "#answer-text")
    assert answer.text == robot_memory["answer"].text and "cabinet" in answer.text.lower()
    marked = d.find_elements(By.CSS_SELECTOR, "tr.entry.evidence")
    assert {int(e.get_attribute("data-entry")) for e in marked} == set(robot_memory["answer"].evidence_ids)
    assert any("cabinet" in e.text.lower() for e in marked)
    bg = d.execute_script("return getComputedStyle(arguments[0].querySelector('td')).backgroundColor", marked[0])
    assert bg not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)")  # visibly highlighted
    _screenshot(d, "ask")

    # the adapter pages: registry with checksum, then the Phase Two round's before/after
    d.find_element(By.ID, "nav-adapters").click()
    _wait(d, "#adapters")
    assert "ab" * 32 in d.find_element(By.ID, "adapters").text
    d.find_element(By.LINK_TEXT, ADAPTER).click()
    table = _wait(d, "#before-after")
    assert "accuracy 0.5 1.0" in table.text
    assert "red mug" in d.find_element(By.ID, "after").text.lower()
    assert "cabinet" in d.find_element(By.ID, "before").text.lower()
    _screenshot(d, "adapter")


def test_hostile_memory_is_inert_in_a_browser(browser: Any, viewer_url: str, robot_memory: dict[str, Any]) -> None:
    d = browser
    d.get(viewer_url + "/timeline?" + urllib.parse.urlencode({"stream": HOSTILE_STREAM}))
    cell = _wait(d, "tr.entry td.text")
    assert "<script>window.__pwned = 1</script>" in cell.text  # shown as text
    assert d.execute_script("return typeof window.__pwned") == "undefined"  # never ran
    assert not d.find_elements(By.CSS_SELECTOR, "td.text script, td.text img")
    assert not d.find_elements(By.CSS_SELECTOR, "img.thumb")  # its clip file leads outside the archive
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{viewer_url}/frame/{robot_memory['hostile_clip']}/0.jpg", timeout=10)
    assert err.value.code == 404
    d.get(viewer_url + "/adapters")
    _wait(d, "#adapters")
    assert "../../etc/passwd<script>" in d.find_element(By.ID, "adapters").text
    assert d.execute_script("return typeof window.__pwned") == "undefined"
