"""Qwen3-VL on this machine with transformers (the robot's onboard GPU, or CPU for tiny models).

One engine per process holds the weights; the memorization policy and the answerer share
it (``shared_engine``). Generation is serialised by the adapter slot's lock, so a
LoadAdapter swap lands between batches, never inside one; the answerer asks for the base
model (``use_adapter=False``) while the policy runs with the Phase Two adapter.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from taskmem_ros.config import ModelConfig
from taskmem_ros.llm.base import AdapterState, ChatEngine, ChatRequest, EngineError, Generation, MissingExtraError
from taskmem_ros.llm.qwen3vl_video import VideoGeometry, VideoInput, read_geometry, video_input

log = logging.getLogger(__name__)

VIDEO_TOKEN, IMAGE_TOKEN = "<|video_pad|>", "<|image_pad|>"
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"


def _import_transformers() -> Any:
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingExtraError("llm", exc.name or "transformers") from exc
    return transformers


def resolve_dtype(name: str, device_map: str) -> Any:
    import torch

    if name == "auto":
        if device_map != "cpu" and torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, name)


def quantization_config(cfg: ModelConfig, dtype: Any) -> Any:
    transformers = _import_transformers()
    import torch

    if cfg.quantization == "none":
        return None
    if cfg.quantization in ("bnb-4bit", "bnb-8bit"):
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError("quantization", "bitsandbytes") from exc
        # The vision tower and the output head stay in the compute dtype: they are a small share of
        # the weights and the most sensitive to quantization (the usual choice for VLM checkpoints).
        skip = ["model.visual", "visual", "lm_head"]
        if cfg.quantization == "bnb-8bit":
            return transformers.BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
        compute = dtype if dtype != torch.float32 else torch.bfloat16
        return transformers.BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=compute,
            bnb_4bit_use_double_quant=True,
            llm_int8_skip_modules=skip,
        )
    # fp8: needs Hopper/Ada (compute capability >= 8.9)
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9):
        raise EngineError("model.quantization='fp8' needs a GPU with compute capability >= 8.9 (Ada/Hopper)")
    return transformers.FineGrainedFP8Config()


class TransformersEngine(ChatEngine):
    def __init__(self, cfg: ModelConfig, *, model: Any = None, tokenizer: Any = None) -> None:
        """Loads ``cfg.model_id``; or wraps an already-loaded ``model`` + ``tokenizer`` (training,
        benchmarks at published sizes with random weights, which nobody wants to write to disk)."""
        transformers = _import_transformers()
        self.cfg = cfg
        self.model_id = cfg.identity
        if model is not None:
            if tokenizer is None:
                raise ValueError("wrapping a loaded model needs its tokenizer too")
            self.model, self.tokenizer, self.dtype = model.eval(), tokenizer, model.dtype
            self.geometry: VideoGeometry = VideoGeometry()
            config = model.config
        else:
            config = self._load(transformers, cfg)
        self.text_config = config.get_text_config()
        from taskmem_ros.adapters import AdapterSlot

        # The slot's lock serialises generation and adapter swaps (a swap lands between batches).
        self._slot: Any = AdapterSlot(
            self.model,
            base_model=self.model_id,
            hidden_size=int(self.text_config.hidden_size),
            num_layers=int(self.text_config.num_hidden_layers),
        )
        self._lock = self._slot.lock
        self.stats = {
            "generate_calls": 0,
            "generated_tokens": 0,
            "prompt_tokens": 0,
            "batch_fallbacks": 0,
            "prefix_cache_hits": 0,
        }
        self._prefix_caches: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        # transformers >= 5.24 renamed generate(past_key_values=...) to cache=...
        self._cache_kwarg = (
            "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        )

    def _load(self, transformers: Any, cfg: ModelConfig) -> Any:
        local_only = cfg.local_files_only or os.environ.get("HF_HUB_OFFLINE") == "1"
        kw: dict[str, Any] = {"revision": cfg.revision or None, "local_files_only": local_only}
        try:
            config = transformers.AutoConfig.from_pretrained(cfg.model_id, **kw)
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot load model config from model.model_id={cfg.model_id!r}: {exc}") from exc
        classes = {
            "qwen3_vl": transformers.Qwen3VLForConditionalGeneration,
            "qwen3_vl_moe": transformers.Qwen3VLMoeForConditionalGeneration,
        }
        cls = classes.get(config.model_type, transformers.AutoModelForImageTextToText)
        self.dtype = resolve_dtype(cfg.dtype, cfg.device_map)
        load_kw: dict[str, Any] = dict(kw, dtype=self.dtype, attn_implementation=cfg.attn_implementation)
        if cfg.device_map != "cpu":
            load_kw["device_map"] = cfg.device_map
        qconf = quantization_config(cfg, self.dtype)
        if qconf is not None:
            load_kw["quantization_config"] = qconf
        try:
            self.model = cls.from_pretrained(cfg.model_id, config=config, **load_kw).eval()
            self.tokenizer = _load_tokenizer(transformers, cfg.model_id, kw)
        except (OSError, ValueError, RuntimeError) as exc:
            raise EngineError(f"cannot load {cfg.model_id!r}: {exc}") from exc
        self.geometry = read_geometry(cfg.model_id, revision=kw["revision"], local_files_only=local_only)
        return config

    # -- adapters ----------------------------------------------------------------------------
    @property
    def slot(self) -> Any:
        """The adapter slot (steering vector or LoRA) of this model."""
        if self._slot is None:
            raise EngineError("engine is closed")
        return self._slot

    @property
    def active_meta(self) -> Any:
        """The applied ``adapters.AdapterMeta`` (None: base model)."""
        return self._slot.active if self._slot is not None else None

    @property
    def adapter(self) -> AdapterState:
        meta = self.active_meta
        if meta is None:
            return AdapterState()
        return AdapterState(adapter_id=meta.adapter_id, kind=meta.kind, path=meta.path, sha256=meta.sha256)

    def load_adapter(self, path: str, sha256: str = "") -> tuple[Any, Any]:
        """Swap adapters between batches; (previous, active) metadata. Rolls back on failure."""
        with self._lock:
            self._prefix_caches.clear()
            return self.slot.swap(path, sha256)

    @contextlib.contextmanager
    def _adapter_mode(self, use_adapter: bool) -> Iterator[None]:
        if use_adapter or self._slot is None or self._slot.active is None:
            yield
        else:
            with self._slot.suspended():
                yield

    # -- generation ----------------------------------------------------------------------------
    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        out: list[Generation | None] = [None] * len(requests)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, r in enumerate(requests):
            key = (r.max_new_tokens, r.temperature, r.use_adapter, r.enable_thinking, r.ignore_eos)
            groups.setdefault(key, []).append(i)
        with self._lock:
            for (_, _, use_adapter, _, _), idx in groups.items():
                with self._adapter_mode(use_adapter):
                    for i, g in zip(idx, self._generate_group([requests[i] for i in idx]), strict=True):
                        out[i] = g
        return [g if g is not None else Generation("", finish_reason="error", error="not run") for g in out]

    def _generate_group(self, reqs: list[ChatRequest]) -> list[Generation]:
        try:
            return self._run(reqs)
        except Exception as exc:  # e.g. CUDA OOM on a big batch: retry one by one
            if len(reqs) == 1:
                log.exception("generation failed")
                return [Generation("", finish_reason="error", error=f"{type(exc).__name__}: {exc}")]
            log.warning("batched generation of %d failed (%s); retrying one by one", len(reqs), exc)
            self.stats["batch_fallbacks"] += 1
            _empty_cache()
            return [g for r in reqs for g in self._generate_group([r])]

    def prepare(self, reqs: Sequence[ChatRequest]) -> dict[str, Any]:
        """Model inputs for a batch (left-padded), as the Qwen3-VL processor would build them."""
        import torch

        texts: list[str] = []
        videos: list[VideoInput] = []
        for r in reqs:
            messages, vids = self._strip_media(r.messages)
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True, enable_thinking=r.enable_thinking
            )
            for v in vids:
                full = VISION_START + VIDEO_TOKEN + VISION_END
                repl = v.placeholder(self.geometry, VIDEO_TOKEN, VISION_START, VISION_END)
                text = text.replace(full, repl, 1) if full in text else text.replace(VIDEO_TOKEN, repl, 1)
            texts.append(text)
            videos.extend(vids)
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, padding_side="left")
        ids = enc["input_ids"]
        video_id = self.tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
        image_id = self.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        mm = torch.zeros_like(ids, dtype=torch.int32)
        mm[ids == image_id] = 1
        mm[ids == video_id] = 2
        inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": enc["attention_mask"], "mm_token_type_ids": mm}
        if videos:
            inputs["pixel_values_videos"] = torch.cat([v.pixel_values for v in videos]).to(self.dtype)
            inputs["video_grid_thw"] = torch.tensor([v.grid_thw for v in videos], dtype=torch.long)
        device = getattr(self.model, "device", None)
        return {k: (v.to(device) if device is not None else v) for k, v in inputs.items()}

    def _strip_media(self, messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[VideoInput]]:
        """Video parts become ``{"type": "video"}`` for the chat template plus tensors."""
        out, vids = [], []
        for m in messages:
            content = m.get("content")
            if isinstance(content, str):
                out.append(m)
                continue
            parts = []
            for p in content or []:
                if p.get("type") == "video":
                    vids.append(
                        video_input(
                            p["frames"],
                            p["timestamps_s"],
                            self.geometry,
                            min_pixels=self.cfg.min_pixels,
                            max_pixels=self.cfg.max_pixels,
                        )
                    )
                    parts.append({"type": "video"})
                else:
                    parts.append(p)
            out.append({"role": m["role"], "content": parts})
        return out, vids

    def _run(self, reqs: list[ChatRequest]) -> list[Generation]:
        import torch

        inputs = self.prepare(reqs)
        r0 = reqs[0]
        gen_kw: dict[str, Any] = {"max_new_tokens": r0.max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if r0.ignore_eos:
            gen_kw["min_new_tokens"] = r0.max_new_tokens
        if r0.temperature > 0:
            gen_kw.update(do_sample=True, temperature=r0.temperature, top_p=0.95)
        else:
            gen_kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            cached = self._cached_prefix(r0, inputs) if len(reqs) == 1 and self.cfg.prefix_cache else None
            if cached is not None:
                gen_kw[self._cache_kwarg] = cached
            seqs = self.model.generate(**inputs, **gen_kw)
        prompt_len = inputs["input_ids"].shape[1]
        eos = {self.tokenizer.convert_tokens_to_ids("<|im_end|>"), self.tokenizer.eos_token_id}
        pad = self.tokenizer.pad_token_id
        gens = []
        for row, mask in zip(seqs[:, prompt_len:].tolist(), inputs["attention_mask"], strict=True):
            n = len(row) if r0.ignore_eos else next((i for i, t in enumerate(row) if t in eos or t == pad), len(row))
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            finish = "stop" if n < len(row) else "length"
            gens.append(Generation(text, int(mask.sum()), n, finish))
            self.stats["generated_tokens"] += n
            self.stats["prompt_tokens"] += int(mask.sum())
        self.stats["generate_calls"] += 1
        return gens

    def _cached_prefix(self, req: ChatRequest, inputs: dict[str, Any]) -> Any:
        """A copy of the KV cache of the system prompt, which every memorization request repeats.
        Single requests only (left padding shifts the prefix inside a batch); keyed by the
        adapter state, because steering vectors and LoRAs change the cached keys and values."""
        import copy

        import torch
        from transformers import DynamicCache

        first = req.messages[0] if req.messages else {}
        if first.get("role") != "system" or not isinstance(first.get("content"), str):
            return None
        applied = self.adapter.adapter_id if req.use_adapter else ""
        key = (first["content"], applied, req.enable_thinking)
        entry = self._prefix_caches.get(key)
        if entry is None:
            text = self.tokenizer.apply_chat_template([first], tokenize=False)
            ids = self.tokenizer(text, return_tensors="pt")["input_ids"].to(inputs["input_ids"].device)
            cache = DynamicCache(config=self.model.config)
            self.model(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                mm_token_type_ids=torch.zeros_like(ids, dtype=torch.int32),
                use_cache=True,
                **{self._cache_kwarg: cache},
            )
            entry = (ids, cache)
            if len(self._prefix_caches) >= 4:
                self._prefix_caches.pop(next(iter(self._prefix_caches)))
            self._prefix_caches[key] = entry
        ids, cache = entry
        n = ids.shape[1]
        if inputs["input_ids"].shape[1] <= n or not torch.equal(inputs["input_ids"][0, :n], ids[0]):
            return None
        self.stats["prefix_cache_hits"] += 1
        return copy.deepcopy(cache)

    def close(self) -> None:
        with self._lock:
            self._prefix_caches.clear()
            if self._slot is not None:
                with contextlib.suppress(Exception):
                    self._slot.swap("")
            self.model = None
            self._slot = None
        _empty_cache()


def _load_tokenizer(transformers: Any, model_id: str, kw: dict[str, Any]) -> Any:
    """The processor's tokenizer when the processor loads (torchvision present), else the
    tokenizer alone: video preprocessing is ours either way (see qwen3vl_video)."""
    try:
        processor = transformers.AutoProcessor.from_pretrained(model_id, **kw)
        tok = getattr(processor, "tokenizer", processor)
    except (ImportError, OSError, ValueError, TypeError):
        tok = transformers.AutoTokenizer.from_pretrained(model_id, **kw)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = "<|endoftext|>"
    return tok


def _empty_cache() -> None:
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


_SHARED: dict[tuple[Any, ...], tuple[TransformersEngine, int]] = {}
_SHARED_LOCK = threading.Lock()


def shared_engine(cfg: ModelConfig) -> TransformersEngine:
    """One copy of the weights per process and config (memorizer + task server in bringup)."""
    key = tuple(sorted(vars(cfg).items()))
    with _SHARED_LOCK:
        engine, refs = _SHARED.get(key, (None, 0))  # type: ignore[arg-type]
        if engine is None:
            engine = TransformersEngine(cfg)
        _SHARED[key] = (engine, refs + 1)
        return engine


def release_engine(engine: TransformersEngine) -> None:
    with _SHARED_LOCK:
        for key, (e, refs) in list(_SHARED.items()):
            if e is engine:
                if refs <= 1:
                    del _SHARED[key]
                    e.close()
                else:
                    _SHARED[key] = (e, refs - 1)
                return
    engine.close()
