#!/usr/bin/env bash
# Check that `colcon build` accepts hrpose_ros, as it would in a ROS 2 workspace:
# copy the checkout's files (those git would commit) into <tmp>/ws/src/hrpose_ros, build
# it with the colcon of .venv against the PyPI ROS wheels, and check what landed in
# install/: the console scripts in lib/hrpose_ros/ (where `ros2 launch` / launch_ros look
# for executables), package.xml, launch/ and config/ in share/hrpose_ros/, and the ament
# index marker. It builds twice: plain, and with --symlink-install (as the README suggests).
# Where a model bundle ships (models/hrpose_student.json), it also starts the installed
# node the way `ros2 launch hrpose_ros pose.launch.py` does with its default arguments
# (the package's config/hrpose.yaml, then model:=share/.../models/hrpose_student.json and
# backend:=auto, topics remapped to image_raw / camera_info) and checks that it loads the
# model and stays up: `launch` and `launch_ros` are not on PyPI, so this is the launch
# file's command line, run by hand (test_launch_file.py checks the file says the same).
# The workspace is deleted afterwards unless KEEP_WS=1.
#
# Usage: scripts/colcon_check.sh   (environment: VENV, default .venv; KEEP_WS=1 to keep it)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
[[ "$VENV" == /* ]] || VENV="$ROOT/$VENV"
WS="$(mktemp -d "${TMPDIR:-/tmp}/hrpose_ros_colcon.XXXXXX")"
[[ "${KEEP_WS:-0}" == 1 ]] || trap 'rm -rf "$WS"' EXIT

log() { printf '[colcon-check] %s\n' "$*" >&2; }
fail() { printf '[colcon-check] FAIL: %s\n' "$*" >&2; exit 1; }

# The files a fresh clone would have: tracked + untracked-but-not-ignored.
mkdir -p "$WS/src/hrpose_ros"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' file; do [[ -e "$file" ]] && printf '%s\0' "$file"; done \
    | tar --null -T - -cf -) | tar -C "$WS/src/hrpose_ros" -xf -
else
  tar -C "$ROOT" --exclude=.venv --exclude=.git --exclude=build --exclude=install --exclude=log \
    -cf - . | tar -C "$WS/src/hrpose_ros" -xf -
fi

colcon_build() {  # colcon_build NAME [colcon build options...] -> install base $WS/NAME/install
  local name="$1"
  shift
  log "colcon build $* (workspace $WS, build/install under $name/)"
  (
    cd "$WS"
    export PATH="$VENV/bin:$PATH"
    colcon --log-base "$WS/$name/log" build --packages-select hrpose_ros \
      --build-base "$WS/$name/build" --install-base "$WS/$name/install" "$@" \
      --event-handlers console_cohesion- summary+ </dev/null >"$WS/$name.log" 2>&1 \
      || { cat "$WS/$name.log" >&2; exit 1; }
  ) || fail "colcon build $* failed"
}

expected=(
  "share/ament_index/resource_index/packages/hrpose_ros"
  "share/hrpose_ros/package.xml"
)
for launch_file in "$ROOT"/launch/*.launch.py; do
  [[ -e "$launch_file" ]] && expected+=("share/hrpose_ros/launch/$(basename "$launch_file")")
done
for config_file in "$ROOT"/config/*.yaml; do
  [[ -e "$config_file" ]] && expected+=("share/hrpose_ros/config/$(basename "$config_file")")
done
# Every console script of setup.py must land in lib/hrpose_ros/.
mapfile -t scripts < <(cd "$ROOT" && "$VENV/bin/python" - <<'EOF'
import ast, pathlib
tree = ast.parse(pathlib.Path("setup.py").read_text())
for node in ast.walk(tree):
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values):
            if isinstance(key, ast.Constant) and key.value == "console_scripts":
                for element in value.elts:
                    print(element.value.split("=")[0].strip())
EOF
)
((${#scripts[@]} > 0)) || fail "found no console_scripts in setup.py"
for script in "${scripts[@]}"; do
  expected+=("lib/hrpose_ros/$script")
done

check_install() {  # check_install INSTALL_PREFIX_OF_HRPOSE_ROS
  local INSTALL="$1" missing path script
  missing=0
  for path in "${expected[@]}"; do
    if [[ -e "$INSTALL/$path" ]]; then
      log "ok       ${INSTALL#"$WS"/}/$path"
    else
      log "MISSING  ${INSTALL#"$WS"/}/$path"
      missing=1
    fi
  done
  ((missing == 0)) || fail "colcon installed an incomplete package"
  for script in "${scripts[@]}"; do
    [[ -x "$INSTALL/lib/hrpose_ros/$script" ]] || fail "lib/hrpose_ros/$script is not executable"
  done
}

launch_default() {  # launch_default INSTALL_PREFIX_OF_HRPOSE_ROS: the node as pose.launch.py starts it
  local INSTALL="$1" share="$1/share/hrpose_ros" out="$WS/launch_default.log" pid alive=0
  log "starting lib/hrpose_ros/hrpose_node as pose.launch.py does with its defaults"
  ROS_DOMAIN_ID=$((RANDOM % 100 + 100)) ROS_LOCALHOST_ONLY=1 ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST \
    "$INSTALL/lib/hrpose_ros/hrpose_node" --ros-args -r __node:=hrpose_node \
    --params-file "$share/config/hrpose.yaml" \
    -p "model:=$share/models/hrpose_student.json" -p backend:=auto \
    -r image:=image_raw -r camera_info:=camera_info >"$out" 2>&1 </dev/null &
  pid=$!
  for _ in $(seq 1 120); do
    grep -q "ready: model" "$out" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  sleep 5
  kill -0 "$pid" 2>/dev/null && grep -q "ready: model $share/models/hrpose_student.json" "$out" && alive=1
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  ((alive == 1)) || { cat "$out" >&2; fail "the node with the launch file's defaults did not load the shipped model and stay up"; }
  log "ok       the node with pose.launch.py's defaults loaded models/hrpose_student.json and stayed up: $(grep -o 'ready: .*' "$out")"
}

if [[ -e "$ROOT/models/hrpose_student.json" ]]; then
  expected+=("share/hrpose_ros/models/hrpose_student.json" "share/hrpose_ros/models/hrpose_student.onnx")
fi
colcon_build copy
check_install "$WS/copy/install/hrpose_ros"
if [[ -e "$ROOT/models/hrpose_student.json" ]]; then
  launch_default "$WS/copy/install/hrpose_ros"
else
  log "no models/hrpose_student.json: the node start with the launch defaults is not checked"
fi
colcon_build symlink --symlink-install
check_install "$WS/symlink/install/hrpose_ros"
log "PASS: colcon build (plain and --symlink-install) installs ${#scripts[@]} console scripts into lib/hrpose_ros/"
