from pathlib import Path

import pytest

from taskmem_ros.config import (
    CONFIG_KEYS,
    ConfigError,
    SegmenterConfig,
    StoreConfig,
    TaskMemConfig,
    from_flat,
    load_config,
    read_params_file,
    split_params,
    to_flat,
)

PKG = Path(__file__).resolve().parents[2]


def test_flat_round_trip() -> None:
    cfg = TaskMemConfig(stream="r2")
    cfg.segmenter.clip_seconds = 5.0
    assert from_flat(TaskMemConfig, to_flat(cfg)) == cfg


@pytest.mark.parametrize(
    ("flat", "needle"),
    [
        ({"segmenter.clip_seconds": 0}, "segmenter.clip_seconds=0.0"),
        ({"segmenter.overlap_seconds": 20.0}, "in [0, clip_seconds=10.0)"),
        ({"store.url": "taskmem.db"}, "SQLAlchemy URL"),
        ({"store.embedder": "bert"}, "'minilm'"),
        ({"policy.backend": "gpt"}, "'perception'"),
        ({"ingest.drop_policy": "panic"}, "'drop_oldest'"),
        ({"segmenter.audio_rate": 44100}, "8000"),
        ({"segmenter.clip_seconds": "ten"}, "must be a number"),
        ({"policy.ocr": "yes"}, "true or false"),
        ({"segmenter.clip_secs": 3}, "unknown setting"),
    ],
)
def test_errors_quote_bad_value_and_valid_range(flat: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_flat(TaskMemConfig, flat)
    assert needle in str(err.value)


def test_direct_construction_validates() -> None:
    with pytest.raises(ConfigError, match="keyframe_fps"):
        SegmenterConfig(keyframe_fps=-1)
    with pytest.raises(ConfigError, match="weights"):
        StoreConfig(fts_weight=0, vector_weight=0)


def test_robot_yaml_maps_onto_config() -> None:
    path = PKG / "config" / "robot.yaml"
    cfg = load_config(path, "memorizer")
    assert cfg.segmenter.clip_seconds == 10.0  # the paper's clip length
    assert cfg.store.url.startswith("sqlite:///")
    _, extras = split_params(read_params_file(path, "memorizer"))
    assert extras["image_topic"] == "camera/image_raw"
    assert set(read_params_file(path, "task_server")) - set(CONFIG_KEYS) == {"default_max_results"}


def test_params_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("memorizer: [unclosed")
    with pytest.raises(ConfigError, match="cannot read params file"):
        read_params_file(bad, "memorizer")
    with pytest.raises(ConfigError, match="cannot read params file"):
        read_params_file(tmp_path / "missing.yaml", "memorizer")
