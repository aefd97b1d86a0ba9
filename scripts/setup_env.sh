#!/usr/bin/env bash
# Make this checkout runnable and testable: `make setup` calls this script.
#
#   1. apt packages (as root, only when one is missing): compiler + CMake for the ROS
#      interface build, Python 3.11 with venv and headers, EGL/Mesa for headless rendering;
#   2. .venv with Python 3.11 (the PyPI ROS 2 Kilted wheels are cp311);
#   3. pip and setuptools at the versions pinned in requirements.txt, then
#      `pip install -r requirements.txt` (the one place where versions are pinned);
#   4. `pip install -e .` (hrpose_ros itself, editable, console scripts in .venv/bin), and
#      setup.py's data_files linked into .venv/share (scripts/link_data_files.py);
#   5. tf2_msgs and vision_msgs built from .msg files (scripts/build_ros_interfaces.sh);
#   6. a .pth hook that puts .venv on AMENT_PREFIX_PATH, so nothing has to be sourced;
#   7. a check that everything imports in a clean environment.
#
# Idempotent: every step first checks whether its work is already done, so a second run
# takes seconds and changes nothing. Works as root on a fresh Debian 12 machine that can
# reach only the package registries (non-interactive: CI=true, no stdin).
#
# Usage: scripts/setup_env.sh [--check]
#   --check   change nothing; list what a run would do; exit 1 if anything, else 0.
# Environment: HRPOSE_VENV (default <repo>/.venv), PYTHON (default: python3, else python3.11).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HRPOSE_VENV:-$ROOT/.venv}"
[[ "$VENV" == /* ]] || VENV="$PWD/$VENV"
VPY="$VENV/bin/python"
REQUIREMENTS="$ROOT/requirements.txt"
CHECK=0
PENDING=()
export DEBIAN_FRONTEND=noninteractive PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
# todo MESSAGE: in --check mode record MESSAGE and return 0 (the caller skips the work);
# otherwise log it and return 1 (the caller does the work).
todo() {
  if ((CHECK)); then PENDING+=("$*"); return 0; fi
  log "$*"
  return 1
}

pinned_version() {  # pinned_version NAME -> the version pinned in requirements.txt
  local version
  version="$(sed -n "s/^$1==\([^[:space:]#]*\).*/\1/p" "$REQUIREMENTS")"
  [[ -n "$version" ]] || die "requirements.txt pins no version of $1"
  echo "$version"
}

# --- 1. system packages -------------------------------------------------------------------
APT_ALWAYS=(ca-certificates build-essential cmake libegl1 libegl-mesa0 libgl1-mesa-dri libgles2)

apt_missing() {  # print the packages among "$@" that dpkg does not list as installed
  local pkg
  for pkg in "$@"; do
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" == installed ]] || echo "$pkg"
  done
}

python_ok() {  # python_ok PYTHON -> true when it is CPython 3.11 with venv, ensurepip and headers
  "$1" - <<'EOF' 2>/dev/null
import ensurepip, os, sys, sysconfig, venv  # noqa: F401  (ensurepip: Debian ships it separately)
sys.exit(0 if sys.version_info[:2] == (3, 11)
         and os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)
EOF
}

find_python() {  # print the first interpreter that satisfies python_ok
  local candidate
  for candidate in ${PYTHON:-} python3 python3.11 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

install_system_packages() {
  local wanted=("${APT_ALWAYS[@]}") missing sudo=() python
  python="$(find_python || true)"
  # Debian's own Python needs python3-venv (ensurepip's wheels) and python3-dev (headers).
  if [[ -z "$python" || "$(realpath "$python")" == /usr/bin/* ]]; then
    wanted+=(python3 python3-venv python3-dev)
  fi
  mapfile -t missing < <(apt_missing "${wanted[@]}")
  if ((${#missing[@]} == 0)); then
    log "system packages: all present"
    return
  fi
  todo "system packages: apt-get install ${missing[*]}" && return
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || die "need root to install: ${missing[*]} (run as root, or install them)"
    sudo=(sudo -n)
  fi
  "${sudo[@]}" apt-get update -q </dev/null
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

# --- 2. the virtual environment -------------------------------------------------------------
create_venv() {
  if [[ -x "$VPY" ]]; then
    "$VPY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
      || die "$VENV exists but is not Python 3.11; remove it and run again"
    log "venv: $VENV exists"
    return
  fi
  local python
  python="$(find_python)" || { ((CHECK)) && python=python3; } \
    || die "no Python 3.11 with venv and headers (Debian 12: apt-get install python3-venv python3-dev)"
  todo "venv: create $VENV with $python" && return
  "$python" -m venv "$VENV"
}

# --- 3. Python packages ---------------------------------------------------------------------
install_requirements() {
  local pip_version setuptools_version
  pip_version="$(pinned_version pip)"
  setuptools_version="$(pinned_version setuptools)"
  if [[ "$("$VPY" -m pip --version | cut -d' ' -f2)" != "$pip_version" ]] \
    && ! todo "pip: install pip==$pip_version setuptools==$setuptools_version"; then
    "$VPY" -m pip install -q "pip==$pip_version" "setuptools==$setuptools_version" </dev/null
  fi
  if "$VPY" "$ROOT/scripts/requirements_satisfied.py" "$REQUIREMENTS" >/dev/null; then
    log "requirements: all pins satisfied"
    return
  fi
  todo "requirements: pip install -r requirements.txt (the first time: several GB, minutes)" && return
  "$VPY" -m pip install -r "$REQUIREMENTS" </dev/null
  "$VPY" "$ROOT/scripts/requirements_satisfied.py" "$REQUIREMENTS" \
    || die "pip finished but these pins are still not satisfied (see above)"
}

# --- 4. hrpose_ros itself, editable ------------------------------------------------------------
install_package() {
  local stamp="$VENV/.hrpose_ros_editable.sha256" want location
  want="$(cd "$ROOT" && cat setup.py setup.cfg | sha256sum | cut -d' ' -f1)"
  location="$(cd / && "$VPY" -c 'import hrpose_ros, os; print(os.path.dirname(os.path.realpath(hrpose_ros.__file__)))' 2>/dev/null || true)"
  if [[ "$location" == "$ROOT/hrpose_ros" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "hrpose_ros: editable install is current"
  elif ! todo "hrpose_ros: pip install -e ."; then
    (cd "$ROOT" && "$VPY" -m pip install -q --no-deps --no-build-isolation -e . </dev/null)
    echo "$want" >"$stamp"
  fi
  # An editable install leaves out setup.py's data_files (ament index marker, share/...).
  if ((CHECK)); then
    "$VPY" "$ROOT/scripts/link_data_files.py" --root "$ROOT" --prefix "$VENV" --check \
      || todo "data files: link setup.py's data_files into $VENV/share"
  else
    "$VPY" "$ROOT/scripts/link_data_files.py" --root "$ROOT" --prefix "$VENV"
  fi
}

# --- 5. ROS interfaces ---------------------------------------------------------------------
build_interfaces() {
  if ((CHECK)); then
    "$ROOT/scripts/build_ros_interfaces.sh" --check "$VENV" \
      || todo "ROS interfaces: build tf2_msgs / vision_msgs into $VENV"
  else
    "$ROOT/scripts/build_ros_interfaces.sh" "$VENV"
  fi
}

# --- 6. AMENT_PREFIX_PATH hook ---------------------------------------------------------------
install_ament_hook() {
  local site
  site="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  if cmp -s "$ROOT/scripts/hrpose_ros_ament_prefix.pth" "$site/hrpose_ros_ament_prefix.pth"; then
    log "AMENT_PREFIX_PATH hook: present"
    return
  fi
  todo "AMENT_PREFIX_PATH hook: install $site/hrpose_ros_ament_prefix.pth" && return
  install -m 0644 "$ROOT/scripts/hrpose_ros_ament_prefix.pth" "$site/hrpose_ros_ament_prefix.pth"
}

# --- 7. everything imports, with nothing sourced ---------------------------------------------
verify() {
  (cd / && env -u AMENT_PREFIX_PATH -u LD_LIBRARY_PATH -u _ROS_WHEELS_BOOTSTRAP_COMPLETE "$VPY" - <<'EOF')
import os, sys
import cv2, numpy, onnxruntime, rclpy, torch, torchvision, timm  # noqa: F401
from geometry_msgs.msg import PoseStamped  # noqa: F401
from tf2_msgs.msg import TFMessage  # noqa: F401
from vision_msgs.msg import Detection3DArray  # noqa: F401
from ament_index_python.packages import get_package_share_directory
import hrpose_ros  # noqa: F401
assert os.path.isfile(os.path.join(get_package_share_directory("hrpose_ros"), "package.xml"))
print(f"[setup] ready: Python {sys.version.split()[0]}, torch {torch.__version__}, "
      f"OpenCV {cv2.__version__}, ROS 2 wheels from {sys.prefix}", file=sys.stderr)
EOF
}

main() {
  case "${1:-}" in
    --check) CHECK=1 ;;
    "") ;;
    *) die "usage: $0 [--check]" ;;
  esac
  install_system_packages
  create_venv
  if [[ -x "$VPY" ]]; then
    install_requirements
    install_package
    build_interfaces
    install_ament_hook
  fi
  if ((CHECK)); then
    if ((${#PENDING[@]})); then
      log "--check: a run would do ${#PENDING[@]} thing(s):"
      printf '[setup]   - %s\n' "${PENDING[@]}" >&2
      exit 1
    fi
    log "--check: nothing to do"
  fi
  verify
}

main "$@"
