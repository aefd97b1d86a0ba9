#!/usr/bin/env bash
# Run THERE, on the lent GPU, after scripts/device_prepare.sh here:
#
#   device run: command "bash scripts/device_train.sh --install", carry [".whl", ".gl", ".meshes"], timeout_s 600
#
# Installs what the image lacks, then runs scripts/train_lmo.sh (RECIPE=hrnet by default:
# the paper's HRNet teacher and student at 640x480, what a GPU is for) sized to fit one
# 10-minute command (data ~1.5 min on 16 cores, teacher and student MINUTES each, bundle
# and tables ~1 min), and leaves in $OUT what the device tool brings back (8 files at
# most, 16 MiB each): the bundle (ONNX + JSON), the two evaluation tables, the log, and
# results.tar.gz (eval JSON/plots, training configs, TensorBoard logs).
# Minutes, not the paper's 120 epochs: hence peak weighting and lr 1e-3 (halved every 2
# epochs) by default, which left the all-zero plateau on the CPU where plain MSE at 1e-4 did not.
# --install unpacks .gl/ into / and .whl/ into /tmp/site: only on the lent machine, never on
# a workstation. Without it (a CPU smoke test, the test suite) nothing is installed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder whose files come back}
RUN=${RUN:-/tmp/lmo}
INSTALL=0
[ "${1:-}" = --install ] && INSTALL=1

if [ "$INSTALL" = 1 ] && [ -d .gl ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  egl_vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  [ -f "$egl_vendor" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl_vendor
fi
if [ "$INSTALL" = 1 ] && [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
[ -d .meshes ] && export HRPOSE_MESH_DIR=$PWD/.meshes
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$OUT/log.txt"

RECIPE=${RECIPE:-hrnet} RUN=$RUN PYTHON=${PYTHON:-python3} WORKERS=${WORKERS:-14} IMAGES=${IMAGES:-12000} \
  TEST_IMAGES=${TEST_IMAGES:-300} MINUTES=${MINUTES:-2.5} PEAK_WEIGHT=${PEAK_WEIGHT:-20} \
  TRAIN_ARGS=${TRAIN_ARGS:---set optim.lr=1e-3 --set optim.lr_step_epochs=2} \
  bash scripts/train_lmo.sh 2>&1 | tr '\r' '\n' | grep -v -E '(it|img)/s' | tee -a "$OUT/log.txt"
status=${PIPESTATUS[0]}

cp "$RUN"/bundle/hrpose_student.json "$RUN"/bundle/hrpose_student.onnx "$OUT"/ 2>/dev/null
cp "$RUN"/eval_heldout.md "$RUN"/eval_sample_stream.md "$OUT"/ 2>/dev/null
tar -czf "$OUT/results.tar.gz" -C "$RUN" --exclude=data --exclude=bundle --exclude='*.pt' . 2>/dev/null
ls -la "$OUT"
exit "$status"
