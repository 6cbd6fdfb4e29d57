"""Runs a Python script with `import tensorflow` failing, as on a machine that has only JAX:

    KERAS_BACKEND=jax python tests/without_tensorflow.py SCRIPT [ARGS...]
    KERAS_BACKEND=jax python tests/without_tensorflow.py -m MODULE [ARGS...]
"""

import runpy
import sys


class NoTensorFlow:
    """A meta-path finder that refuses TensorFlow and its submodules."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError(f"{name}: TensorFlow is blocked (tests/without_tensorflow.py)")
        return None


if __name__ == "__main__":
    sys.meta_path.insert(0, NoTensorFlow())
    if sys.argv[1] == "-m":
        sys.argv = sys.argv[2:]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
