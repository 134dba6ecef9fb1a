"""Descriptors come from the typed config: descriptions from field comments, ranges and choices
from ``__post_init__``; what they allow the dataclass accepts, and the bound itself is enforced."""

from __future__ import annotations

import dataclasses

import pytest

from taskmem_ros.config import ConfigError, TaskMemConfig, TrainingConfig, from_flat, to_flat
from taskmem_ros.node_config import MemorizerParams, TaskServerParams, TunerParams
from taskmem_ros.param_schema import is_live, specs

SECTIONS = [TaskMemConfig, TrainingConfig, MemorizerParams, TaskServerParams, TunerParams]


def _by_name(cls: type) -> dict[str, object]:
    return {s.name: s for s in specs(cls())}


def test_every_field_has_a_spec_with_a_description() -> None:
    for cls in SECTIONS:
        got = _by_name(cls)
        assert set(got) == set(to_flat(cls())), cls
        assert all(s.description for s in got.values())  # type: ignore[attr-defined]


def test_comments_and_checks_become_descriptions_ranges_and_choices() -> None:
    s = _by_name(TaskMemConfig)
    thr = s["answer.abstain_threshold"]
    assert (thr.min, thr.max, thr.read_only) == (-1.0, 1.0, False)  # type: ignore[attr-defined]
    assert "abstains" in thr.description  # type: ignore[attr-defined]
    batch = s["policy.batch_size"]
    assert (batch.min, batch.max, batch.read_only) == (1, 256, True)  # type: ignore[attr-defined]
    assert s["store.embedding_dim"].min == 1  # type: ignore[attr-defined]  # "> 0" on an int
    assert s["segmenter.max_pixels"].min == 64 * 64  # type: ignore[attr-defined]
    assert s["store.vector_search"].choices == ("hnsw", "memory", "vec0")  # type: ignore[attr-defined]
    assert s["policy.backend"].choices[0] == "perception"  # type: ignore[attr-defined]
    assert "section" not in s["policy.ocr"].description  # type: ignore[attr-defined]
    assert not s["policy.ocr"].description.startswith("--")  # type: ignore[attr-defined]
    mem = _by_name(MemorizerParams)
    assert mem["sensor_qos"].choices == ("sensor_data", "reliable", "replay")  # type: ignore[attr-defined]
    assert "best effort" in mem["sensor_qos"].description  # type: ignore[attr-defined]  # comment block above


@pytest.mark.parametrize("cls", SECTIONS, ids=lambda c: c.__name__)
def test_ranges_are_no_looser_than_the_dataclass_at_their_bounds(cls: type) -> None:
    """Just outside a bound the dataclass refuses too: the descriptor never misleads a user."""
    checked = 0
    for s in specs(cls()):
        for bound, step in ((s.min, -1), (s.max, 1)):
            if bound is None:
                continue
            outside = bound + step if s.type is int else bound + step * max(1e-6, abs(bound) * 1e-6)
            with pytest.raises(ConfigError, match=s.name.split(".")[-1]):
                from_flat(cls, {s.name: s.type(outside)})
            checked += 1
        assert s.default is None or s.min is None or s.default >= s.min
        assert s.default is None or s.max is None or s.default <= s.max
    assert checked > 0


def test_only_live_safe_settings_are_writable() -> None:
    writable = {s.name for cls in SECTIONS for s in specs(cls()) if not s.read_only}
    assert "answer.abstain_threshold" in writable and "diagnostics.latency_warn_s" in writable
    assert not writable & {"store.url", "policy.backend", "model.model_id", "image_topic"}
    assert all(is_live(n) for n in writable)


def test_camera_topic_follows_image_transport_naming() -> None:
    assert MemorizerParams().camera_topic == "camera/image_raw"
    assert MemorizerParams(image_transport="compressed").camera_topic == "camera/image_raw/compressed"
    assert MemorizerParams(image_topic="").camera_topic == ""
    with pytest.raises(ConfigError, match="audio_format='wav'"):
        MemorizerParams(audio_format="wav")
    with pytest.raises(ConfigError, match="train_command"):
        dataclasses.replace(TunerParams(), train_command=[])
