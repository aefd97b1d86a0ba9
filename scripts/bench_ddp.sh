#!/usr/bin/env bash
# Training images/s of hrpose-train at world size 1 (one process) and 2 (torchrun, 2 ranks).
#
# Why: the README's multi-GPU commands scale on GPUs; this shows what the same code does on
# the machine at hand. On a CPU both ranks share its cores (gloo, one thread per rank; the
# single process gets every core), so no speed-up is expected there: test_distributed.py
# proves the correctness, and a GPU machine shows the scaling.
#
# Renders a small BOP folder (one cuboid object) in a temporary folder, then trains each
# world size for EPOCHS epochs from the same seed and prints the images/s of the last epoch
# as hrpose-train reports it (all ranks' images over the epoch's wall-clock time).
#
#     scripts/bench_ddp.sh                      # hrpose_tiny, 256x192, 64 images, batch 8 per rank
#     MODEL=hrpose_lite0 BATCH=4 scripts/bench_ddp.sh
set -euo pipefail

PYTHON=${PYTHON:-.venv/bin/python}
MODEL=${MODEL:-hrpose_tiny}
WIDTH=${WIDTH:-256}
HEIGHT=${HEIGHT:-192}
IMAGES=${IMAGES:-64}
BATCH=${BATCH:-8}
EPOCHS=${EPOCHS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/objects.yaml" <<'EOF'
objects:
  - {name: box, id: 1, bbox_min: [-0.05, -0.035, -0.025], bbox_size: [0.1, 0.07, 0.05],
     diameter: 0.1323, symmetric: false, color: [0.9, 0.5, 0.1]}
EOF
"$PYTHON" -m hrpose_ros.data.synthetic --out "$work/data" --catalogue "$work/objects.yaml" \
    --num-images "$IMAGES" --width "$WIDTH" --height "$HEIGHT" --mode render --distance 0.3 0.5 \
    --images-per-scene 16 > /dev/null 2>&1

train_args=(teacher --model "$MODEL" --data "$work/data/train_synt" --objects "$work/objects.yaml"
    --device cpu --epochs "$EPOCHS" --batch-size "$BATCH"
    --set "data.input_width=$WIDTH" --set "data.input_height=$HEIGHT" --set data.num_workers=0
    --set overlay_every=0 --set log_every=0 --set amp=false)

run() {  # run NAME COMMAND...: the images/s of hrpose-train's closing line; the log on failure
    local name=$1
    shift
    if ! "$@" > "$work/$name.out" 2> "$work/$name.log"; then
        tail -n 40 "$work/$name.log" >&2
        echo "bench_ddp: $name failed" >&2
        exit 1
    fi
    grep -o '[0-9.]* images/s' "$work/$name.out" | tail -n 1
}

one=$(run w1 "$PYTHON" -m hrpose_ros.training.train "${train_args[@]}" --out "$work/w1")
two=$(run w2 "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node 2 \
    -m hrpose_ros.training.train "${train_args[@]}" --out "$work/w2")
echo "model $MODEL, ${WIDTH}x${HEIGHT}, $IMAGES images, batch $BATCH per rank, last of $EPOCHS epochs, $(nproc) CPUs"
echo "world size 1 (global batch $BATCH, one process):  $one"
echo "world size 2 (global batch $((2 * BATCH)), 2 ranks, gloo): $two"
