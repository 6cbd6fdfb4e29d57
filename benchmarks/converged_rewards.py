"""Why did a GNAS search stop on this tree? Looks inside a finished (or stopped) GNAS run.

From the run's last checkpoint (its supernet weights and tree) and its own settings
(`checkpoints/state.json`), it

1. scores one more round of candidates for the searched layers exactly as the search does
   (`gnas.search` for one round, weights restored after each candidate) and prints the
   reward of every candidate parent for every child, each child's best gain over its
   current parent and the paired standard error of that gain; a tree on which every gain
   is 0 is a fixed point of the search;
2. optionally (``--alternative``) trains the found tree and another tree on from the same
   weights for ``--steps`` steps on the same batches, and prints each one's validation
   error per planted group: would the supernet itself, trained on, prefer the other tree?

    python -m benchmarks.converged_rewards --workdir=runs/synthetic_gnas_plus \
        --alternative=fc1=2222333300001111 --steps=300

``--probe_steps=N`` scores the extra round with probes (`gnas_keras.models.probe`) whatever the run
used, ``--probe_steps=0`` with K SGD steps of fresh heads: the same frozen features read both
ways.

Only for runs of ``--method=gnas`` (the supernet is what it reads).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from gnas_keras.config import CandidateConfig, RunConfig  # noqa: E402
from gnas_keras.training.data import Data, planted_groups  # noqa: E402
from gnas_keras.training.evaluation import segment_seed  # noqa: E402
from gnas_keras.methods import gnas  # noqa: E402
from gnas_keras.space.search_space import get_space  # noqa: E402
from gnas_keras.training.loop import Loop, new_supernet  # noqa: E402
from gnas_keras.space.tree import Routing  # noqa: E402


def run_config(saved: dict) -> RunConfig:
    """The run's `RunConfig` from its checkpointed dict (the settings this script uses)."""
    fields = {k: v for k, v in saved.items() if k not in ("candidates", "methods", "compare")}
    return RunConfig(**fields, compare=tuple(saved["compare"]),
                     candidates=CandidateConfig(**saved["candidates"]),
                     methods={"gnas": gnas.GnasConfig(**saved["methods"]["gnas"])})


def parse_alternative(text: str, space, routing: Routing) -> Routing:
    """``LAYER=DIGITS[,LAYER=DIGITS]``: `routing` with those layers' parents replaced."""
    names = [layer.name for layer in space.layers]
    for part in text.split(","):
        name, _, digits = part.partition("=")
        if name not in names or not digits.isdigit():
            raise ValueError(f"--alternative: {part!r} is not LAYER=DIGITS with a layer of "
                             f"{space.name} ({', '.join(names)})")
        routing = routing.with_layer(names.index(name), [int(c) for c in digits])
    return routing


def fail(message: str) -> None:
    """Bad input: one line on stderr, exit status 2."""
    print(f"converged_rewards: {message}", file=sys.stderr)
    sys.exit(2)


def digits(routing: Routing, layers) -> str:
    """The parents of `layers` as digit strings, e.g. ``0123/2222333300001111``."""
    return "/".join("".join(map(str, routing.parents[l])) for l in layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a GNAS run directory")
    parser.add_argument("--alternative", default="",
                        help="another tree to train on beside the found one, e.g. "
                             "fc1=2222333300001111")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--probe_steps", type=int, default=-1,
                        help="score the extra round with probes of this many steps "
                             "(GnasConfig.probe_steps; 0: K SGD steps of fresh heads); "
                             "default: as the run did")
    args = parser.parse_args()
    path = os.path.join(args.workdir, "checkpoints", "state.json")
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")
    config = run_config(state["config"])
    if config.method != "gnas" or not state.get("architecture"):
        fail(f"--workdir: {args.workdir} is not a GNAS run with a finished search")
    space, data = get_space(config.space), Data.load(config)
    n = data.meta.num_attributes
    tree = Routing.from_lists(state["architecture"]["parents"])
    try:
        alternative = (parse_alternative(args.alternative, space, tree)
                       if args.alternative else None)
        if alternative is not None:
            alternative.validate(space, n)
    except ValueError as e:
        fail(str(e))

    model = new_supernet(config, space, n, data.image_shape, config.seed)
    tf.train.Checkpoint(model=model, optimizer=model.optimizer).read(
        state["checkpoint"]).expect_partial()
    model.set_routing(tree)
    loop = Loop(model, data.train, config.seed)
    saved = model.snapshot()
    print(f"{args.workdir}: learning rate {loop.learning_rate:.4g} (the run's last)")
    np.set_printoptions(precision=3, suppress=True, linewidth=200)

    searched = space.searched_layers(n)

    # 1. One more round of candidates on the found tree (positions no search used: round 0).
    plus = config.methods["gnas"]
    probe = {"probe_steps": args.probe_steps} if args.probe_steps >= 0 else {}
    once = gnas.GnasConfig(**{**vars(plus), "max_rounds": 1, "restarts": 0, **probe})
    try:
        once.validate()
    except ValueError as e:
        fail(str(e))
    search_state = gnas.SearchState(rng_state=np.random.default_rng(0).bit_generator.state,
                                    routing=tree, round_start=tree, round=0)
    val_data = lambda *position: loop.iterator(  # noqa: E731
        data.rewards(segment_seed(config.seed, *position)))
    result = gnas.search(loop, val_data, config.candidates, once, np.random.default_rng(0),
                         state=search_state, seed=config.seed)[0]
    for name, rewards in result.rewards.items():
        layer = [s.name for s in space.layers].index(name)
        print(f"{name}: current parents {''.join(map(str, tree.parents[layer]))}; "
              f"{config.methods['gnas'].reward} reward of each candidate parent (rows) for "
              f"each child (columns):\n{rewards}")
        print(f"  best gain over the current parent: {result.switch_gains[name]}")
        print(f"  its paired standard error:         {result.switch_errors[name]}")
    print("after the round:", digits(result.routing, searched),
          "(unchanged: a fixed point)" if result.routing == tree else "(changed)")

    # 2. Both trees trained on from the same weights, on the same batches.
    if alternative is None:
        return
    groups = planted_groups(data.meta) or [0] * n
    for label, routing in (("found", tree), ("alternative", alternative)):
        model.restore(saved)
        model.set_routing(routing)
        loop.restart(99)
        loop.train(args.steps)
        error = 1.0 - np.asarray(loop.evaluate_dataset(
            data.validation, data.meta.split_sizes["validation"],
            config.eval_batch_size).accuracy)
        per_group = [float(error[np.asarray(groups) == g].mean()) for g in sorted(set(groups))]
        print(f"{label:12s} {digits(routing, searched)}: after {args.steps} more "
              f"steps, validation error {error.mean():.4f}, per group "
              f"{', '.join(f'{e:.3f}' for e in per_group)}")


if __name__ == "__main__":
    main()
