"""Shared by the benchmarks: interleaved timing and the machine description.

Every benchmark measures its variants in ONE process, alternating them (A B A B ...), so a
change in machine load hits every variant alike, and reports medians.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable, Dict, List, Optional

from absl import flags

from gnas_keras.config import RunConfig
from gnas_keras.space.search_space import PRESETS
from gnas_keras_flags import dataclass_flags

# The model every benchmark measures: --space, --num_attributes, --crop_height, --crop_width,
# the search's own settings (defaults: Table 2's shallow_thin on CelebA's crop).
dataclass_flags.define_model_input(RunConfig(), "gnas_keras.config", PRESETS)


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


def machine() -> str:
    """CPU model (from /proc/cpuinfo), usable cores, 1-minute load (other processes share
    the cores: a load above the core count makes every number noisier), Python and TF."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import tensorflow as tf
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", load average %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return (f"{model}, {cores} cores{load}, Python {platform.python_version()}, "
            f"TensorFlow {tf.__version__}")


def report(title: str, samples: Dict[str, List[float]], unit: float = 1e3,
           unit_name: str = "ms") -> Dict[str, float]:
    """Prints median (min-max) per variant; returns the medians in seconds."""
    medians = {name: median(s) for name, s in samples.items()}
    print(f"== {title} ({len(next(iter(samples.values())))} interleaved samples each)")
    for name, s in samples.items():
        print(f"  {name:28s} median {medians[name] * unit:9.2f} {unit_name}  "
              f"(min {min(s) * unit:.2f}, max {max(s) * unit:.2f})")
    return medians
