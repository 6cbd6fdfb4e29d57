"""Proof that the synthetic set's best tree of the `tiny` space is the planted tree.

Trains a set of fixed trees from scratch with the same budget over several seeds and prints
one table: mean test error over the 16 attributes, its standard error over seeds, and the
paired difference to the planted tree (same seed = same batches) in units of its paired
standard error. The trees:

- ``planted``: each planted group under its own conv3 block (and its own conv2 block).
- ``random_i``: every searched block's parent drawn uniformly (as `random_tree` does).
- ``shared``: one trunk, every searched block under block 0.
- ``merged``: two groups under one conv3 block, the others as planted (one block unused).
- ``split``: half of one group moved under another group's block.
- ``moved``: one attribute moved under another group's block.

    nice -n 10 python -m benchmarks.planted_proof --data_dir=data/synthetic

The one dependency on how a tree is built and trained is `train_tree_from_scratch`. For now
it is a plain static Keras model that reproduces the `tiny` space's blocks (conv k x k without
bias, batch norm, ReLU, 2x2/2 max-pool; dense per fc block, ReLU except the logits) with the
library's training recipe (SGD with Nesterov momentum, L2 on the used weights in the loss,
He-normal fan-in initialisation); the core's tree network can replace it later.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Dict, List, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer of the tiny space: ``kind`` conv (k x k) or fc; ``blocks`` = 0 means one
    block per attribute."""
    name: str
    kind: str
    kernel: int
    blocks: int
    channels: int


# The `tiny` search space (gnas_keras/space.py); fc1 reads conv3 through `--transition`.
TINY = (Layer("conv1", "conv", 3, 1, 16), Layer("conv2", "conv", 3, 4, 8),
        Layer("conv3", "conv", 3, 4, 4), Layer("fc1", "fc", 0, 0, 16),
        Layer("fc2", "fc", 0, 0, 16), Layer("fc3", "fc", 0, 0, 2))


# --- data --------------------------------------------------------------------------------
_CACHE: Dict[Tuple[str, str], Tuple[np.ndarray, np.ndarray]] = {}


def load_split(data_dir: str, split: str) -> Tuple[np.ndarray, np.ndarray]:
    """(uint8 images [n, H, W, 3], int labels [n, N]) of a converted split, cached."""
    key = (data_dir, split)
    if key not in _CACHE:
        from pipelines import records
        meta = records.read_metadata(data_dir)
        files = sorted(tf.io.gfile.glob(records.shard_pattern(data_dir, split)))
        spec = records.feature_spec(meta.num_attributes)
        images, labels = [], []
        for serialized in tf.data.TFRecordDataset(files).batch(1024):
            parsed = tf.io.parse_example(serialized, spec)
            images.append(tf.map_fn(lambda b: tf.io.decode_png(b, channels=3),
                                    parsed["image"], fn_output_signature=tf.uint8).numpy())
            labels.append(parsed["attributes"].numpy())
        _CACHE[key] = (np.concatenate(images), np.concatenate(labels))
    return _CACHE[key]


# --- the one library-facing function -----------------------------------------------------
def _build(parents_per_layer: Sequence[Sequence[int]], num_attributes: int, image_shape,
           transition: str, bn_momentum: float, bn_epsilon: float) -> keras.Model:
    """A static Keras model of one tree: only the blocks with descendants are built.
    Output logits [batch, N, 2]."""
    layers = TINY
    counts = [num_attributes if s.blocks == 0 else s.blocks for s in layers]
    # live[l] = blocks of layer l with at least one attribute below them
    live = [set() for _ in layers]
    live[-1] = set(range(counts[-1]))
    for l in range(len(layers) - 1, 0, -1):
        live[l - 1] = {parents_per_layer[l][j] for j in live[l]}
    image = keras.Input(shape=tuple(image_shape), name="image")
    below = {0: keras.layers.Rescaling(1 / 127.5, offset=-1.0)(image)}
    last = len(layers) - 1
    for l, spec in enumerate(layers):
        here = {}
        for j in sorted(live[l]):
            x = below[0] if l == 0 else below[parents_per_layer[l][j]]
            tag = f"{spec.name}_{j}"
            if spec.kind == "conv":
                fan_in = spec.kernel * spec.kernel * x.shape[-1]
                x = keras.layers.Conv2D(
                    spec.channels, spec.kernel, padding="same", use_bias=False,
                    kernel_initializer=keras.initializers.RandomNormal(
                        stddev=float(np.sqrt(2.0 / fan_in))), name=tag)(x)
                x = keras.layers.BatchNormalization(momentum=bn_momentum, epsilon=bn_epsilon,
                                                    name=tag + "_bn")(x)
                x = keras.layers.ReLU()(x)
                x = keras.layers.MaxPooling2D(2, name=tag + "_pool")(x)
                if layers[l + 1].kind == "fc":  # the conv -> fc transition
                    x = (keras.layers.GlobalAveragePooling2D() if transition == "gap"
                         else keras.layers.Flatten())(x)
            else:
                x = keras.layers.Dense(
                    spec.channels, activation=None if l == last else "relu",
                    kernel_initializer=keras.initializers.RandomNormal(
                        stddev=float(np.sqrt(2.0 / x.shape[-1]))), name=tag)(x)
            here[j] = x
        below = here
    logits = keras.layers.Lambda(lambda xs: tf.stack(xs, axis=1))(
        [below[n] for n in range(num_attributes)])
    return keras.Model(image, logits)


