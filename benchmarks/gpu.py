r"""The search's speed on Keras' JAX backend: a GPU machine with only JAX, or this CPU.

    KERAS_BACKEND=jax python -m benchmarks.gpu                     # four presets, 192x168
    KERAS_BACKEND=jax python -m benchmarks.gpu --presets=tiny --height=32 --width=32 \
        --num_attributes=4 --batch_size=4 --serve_batch=4 --steps=1 --repeats=1
    benchmarks/gpu.sh [flags]      # on the GPU machine: checks the device and Keras first

No TensorFlow and no tf.data: one random in-memory batch (images in [0, 255], labels in
{-1, 0, 1}), the full tree of each preset (every block live, `full_tree`), N attributes.
Per precision (``float32``, then ``mixed``: float16 compute, float32 variables, dynamic loss
scaling) and preset, four variants, timed interleaved (`benchmarks.measure.interleaved`):

- ``per-block``: the supernet's train step (`jax_backend.TrainStep` on a `Supernet`, one
  conv / BN / pool per block): what a GNAS search trains;
- ``grouped``: the same supernet with ``grouped_conv=True`` (a layer's blocks as one
  grouped convolution);
- ``tree``: the train step of the static `TreeNetwork` of the same tree (fine-tuning);
- ``inference``: the tree network's jit-compiled forward pass at --serve_batch (moving
  batch-norm statistics; the exported SavedModel folds BN, which needs TensorFlow).

Output (stdout), in this order:

    device: <JAX's devices, e.g. "gpu: NVIDIA H200 x1" or "cpu: cpu x1">
    machine: <CPU, cores, load, Python, Keras and backend versions>
    settings: <N, HxW, batches, steps per sample, samples>
    precision preset       per-block grouped  tree  inference  faster  search(days)  vs paper
    <one row per precision and preset: images/s of each variant, the faster supernet
     formulation, the projected CelebA search in days and as a multiple of the paper's>
    projection: <how the projection is computed>

The projection: the paper's CelebA search (Huang et al. 2018) is 150 rounds x the preset's
candidate evaluations per round at N = 40 (20 for the shallow spaces) x 2,000 supernet steps
of batch 64, 2 days on one GTX 1080Ti; projected = that many steps x the faster supernet
formulation's measured time per image x 64 (reward evaluation and input pipeline not
counted). --json=PATH also writes every row (keys: precision, preset, per_block, grouped,
tree, inference in images/s, faster, candidates, search_days, vs_paper) with the device,
machine and settings.

``--worker``: instead of printing, build the variants of one preset and precision and time
them on request (one variant name per stdin line, the seconds on stdout): how
`benchmarks.train_step` puts JAX's steps next to TensorFlow's in one interleaved run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, Dict, List

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

PAPER_ROUNDS, PAPER_STEPS, PAPER_BATCH, PAPER_SECONDS = 150, 2000, 64, 2 * 86400
PRECISIONS = ("float32", "mixed")
VARIANTS = ("per-block", "grouped", "tree", "inference")


def parse(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks.gpu", description=__doc__.split("\n")[0])
    p.add_argument("--presets", default="shallow_thin,shallow_wide,deep_thin,deep_wide",
                   help="comma-separated search-space presets")
    p.add_argument("--precisions", default=",".join(PRECISIONS),
                   help="comma-separated: float32, mixed")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    p.add_argument("--num_attributes", type=int, default=40)
    p.add_argument("--height", type=int, default=192)
    p.add_argument("--width", type=int, default=168)
    p.add_argument("--batch_size", type=int, default=64, help="train batch (paper: 64)")
    p.add_argument("--serve_batch", type=int, default=32, help="inference batch (Table 2)")
    p.add_argument("--steps", type=int, default=10, help="calls per timed sample")
    p.add_argument("--repeats", type=int, default=3, help="interleaved samples per variant")
    p.add_argument("--json", default="", help="also write the rows to this file")
    p.add_argument("--worker", action="store_true", help="serve timings on stdin/stdout")
    args = p.parse_args(argv)
    from gnas_keras.space.search_space import PRESETS
    for name in args.presets.split(","):
        if name not in PRESETS:
            p.error(f"--presets: unknown preset {name!r} (known: {', '.join(PRESETS)})")
    for name in args.precisions.split(","):
        if name not in PRECISIONS:
            p.error(f"--precisions: unknown {name!r} (known: {', '.join(PRECISIONS)})")
    for name in args.variants.split(","):
        if name not in VARIANTS:
            p.error(f"--variants: unknown {name!r} (known: {', '.join(VARIANTS)})")
    for flag in ("num_attributes", "height", "width", "batch_size", "serve_batch", "steps",
                 "repeats"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag}: must be at least 1, got {getattr(args, flag)}")
    return args


def variants(preset: str, precision: str, args) -> Dict[str, Callable[[], object]]:
    """name -> one timed unit: `args.steps` calls of that variant, blocking until done."""
    import jax
    import keras
    from gnas_keras.models.jax_backend import TrainStep, predict_function
    from gnas_keras.models.supernet import build_supernet
    from gnas_keras.models.tree_net import build_tree_network
    from gnas_keras.space.architecture import Architecture
    from gnas_keras.space.cost import full_tree
    from gnas_keras.space.search_space import get_space

    n, shape = args.num_attributes, (args.height, args.width, 3)
    space = get_space(preset)
    routing = full_tree(space, n)
    rng = np.random.default_rng(0)
    images = jax.device_put(rng.uniform(0, 255, (args.batch_size, *shape)).astype("float32"))
    labels = jax.device_put(rng.integers(-1, 2, (args.batch_size, n)).astype("int32"))
    mixed = precision == "mixed"
    wanted = args.variants.split(",")
    keras.utils.set_random_seed(0)
    steps: Dict[str, Callable[[], object]] = {}
    for name, grouped in (("per-block", False), ("grouped", True)):
        if name in wanted:
            steps[name] = TrainStep(build_supernet(space, n, shape, routing=routing,
                                                   mixed_precision=mixed, grouped_conv=grouped))
    if "tree" in wanted or "inference" in wanted:
        tree = build_tree_network(Architecture.from_space(space, routing), shape,
                                  mixed_precision=mixed)
        if "tree" in wanted:
            steps["tree"] = TrainStep(tree)

    def repeat(fn, *inputs):
        def unit():
            for _ in range(args.steps):
                out = fn(*inputs)
            jax.block_until_ready(out)
        return unit

    units = {name: repeat(step, images, labels) for name, step in steps.items()}
    if "inference" in wanted:
        units["inference"] = repeat(predict_function(tree), images[:args.serve_batch])
    return {name: units[name] for name in VARIANTS if name in units}


def device() -> str:
    import jax
    kinds: Dict[str, int] = {}
    for d in jax.devices():
        key = f"{d.platform}: {getattr(d, 'device_kind', d.platform)}"
        kinds[key] = kinds.get(key, 0) + 1
    return ", ".join(f"{k} x{v}" for k, v in kinds.items())


def row(preset: str, precision: str, seconds: Dict[str, float], args) -> dict:
    """images/s per variant, the faster supernet formulation and the projection."""
    from gnas_keras.space.search_space import get_space
    batch = {"inference": min(args.serve_batch, args.batch_size)}
    rate = {name: batch.get(name, args.batch_size) * args.steps / s
            for name, s in seconds.items()}
    supernets = {k: rate[k] for k in ("per-block", "grouped") if k in rate}
    faster = max(supernets, key=supernets.get) if supernets else None
    candidates = get_space(preset).evaluations_per_round(40)
    projected = (PAPER_ROUNDS * candidates * PAPER_STEPS * PAPER_BATCH / supernets[faster]
                 if faster else float("nan"))
    return {"precision": precision, "preset": preset,
            **{k.replace("-", "_"): rate.get(k, float("nan")) for k in VARIANTS},
            "faster": faster, "candidates": candidates, "search_days": projected / 86400,
            "vs_paper": projected / PAPER_SECONDS}


def serve(args) -> None:
    """--worker: build one preset and precision, print the variant names as a JSON line,
    then for each variant name read on stdin print the seconds of one timed unit."""
    from benchmarks import measure
    units = variants(args.presets.split(",")[0], args.precisions.split(",")[0], args)
    for unit in units.values():
        unit()  # compile and warm up before the parent starts timing
    print(json.dumps({"variants": list(units), "machine": measure.machine(),
                      "device": device()}), flush=True)
    for line in sys.stdin:
        name = line.strip()
        seconds = measure.interleaved({name: units[name]}, 1, warmup=0)[name][0]
        print(json.dumps({"seconds": seconds}), flush=True)


def main(argv: List[str]) -> None:
    args = parse(argv)
    if args.worker:
        return serve(args)
    from benchmarks import measure
    print(f"device: {device()}")
    print(f"machine: {measure.machine()}")
    print(f"settings: {args.num_attributes} attributes, {args.height}x{args.width}, train "
          f"batch {args.batch_size}, serve batch {args.serve_batch}, {args.steps} calls per "
          f"sample, {args.repeats} interleaved samples (median)", flush=True)
    print(f"{'precision':9s} {'preset':13s} {'per-block':>10s} {'grouped':>9s} {'tree':>9s} "
          f"{'inference':>10s} {'faster':>9s} {'search(days)':>12s} {'vs paper':>9s}")
    rows = []
    for precision in args.precisions.split(","):
        for preset in args.presets.split(","):
            samples = measure.interleaved(variants(preset, precision, args), args.repeats)
            r = row(preset, precision, {k: measure.median(s) for k, s in samples.items()},
                    args)
            rows.append(r)
            print(f"{precision:9s} {preset:13s} {r['per_block']:10.1f} {r['grouped']:9.1f} "
                  f"{r['tree']:9.1f} {r['inference']:10.1f} {str(r['faster']):>9s} "
                  f"{r['search_days']:12.2f} {r['vs_paper']:8.2f}x", flush=True)
            import keras
            keras.backend.clear_session()  # free the preset's models before the next
    print(f"projection: {PAPER_ROUNDS} rounds x candidates per round at N=40 x "
          f"{PAPER_STEPS} supernet steps of batch {PAPER_BATCH}, at the faster formulation's "
          f"images/s; vs paper = / {PAPER_SECONDS // 86400} GPU-days; images/s columns: "
          f"train steps of batch {args.batch_size}, inference of batch "
          f"{min(args.serve_batch, args.batch_size)}")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"device": device(), "machine": measure.machine(),
                       "settings": vars(args), "rows": rows}, f, indent=1)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main(sys.argv[1:])
