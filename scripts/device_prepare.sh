#!/usr/bin/env bash
# Run HERE, before a GPU loan: put what the lent machine lacks where the device tool carries it.
#
# The lent H200 image has torch, timm, onnx, onnxruntime, OpenCV, scipy, tqdm, tensorboard
# and matplotlib, but not the renderer (moderngl + glcontext), trimesh + fast-simplification,
# onnxconverter-common, the EGL loader libraries, nor ../shared (only the checkout travels).
# This writes .whl/ (Python 3.12 wheels at this project's pinned versions), .gl/ (Debian's
# EGL/GL loader packages) and .meshes/ (the LM-O meshes), all excluded from git. Then:
#
#   device run: command "bash scripts/device_train.sh --install", carry [".whl", ".gl", ".meshes"], timeout_s 600
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
MESHES=${HRPOSE_MESH_DIR:-../shared/data/lmo_models}

for dir in .whl .gl .meshes; do
  grep -qx "/$dir/" .git/info/exclude 2>/dev/null || echo "/$dir/" >>.git/info/exclude
done

pin() { grep -E "^$1==" requirements.txt | cut -d' ' -f1; }
glcontext="glcontext==$("$PY" -c 'import importlib.metadata as m; print(m.version("glcontext"))')"
rm -rf .whl && mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --platform any -d .whl \
  "$(pin moderngl)" "$glcontext" "$(pin trimesh)" "$(pin fast-simplification)" "$(pin onnxconverter-common)"

lists=$(mktemp -d)
mkdir -p "$lists/partial" .gl
apt_opts=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
apt-get "${apt_opts[@]}" update -qq
(cd .gl && rm -f ./*.deb && apt-get "${apt_opts[@]}" download -qq \
  libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
rm -rf "$lists"

rm -rf .meshes && mkdir -p .meshes && cp "$MESHES"/*.ply .meshes/
du -sh .whl .gl .meshes