def train_tree_from_scratch(parents_per_layer: Sequence[Sequence[int]], data_dir: str,
                            steps: int, seed: int, *, batch_size: int = 64,
                            learning_rate: float = 0.1, weight_decay: float = 1e-4,
                            transition: str = "gap", bn_momentum: float = 0.9,
                            bn_epsilon: float = 1e-5, eval_split: str = "test",
                            eval_limit: int = 0) -> np.ndarray:
    """Trains one tree of the tiny space from scratch; returns its per-attribute error [N]
    on `eval_split` (running batch-norm statistics).

    parents_per_layer: the routing, ``parents[l][j]`` = parent block in layer l - 1 of block
      j of layer l (``parents[0] == [0]``), as `gnas_keras.tree.Routing.parents`.
    seed: the initialisation and the order of the training batches (one epoch permutation
      after another); two trees trained with the same seed see the same batches.
    transition: ``gap`` (global average pool of each conv3 block) or ``flatten``.
    bn_momentum, bn_epsilon: Keras convention; 0.9 and 1e-5 are PyTorch's defaults.
    """
    images, labels = load_split(data_dir, "train")
    test_images, test_labels = load_split(data_dir, eval_split)
    if eval_limit:
        test_images, test_labels = test_images[:eval_limit], test_labels[:eval_limit]
    num_attributes = labels.shape[1]
    keras.utils.set_random_seed(seed)
    model = _build(parents_per_layer, num_attributes, images.shape[1:], transition,
                   bn_momentum, bn_epsilon)
    optimizer = keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    decayed = [w for w in model.trainable_weights]  # L2 on every used weight, as the core

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y, logits=logits))
            loss = ce + 0.5 * weight_decay * tf.add_n([tf.reduce_sum(w * w) for w in decayed])
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply(grads, model.trainable_weights)
        return ce

    rng = np.random.default_rng(seed)
    order = np.zeros(0, np.int64)
    for _ in range(steps):
        if len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(len(images))])
        idx, order = order[:batch_size], order[batch_size:]
        step(tf.constant(images[idx], tf.float32), tf.constant(labels[idx], tf.int32))

    predict = tf.function(lambda x: tf.argmax(model(x, training=False), axis=-1))
    wrong = np.zeros(num_attributes)
    for i in range(0, len(test_images), 1000):
        pred = predict(tf.constant(test_images[i:i + 1000], tf.float32)).numpy()
        wrong += (pred != test_labels[i:i + 1000]).sum(0)
    return wrong / len(test_images)


# --- the trees ---------------------------------------------------------------------------
def tree(conv3: Sequence[int], fc1: Sequence[int]) -> List[List[int]]:
    """Routing of the tiny space from its two searched layers (conv3 over conv2, fc1 over
    conv3); conv2 sits under the single conv1 block, fc2 and fc3 are per attribute."""
    n = len(fc1)
    return [[0], [0] * 4, list(conv3), list(fc1), list(range(n)), list(range(n))]


