"""Fresh heads trained to convergence on frozen block features: the `probe_steps` reward.

GNAS+ with ``candidate_training=above`` and ``fresh_heads`` scores a candidate parent b of an
fc layer by training new heads (the searched fc layer and those above it) on b's features for
K SGD steps. Measured on the synthetic set (docs/planted_set.md, "Two more sets tried, and
rewards that read what a block knows"): after K = 40 steps such heads are still near chance
for every attribute that is not close to a linear function of some channel, whatever the
block holds, so the reward ranks blocks by how *linearly* they encode an attribute and not by
what the block knows about it. Here the heads train to convergence instead: the features
below the searched layer are frozen, so they are computed once, and heads of the same shape
as the network's (one per attribute: dense + ReLU, ..., 2 logits) train full-batch with Adam
for `steps` steps on them, all attributes at once in one compiled loop. (As a search reward
it did not help there: the young blocks hold most of the slow group's trace where another
group is, and read fully that merges the two; see the same section.)

Shapes: features [examples, d] (one block's output, flattened); labels [examples, N] in
{-1 (unknown), 0, 1}; probabilities [examples, N].
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np
import tensorflow as tf

ADAM_LEARNING_RATE = 0.01
ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-7


def initial_heads(num_attributes: int, sizes: Sequence[int],
                  rng: np.random.Generator) -> List[np.ndarray]:
    """[kernel, bias] per layer, each with a leading attribute axis: kernels He-normal
    [N, d_in, d_out] (as `RoutedDense`), biases zero [N, d_out]. `sizes`: the input width
    followed by every layer's width (the last is 2, the logits)."""
    params = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        params.append(rng.normal(0.0, np.sqrt(2.0 / d_in),
                                 (num_attributes, d_in, d_out)).astype(np.float32))
        params.append(np.zeros((num_attributes, d_out), np.float32))
    return params


def _logits(params, x):
    """x [n, d] -> logits [N, n, 2] of every attribute's head."""
    h = tf.tile(x[None], [tf.shape(params[0])[0], 1, 1])
    layers = len(params) // 2
    for i in range(layers):
        h = tf.einsum("and,ade->ane", h, params[2 * i]) + params[2 * i + 1][:, None, :]
        if i < layers - 1:
            h = tf.nn.relu(h)
    return h


@tf.function(reduce_retracing=True)
def _fit(params, x, labels, steps, weight_decay):
    """Full-batch Adam on the masked mean cross-entropy of every head (each head's loss is
    its own: the heads share nothing) plus an L2 term on the kernels."""
    known = tf.cast(labels >= 0, tf.float32)                     # [n, N]
    targets = tf.transpose(tf.maximum(labels, 0))                 # [N, n]
    weights = tf.transpose(known) / tf.maximum(tf.reduce_sum(known, 0), 1.0)[:, None]
    b1, b2 = ADAM_BETAS

    def step(t, params, m, v):
        with tf.GradientTape() as tape:
            tape.watch(params)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, _logits(params, x))
            loss = tf.reduce_sum(ce * weights) + 0.5 * weight_decay * tf.add_n(
                [tf.reduce_sum(p ** 2) for p in params[0::2]])
        grads = tape.gradient(loss, params)
        t = t + 1.0
        m = [b1 * mi + (1 - b1) * g for mi, g in zip(m, grads)]
        v = [b2 * vi + (1 - b2) * g ** 2 for vi, g in zip(v, grads)]
        scale = ADAM_LEARNING_RATE * tf.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        params = [p - scale * mi / (tf.sqrt(vi) + ADAM_EPSILON)
                  for p, mi, vi in zip(params, m, v)]
        return t, params, m, v

    zeros = [tf.zeros_like(p) for p in params]
    _, params, _, _ = tf.while_loop(lambda t, *_: t < tf.cast(steps, tf.float32), step,
                                    (tf.constant(0.0), list(params), zeros, list(zeros)))
    return params


def fit_heads(train_features: np.ndarray, train_labels: np.ndarray,
              test_features: np.ndarray, hidden: Sequence[int], steps: int,
              rng: np.random.Generator, weight_decay: float = 1e-4) -> np.ndarray:
    """Trains one head per attribute on `train_features` [n, d] / `train_labels` [n, N] and
    returns its probabilities [m, N] that each attribute is present on `test_features`.

    hidden: the widths of the heads' hidden layers (the network's fc widths above the
      searched layer's input, e.g. (16, 16) in the `tiny` space); the last layer has 2 logits.
    The features are standardised with the training examples' mean and standard deviation
    (the network's fc layers see batch-normalised conv outputs; a probe of an unnormalised
    block would otherwise be judged by its scale)."""
    train_features = train_features.reshape(len(train_features), -1).astype(np.float32)
    test_features = test_features.reshape(len(test_features), -1).astype(np.float32)
    mean = train_features.mean(axis=0)
    std = train_features.std(axis=0) + 1e-6
    x = (train_features - mean) / std
    params = initial_heads(train_labels.shape[1], [x.shape[1], *hidden, 2], rng)
    params = _fit([tf.constant(p) for p in params], tf.constant(x),
                  tf.constant(train_labels, tf.int32), tf.constant(steps),
                  tf.constant(weight_decay, tf.float32))
    logits = _logits(params, tf.constant((test_features - mean) / std))
    return tf.transpose(tf.nn.softmax(logits)[..., 1]).numpy()
