#!/usr/bin/env bash
# Throughput of the four presets on this machine's GPU and the projected cost of the paper's
# CelebA search (benchmarks/gpu.py says what is measured). Needs a Python with
# tensorflow[and-cuda] (TF 2.21) and this project's requirements; run from the repository
# root:   PYTHON=.venv/bin/python benchmarks/gpu.sh [extra flags, e.g. --steps=50]
# Two configurations, float32 (per-block) and the recommended GPU settings (mixed precision,
# grouped conv layers, XLA for the tree), each in its own process.
set -euo pipefail
PYTHON=${PYTHON:-python}
export PYTHONPATH=${PYTHONPATH:-$(pwd)} TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
"$PYTHON" -c "import tensorflow as tf; g = tf.config.list_physical_devices('GPU'); \
print('TensorFlow', tf.__version__, 'GPUs:', g); assert g or '$*'.count('--allow_cpu'), \
'no GPU visible to TensorFlow (install tensorflow[and-cuda]); pass --allow_cpu to run anyway'"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
ARGS=()
for a in "$@"; do [ "$a" = "--allow_cpu" ] || ARGS+=("$a"); done
echo "== float32, per-block supernet"
"$PYTHON" -m benchmarks.gpu "${ARGS[@]}"
echo "== mixed precision, grouped conv layers, XLA tree"
"$PYTHON" -m benchmarks.gpu --mixed_precision --grouped_conv --jit_compile "${ARGS[@]}"