def trees_to_compare(groups: Sequence[int], num_random: int) -> Dict[str, List[List[int]]]:
    """The planted tree and its rivals. `groups[n]` = planted group (0..3) of attribute n."""
    groups = list(groups)
    n = len(groups)
    out = {"planted": tree([0, 1, 2, 3], groups)}
    rng = np.random.default_rng(12345)
    for i in range(num_random):
        out[f"random_{i}"] = tree(rng.integers(0, 4, 4), rng.integers(0, 4, n))
    out["shared"] = tree([0, 0, 0, 0], [0] * n)
    out["merged_0+1"] = tree([0, 1, 2, 3], [0 if g == 1 else g for g in groups])
    first = [a for a in range(n) if groups[a] == 0]
    split = list(groups)
    for a in first[len(first) // 2:]:
        split[a] = 1
    out["split_0"] = tree([0, 1, 2, 3], split)
    moved = list(groups)
    moved[first[0]] = 1
    out["moved_1attr"] = tree([0, 1, 2, 3], moved)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default="data/synthetic")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--random_trees", type=int, default=3)
    parser.add_argument("--transition", choices=("gap", "flatten"), default="gap")
    parser.add_argument("--trees", default="", help="comma-separated subset of tree names")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from pipelines import records, synthetic
    if args.data_dir == "data/synthetic":
        synthetic.ensure_generated(args.data_dir)
    meta = records.read_metadata(args.data_dir)
    if not meta.groups:
        print(f"--data_dir={args.data_dir}: dataset {meta.name!r} has no planted groups",
              file=sys.stderr)
        return 2
    index = {a: g for g, members in enumerate(meta.groups) for a in members}
    groups = [index[a] for a in meta.attribute_names]
    group_names = meta.extra.get("group_names", [str(g) for g in range(len(meta.groups))])
    trees = trees_to_compare(groups, args.random_trees)
    if args.trees:
        keep = args.trees.split(",")
        trees = {k: v for k, v in trees.items() if k in keep or k == "planted"}

    start = time.time()
    errors: Dict[str, np.ndarray] = {}  # name -> [seeds, N]
    for name, parents in trees.items():
        errors[name] = np.stack([
            train_tree_from_scratch(parents, args.data_dir, args.steps, seed,
                                    transition=args.transition)
            for seed in range(args.seeds)])
        per_group = [errors[name][:, [a for a in range(len(groups)) if groups[a] == g]].mean()
                     for g in range(len(group_names))]
        print(f"  {name:12s} done at {time.time() - start:5.0f} s  fc1={parents[3]} "
              f"conv3={parents[2]}  per group " +
              " ".join(f"{g}={e:.3f}" for g, e in zip(group_names, per_group)), flush=True)

    print(f"\nTest error over {len(groups)} attributes, {args.steps} steps of batch 64, "
          f"{args.seeds} seeds, transition={args.transition}; {meta.split_sizes}")
    header = f"{'tree':12s} {'mean error':>16s} " + " ".join(
        f"{g[:9]:>9s}" for g in group_names) + f" {'diff to planted':>22s} {'z':>6s}"
    print(header)
    base = errors["planted"].mean(1)
    s = np.sqrt(args.seeds)
    worst_z = np.inf
    for name, e in errors.items():
        per_seed = e.mean(1)
        groups_err = " ".join(
            f"{e[:, [a for a in range(len(groups)) if groups[a] == g]].mean():9.4f}"
            for g in range(len(group_names)))
        line = f"{name:12s} {per_seed.mean():8.4f} +- {per_seed.std(ddof=1) / s:.4f} {groups_err}"
        if name != "planted":
            d = per_seed - base
            se = d.std(ddof=1) / s
            z = d.mean() / se if se > 0 else np.inf * np.sign(d.mean())
            worst_z = min(worst_z, z)
            line += f" {d.mean():+9.4f} +- {se:.4f} {z:6.1f}"
        print(line)
    moved = errors.get("moved_1attr")
    print(f"\nplanted beats every other tree by >= 3 paired SE: {worst_z >= 3} "
          f"(smallest z = {worst_z:.1f})")
    if moved is not None:
        print(f"moving one attribute costs accuracy: "
              f"{moved.mean() > errors['planted'].mean()} "
              f"({moved.mean() - errors['planted'].mean():+.4f} mean error)")
    print(f"wall time {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
