#!/usr/bin/env bash
# The GPU benchmark (benchmarks/gpu.py says what it measures and prints) on a machine with
# JAX and a GPU and no TensorFlow. Run from the repository root:
#   benchmarks/gpu.sh [flags of benchmarks/gpu.py, e.g. --presets=shallow_thin --steps=5]
# Keras and the dependencies it needs besides JAX travel as wheels in benchmarks/wheels/
# (`make gpu-wheels` on a machine with the package index and the same Python version);
# they are installed into /tmp/gnas_keras_wheels only when `import keras` fails.
set -euo pipefail
PYTHON=${PYTHON:-python3}
export KERAS_BACKEND=jax PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PYTHON" -c "import keras" 2>/dev/null; then
  if ! ls benchmarks/wheels/keras-*.whl >/dev/null 2>&1; then
    echo "benchmarks/gpu.sh: Keras is not installed and benchmarks/wheels/ has no keras wheel (make gpu-wheels)" >&2
    exit 2
  fi
  "$PYTHON" -m pip install --quiet --no-deps --no-index --target /tmp/gnas_keras_wheels \
    benchmarks/wheels/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/gnas_keras_wheels"
fi
"$PYTHON" -c "import jax, keras; print('JAX', jax.__version__, jax.devices(), '| Keras', keras.__version__)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec "$PYTHON" -m benchmarks.gpu "$@"
