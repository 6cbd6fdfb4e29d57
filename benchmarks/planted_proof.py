"""Proof that the synthetic set's best tree of the `tiny` space is the planted tree.

Trains a set of fixed trees from scratch with the same budget over several seeds and prints
one table: mean test error over the 16 attributes, its standard error over seeds, and the
paired difference to the planted tree (same seed = same batches) in units of its paired
standard error. The trees:

- ``planted``: each planted group under its own conv3 block (and its own conv2 block).
- ``random_i``: every searched block's parent drawn uniformly (as `random_tree` does).
- ``shared``: one trunk, every searched block under block 0.
- ``merged_a+b``: groups a and b under one conv3 block, the others as planted (one block
  unused).
- ``split_0``: half of group 0 under group 1's block.
- ``moved_0>b``: one attribute of group 0 under group b's block.

    nice -n 10 python -m benchmarks.planted_proof --data_dir=data/synthetic

The one dependency on how a tree is built and trained is `train_tree_from_scratch`. For now
it is a plain TensorFlow network (`TinyTreeNet`) that reproduces the `tiny` space's blocks
(conv k x k without bias, batch norm, ReLU, 2x2/2 max-pool; dense per fc block, ReLU except
the logits), the proposed global average pool of each conv3 block at the conv -> fc
transition, and the library's training recipe (SGD with Nesterov momentum 0.9, L2 on the
weights in the loss, He-normal fan-in initialisation, batch norm with PyTorch's momentum and
epsilon); the core's tree network can replace it later.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Dict, List, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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

        def decode(serialized):
            parsed = tf.io.parse_single_example(serialized, spec)
            return tf.io.decode_png(parsed["image"], channels=3), parsed["attributes"]

        images, labels = [], []
        for x, y in tf.data.TFRecordDataset(files).map(
                decode, num_parallel_calls=tf.data.AUTOTUNE).batch(4096):
            images.append(x.numpy())
            labels.append(y.numpy())
        _CACHE[key] = (np.concatenate(images), np.concatenate(labels))
    return _CACHE[key]


# --- the one library-facing function -----------------------------------------------------
def _he_normal(rng: np.random.Generator, shape, fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


class TinyTreeNet(tf.Module):
    """Every tree of the tiny space as one static network whose two searched routings (conv3
    over conv2, fc1 over conv3) are int variables read in the graph, so one traced training
    step serves every tree. A block's output depends only on its own weights and its
    parent's output, so for the blocks that have attributes below them this computes exactly
    what a network built from those blocks alone computes (the others are computed, unused).

    Blocks: conv k x k without bias -> batch norm (per channel) -> ReLU -> 2x2/2 max-pool;
    fc: dense, ReLU except on the logits. conv2's blocks all read conv1's single block, so
    they run as one convolution with ``blocks * channels`` filters (batch norm is per
    channel, so this is the same computation). Input: images [batch, H, W, 3] in [0, 255];
    output: logits [batch, N, 2].
    """

    def __init__(self, num_attributes: int, image_shape, transition: str,
                 bn_momentum: float, bn_epsilon: float):
        super().__init__()
        c1, c2, c3, fc1, fc2, _ = TINY
        assert (c1.blocks, fc1.blocks, fc2.blocks) == (1, 0, 0)
        self.n = num_attributes
        self.b2, self.b3 = c2.blocks, c3.blocks
        self.transition, self.momentum, self.epsilon = transition, bn_momentum, bn_epsilon
        side = image_shape[0] // 8  # three 2x2 max-pools
        din = c3.channels if transition == "gap" else side * side * c3.channels
        n = num_attributes
        # (name, shape, fan_in or None for BN/bias values)
        self.shapes = {
            "k1": ((c1.kernel, c1.kernel, 3, c1.channels), c1.kernel ** 2 * 3),
            "k2": ((c2.kernel, c2.kernel, c1.channels, c2.blocks * c2.channels),
                   c2.kernel ** 2 * c1.channels),
            "k3": ((c3.blocks, c3.kernel, c3.kernel, c2.channels, c3.channels),
                   c3.kernel ** 2 * c2.channels),
            "w1": ((n, din, fc1.channels), din),
            "w2": ((n, fc1.channels, fc2.channels), fc1.channels),
            "w3": ((n, fc2.channels, 2), fc2.channels),
            "g1": ((c1.channels,), None), "g2": ((c2.blocks * c2.channels,), None),
            "g3": ((c3.blocks, c3.channels), None),
            "beta1": ((c1.channels,), None), "beta2": ((c2.blocks * c2.channels,), None),
            "beta3": ((c3.blocks, c3.channels), None),
            "bias1": ((n, fc1.channels), None), "bias2": ((n, fc2.channels), None),
            "bias3": ((n, 2), None),
        }
        self.params = {k: tf.Variable(tf.zeros(s), name=k) for k, (s, _) in self.shapes.items()}
        self.velocity = {k: tf.Variable(tf.zeros(s)) for k, (s, _) in self.shapes.items()}
        self.stats = {f"{k}{i}": tf.Variable(tf.zeros(self.shapes[f"g{i}"][0]), trainable=False)
                      for i in (1, 2, 3) for k in ("mean", "var")}
        self.conv3_parents = tf.Variable(tf.zeros([self.b3], tf.int32), trainable=False)
        self.fc1_parents = tf.Variable(tf.zeros([n], tf.int32), trainable=False)

    def reset(self, parents_per_layer, seed: int) -> None:
        """Fresh weights (He-normal fan-in kernels, BN gamma 1 and beta 0, zero biases, zero
        momentum) drawn from `seed`, and the routing."""
        rng = np.random.default_rng(seed)
        for k, (shape, fan_in) in self.shapes.items():
            value = (_he_normal(rng, shape, fan_in) if fan_in else
                     np.ones(shape, np.float32) if k.startswith("g") else
                     np.zeros(shape, np.float32))
            self.params[k].assign(value)
            self.velocity[k].assign(tf.zeros(shape))
        for k, v in self.stats.items():
            v.assign(tf.ones(v.shape) if k.startswith("var") else tf.zeros(v.shape))
        self.conv3_parents.assign(np.asarray(parents_per_layer[2], np.int32))
        self.fc1_parents.assign(np.asarray(parents_per_layer[3], np.int32))

    def _bn_relu(self, y, i: int, training: bool):
        """Batch norm with statistics per block and channel, then ReLU. `y` is
        [batch, h, w, C] (statistics [C]) or a block stack [B, batch, h, w, C] ([B, C])."""
        p = self.params
        stack = len(y.shape) == 5
        if training:
            mean, var = tf.nn.moments(y, axes=[1, 2, 3] if stack else [0, 1, 2])
            m = self.momentum
            self.stats[f"mean{i}"].assign(m * self.stats[f"mean{i}"] + (1 - m) * mean)
            self.stats[f"var{i}"].assign(m * self.stats[f"var{i}"] + (1 - m) * var)
        else:
            mean, var = self.stats[f"mean{i}"], self.stats[f"var{i}"]
        r = (lambda t: t[:, None, None, None, :]) if stack else (lambda t: t)  # noqa: E731
        y = tf.nn.batch_normalization(y, r(mean), r(var), r(p[f"beta{i}"]), r(p[f"g{i}"]),
                                      self.epsilon)
        return tf.nn.relu(y)

    def __call__(self, images, training: bool):
        p = self.params
        pool = lambda t: tf.nn.max_pool2d(t, 2, 2, "VALID")  # noqa: E731
        x = images / 127.5 - 1.0
        x = pool(self._bn_relu(tf.nn.conv2d(x, p["k1"], 1, "SAME"), 1, training))
        x = pool(self._bn_relu(tf.nn.conv2d(x, p["k2"], 1, "SAME"), 2, training))
        batch, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
        stack = tf.transpose(tf.reshape(x, [batch, h, w, self.b2, -1]), [3, 0, 1, 2, 4])
        inputs = tf.gather(stack, self.conv3_parents)  # [B3, batch, h, w, C2]
        y = tf.stack([tf.nn.conv2d(inputs[j], p["k3"][j], 1, "SAME") for j in range(self.b3)])
        y = self._bn_relu(y, 3, training)
        y = tf.reshape(pool(tf.reshape(y, [-1, h, w, y.shape[-1]])),
                       [self.b3, batch, h // 2, w // 2, y.shape[-1]])
        if self.transition == "gap":  # the conv -> fc transition
            y = tf.reduce_mean(y, axis=[2, 3])
        else:
            y = tf.reshape(y, [self.b3, batch, -1])
        z = tf.gather(y, self.fc1_parents)  # [N, batch, din]
        z = tf.nn.relu(tf.matmul(z, p["w1"]) + p["bias1"][:, None])
        z = tf.nn.relu(tf.matmul(z, p["w2"]) + p["bias2"][:, None])
        z = tf.matmul(z, p["w3"]) + p["bias3"][:, None]
        return tf.transpose(z, [1, 0, 2])


_NETS: Dict[tuple, tuple] = {}


def _net_and_functions(num_attributes, image_shape, transition, bn_momentum, bn_epsilon,
                       learning_rate, weight_decay):
    """One `TinyTreeNet` and its traced train/predict functions per configuration."""
    key = (num_attributes, tuple(image_shape), transition, bn_momentum, bn_epsilon,
           learning_rate, weight_decay)
    if key not in _NETS:
        net = TinyTreeNet(num_attributes, image_shape, transition, bn_momentum, bn_epsilon)
        names = list(net.params)

        @tf.function
        def train_step(images, labels):
            weights = [net.params[k] for k in names]
            with tf.GradientTape() as tape:
                logits = net(images, training=True)
                ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=labels, logits=logits))
                # L2 in the loss on every weight (PyTorch's SGD weight_decay, as the core).
                loss = ce + 0.5 * weight_decay * tf.add_n(
                    [tf.reduce_sum(w * w) for w in weights])
            grads = tape.gradient(loss, weights)
            for k, w, g in zip(names, weights, grads):
                v = net.velocity[k]  # Keras' SGD with Nesterov momentum 0.9
                v.assign(0.9 * v - learning_rate * g)
                w.assign_add(0.9 * v - learning_rate * g)
            return ce

        predict = tf.function(lambda images: tf.argmax(net(images, training=False), -1,
                                                       output_type=tf.int32))
        _NETS[key] = (net, train_step, predict)
    return _NETS[key]


def train_tree_from_scratch(parents_per_layer: Sequence[Sequence[int]], data_dir: str,
                            steps: int, seed: int, *, batch_size: int = 64,
                            learning_rate: float = 0.1, weight_decay: float = 1e-4,
                            transition: str = "gap", bn_momentum: float = 0.9,
                            bn_epsilon: float = 1e-5, eval_split: str = "test") -> np.ndarray:
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
    num_attributes = labels.shape[1]
    net, train_step, predict = _net_and_functions(
        num_attributes, images.shape[1:], transition, bn_momentum, bn_epsilon,
        learning_rate, weight_decay)
    net.reset(parents_per_layer, seed)
    rng = np.random.default_rng(seed)
    order = np.zeros(0, np.int64)
    for _ in range(steps):
        if len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(len(images))])
        idx, order = order[:batch_size], order[batch_size:]
        train_step(tf.constant(images[idx], tf.float32), tf.constant(labels[idx], tf.int32))
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
        out[f"random_{i}"] = tree(rng.integers(0, 4, 4).tolist(), rng.integers(0, 4, n).tolist())
    out["shared"] = tree([0, 0, 0, 0], [0] * n)
    out["merged_0+1"] = tree([0, 1, 2, 3], [0 if g == 1 else g for g in groups])
    out["merged_2+3"] = tree([0, 1, 2, 3], [2 if g == 3 else g for g in groups])
    first = [a for a in range(n) if groups[a] == 0]
    split = list(groups)
    for a in first[len(first) // 2:]:
        split[a] = 1
    out["split_0"] = tree([0, 1, 2, 3], split)
    for target in (1, 2):  # one attribute of group 0 under group 1's / group 2's block
        moved = list(groups)
        moved[first[0]] = target
        out[f"moved_0>{target}"] = tree([0, 1, 2, 3], moved)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default="data/synthetic")
    parser.add_argument("--steps", type=int, default=300)
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
    for name in [k for k in errors if k.startswith("moved")]:
        cost = errors[name].mean() - errors["planted"].mean()
        print(f"{name}: moving one attribute costs accuracy: {cost > 0} ({cost:+.4f} mean "
              "error)")
    print(f"wall time {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
