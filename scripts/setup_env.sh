#!/usr/bin/env bash
# One-shot, idempotent set-up on a fresh Debian machine: system packages, venv, torch (CPU),
# ROS 2 Kilted wheels, taskmem_ros with its extras, the wheel path fix-ups, and colcon build.
# Re-running only redoes the steps whose inputs changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# 1. Debian packages: espeak-ng (demo speech), sox, opencv-doc (real sample video), sqlite3 CLI.
need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v sox >/dev/null || need_apt+=(sox)
[ -e /usr/share/doc/opencv-doc/examples/data/vtest.avi ] || need_apt+=(opencv-doc)
command -v cmake >/dev/null || need_apt+=(cmake)
command -v g++ >/dev/null || need_apt+=(g++)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  say "apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# 2. venv + Python packages (stamp = hash of everything that defines the dependency set).
[ -x "$VENV/bin/python" ] || { say "creating venv $VENV"; "$PYTHON" -m venv "$VENV"; }
# shellcheck disable=SC1091
. "$VENV/bin/activate"
deps_hash=$(cat scripts/setup_env.sh scripts/ros_wheels.txt taskmem_ros/setup.py | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.taskmem-deps" 2>/dev/null)" != "$deps_hash" ]; then
  say "installing torch==2.13.0 (CPU wheel), ROS 2 Kilted wheels and taskmem_ros[all,dev]"
  python -m pip install -q --upgrade pip
  python -m pip install -q torch==2.13.0  # any other spec downloads GBs of CUDA wheels
  python -m pip install -q -r scripts/ros_wheels.txt
  python -m pip install -q -e "./taskmem_ros[all,dev]"
  # rapidocr pulls plain opencv-python, whose cv2 shadows contrib's (face cascades): reinstall contrib last.
  python -c "import cv2; cv2.CascadeClassifier" 2>/dev/null || python -m pip install -q --force-reinstall --no-deps \
    "opencv-contrib-python-headless==$(python -c 'import importlib.metadata as m; print(m.version("opencv-contrib-python-headless"))')"
  echo "$deps_hash" > "$VENV/.taskmem-deps"
fi

# 3. Known wheel quirk: CMake targets of some ROS wheels point at manylinux build paths.
py_inc=$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_inc=$(python -c 'import numpy; print(numpy.get_include())')
fix_link() {  # fix_link TARGET LINK
  if [ "$(readlink -f "$2" 2>/dev/null)" != "$(readlink -f "$1")" ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO mkdir -p "$(dirname "$2")" && $SUDO ln -sfn "$1" "$2"
  fi
}
fix_link "$py_inc" /opt/python/cp311-cp311/include/python3.11
fix_link "$np_inc" /opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include

# 4. colcon build (both packages) when interfaces/package files changed.
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
build_hash=$( (cat taskmem_interfaces/CMakeLists.txt taskmem_interfaces/package.xml taskmem_interfaces/*/* \
  taskmem_ros/package.xml taskmem_ros/setup.py taskmem_ros/setup.cfg; \
  find taskmem_ros/launch taskmem_ros/config -type f | sort | xargs cat) | sha256sum | cut -c1-16)
if [ "$(cat install/.taskmem-build 2>/dev/null)" != "$build_hash" ]; then
  say "colcon build"
  colcon build --symlink-install >"$ROOT/build-colcon.log" 2>&1 \
    || { cat "$ROOT/build-colcon.log" | tail -40; echo "colcon build failed" >&2; exit 1; }
  echo "$build_hash" > install/.taskmem-build
fi
say "ready: source scripts/env.sh"
