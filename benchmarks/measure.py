"""Interleaved timing and the machine description, for every benchmark and every backend.

Every benchmark measures its variants in ONE process (or one process per backend, driven
call by call from one, `Worker`), alternating them (A B A B ...), so a
change in machine load hits every variant alike, and reports medians. Imports no
TensorFlow, no flags: the GPU benchmark runs where only JAX is installed.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional


def interleaved(variants: Dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                before: Optional[Dict[str, Callable[[], object]]] = None
                ) -> Dict[str, List[float]]:
    """Seconds per call of every variant, `repeats` samples each, taken round-robin.

    variants: name -> a function doing one unit of work (it must block until the work is
    done, e.g. by converting a result to NumPy). `warmup` calls of each are not timed.
    before: name -> an untimed function run right before each timed call of that variant.
    """
    before = before or {}
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    samples: Dict[str, List[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            if name in before:
                before[name]()
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def median(samples: List[float]) -> float:
    return statistics.median(samples)


def cpu() -> str:
    """CPU model (from /proc/cpuinfo), usable cores, 1-minute load (other processes share
    the cores: a load above the core count makes every number noisier)."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", load average %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return f"{model}, {cores} cores{load}"


def machine() -> str:
    """`cpu`, Python, Keras and its backend, and the backend's version."""
    import keras
    backend = keras.backend.backend()
    framework = sys.modules.get(backend)  # Keras has imported it
    version = getattr(framework, "__version__", "?")
    return (f"{cpu()}, Python {platform.python_version()}, Keras {keras.__version__} on "
            f"{backend} {version}")


def report(title: str, samples: Dict[str, List[float]], unit: float = 1e3,
           unit_name: str = "ms") -> Dict[str, float]:
    """Prints median (min-max) per variant; returns the medians in seconds."""
    medians = {name: median(s) for name, s in samples.items()}
    print(f"== {title} ({len(next(iter(samples.values())))} interleaved samples each)")
    for name, s in samples.items():
        print(f"  {name:28s} median {medians[name] * unit:9.2f} {unit_name}  "
              f"(min {min(s) * unit:.2f}, max {max(s) * unit:.2f})")
    return medians


class Worker:
    """A benchmark process on another Keras backend, timed call by call from this one, so
    its variants interleave with this process's (`interleaved`).

    Runs ``python -m <module> <args> --worker`` with ``KERAS_BACKEND=<backend>``; the worker
    prints one JSON line {"variants": [...], "machine": ..., "device": ...} when its models
    are built and warm, then answers each variant name on its stdin with one JSON line
    {"seconds": ...} (`benchmarks.gpu.serve`). Its stderr goes to a temporary file, shown
    if it fails.
    """

    def __init__(self, module: str, args: List[str], backend: str = "jax"):
        import subprocess
        import tempfile
        self._stderr = tempfile.TemporaryFile(mode="w+")
        env = {**os.environ, "KERAS_BACKEND": backend}
        self._process = subprocess.Popen(
            [sys.executable, "-m", module, *args, "--worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env)
        hello = self._read()
        self.variants: List[str] = hello["variants"]
        self.machine: str = hello["machine"]
        self.device: str = hello["device"]

    def _read(self) -> dict:
        import json
        while True:
            line = self._process.stdout.readline()
            if not line:
                self._stderr.seek(0)
                raise RuntimeError("benchmark worker died:\n" + self._stderr.read()[-3000:])
            if line.startswith("{"):
                return json.loads(line)

    def seconds(self, variant: str) -> float:
        """Runs one timed unit of `variant` in the worker; its seconds as it measured."""
        self._process.stdin.write(variant + "\n")
        self._process.stdin.flush()
        return self._read()["seconds"]

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(timeout=60)
        self._stderr.close()
