#!/usr/bin/env bash
# Build the ROS 2 interface packages that PyPI does not carry (tf2_msgs, vision_msgs)
# from the .msg files in third_party/ros_interfaces/, and install them into the
# virtual environment's prefix, next to the PyPI ROS wheels:
#   <venv>/lib/lib<pkg>__*.so          found through LD_LIBRARY_PATH, which the wheels'
#                                      ros_wheels_bootstrapper.pth sets to <venv>/lib
#   <venv>/lib/python3.11/site-packages/<pkg>/   importable with no sourcing
#   <venv>/share/<pkg>, <venv>/share/ament_index/ found through AMENT_PREFIX_PATH
#                                      (scripts/setup_env.sh installs a hook that adds <venv>)
# The wheels' exported CMake targets name include paths of the machine that built
# them; third_party/ros_interfaces/cmake/pypi_wheel_fixups.cmake corrects them at
# configure time, so no installed file is edited.
#
# Idempotent: a package is rebuilt only when its sources, the fix-up, the pinned ROS
# wheels or this script changed (a hash is kept in <venv>/share/<pkg>/hrpose_ros_build.sha256),
# or when it does not import.
#
# Usage: scripts/build_ros_interfaces.sh [--check] [VENV]   (default VENV: .venv of this repository)
#   --check   build nothing; exit 1 if a package would be (re)built, else 0.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHECK=0
if [[ "${1:-}" == --check ]]; then
  CHECK=1
  shift
fi
VENV="$(cd "${1:-$ROOT/.venv}" && pwd)"
PY="$VENV/bin/python"
SRC="$ROOT/third_party/ros_interfaces"
# Order matters only if one package depended on another; these two are independent.
PACKAGES=(tf2_msgs vision_msgs)
# A Python statement per package that proves the installed package works.
declare -A PROBE=(
  [tf2_msgs]="from tf2_msgs.msg import TFMessage, TF2Error"
  [vision_msgs]="from vision_msgs.msg import Detection3DArray, Detection2DArray"
)

log() { printf '[ros-interfaces] %s\n' "$*" >&2; }

source_hash() {
  local pkg="$1"
  {
    (cd "$SRC" && find "$pkg" cmake -type f -print0 | sort -z | xargs -0 sha256sum)
    grep -E '^(ros-|catkin-pkg)' "$ROOT/requirements.txt"
    sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1
    "$PY" -c 'import sys; print(sys.version)'
  } | sha256sum | cut -d' ' -f1
}

build_one() {
  local pkg="$1" build_dir
  build_dir="$(mktemp -d "${TMPDIR:-/tmp}/hrpose_ros_${pkg}_build.XXXXXX")"
  # shellcheck disable=SC2064  # expand now: the trap must remove this directory
  trap "rm -rf '$build_dir'; trap - RETURN" RETURN
  log "building $pkg into $VENV (about a minute)"
  PATH="$VENV/bin:$PATH" cmake -S "$SRC/$pkg" -B "$build_dir" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_TESTING=OFF \
    -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DCMAKE_PREFIX_PATH="$VENV" \
    -DPython3_EXECUTABLE="$PY" \
    -DPython3_FIND_STRATEGY=LOCATION \
    >"$build_dir/configure.log" 2>&1 || { cat "$build_dir/configure.log" >&2; return 1; }
  PATH="$VENV/bin:$PATH" cmake --build "$build_dir" --parallel "$(nproc)" \
    >"$build_dir/build.log" 2>&1 || { tail -n 60 "$build_dir/build.log" >&2; return 1; }
  cmake --install "$build_dir" >"$build_dir/install.log" 2>&1 \
    || { cat "$build_dir/install.log" >&2; return 1; }
}

outdated=0
for pkg in "${PACKAGES[@]}"; do
  stamp="$VENV/share/$pkg/hrpose_ros_build.sha256"
  want="$(source_hash "$pkg")"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && (cd / && "$PY" -c "${PROBE[$pkg]}") 2>/dev/null; then
    log "$pkg is up to date"
    continue
  fi
  if ((CHECK)); then
    log "$pkg would be built"
    outdated=1
    continue
  fi
  build_one "$pkg"
  (cd / && "$PY" -c "${PROBE[$pkg]}") || { log "$pkg was built but does not import"; exit 1; }
  echo "$want" >"$stamp"
  log "$pkg installed"
done
exit "$outdated"
