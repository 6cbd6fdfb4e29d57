"""Inter-task affinity grouping on the shared supernet (Fifty et al., "Efficiently
Identifying Task Groupings for Multi-Task Learning", NeurIPS 2021, TAG, arXiv 2109.04617).

    route every attribute through one trunk (the supernet's shared tree: block 0 of every
    layer below fc1, the narrowest trunk the space has, where the attributes compete)
    for step s = 1 .. S: one training step of all attributes together
        every k-th step, on a fresh training batch:
            L_j(theta)  for every attribute j
            for every attribute i:  theta' = theta - lr * grad_theta L_i    (lookahead)
                Z_ij = 1 - L_j(theta') / L_j(theta)           (i's step helps j: Z_ij > 0)
    Z = mean over the measured steps
    tree: average linkage on max(S) - S, S = (Z + Z^T) / 2, cut at each layer's block count
          (`tree.affinity_routing`)

theta: the weights of the shared layers, every layer below fc1 (conv1 .. the top conv layer
in the `tiny` space); the layers above are each attribute's own and stay put in the
lookahead.

It is also GNAS's ``--initial_tree=affinity`` (`gnas_start`): the same measurement on the
supernet of the search, then the rounds start from the tree it gives.

What we changed, and the choices the paper leaves open (each an `AffinityConfig` field):
- Grouping. The paper picks, for a given number of groups, the partition that maximises the
  summed affinity onto each task from its group (exhaustive or branch-and-bound) and lets a
  task sit in several groups. A tree needs nested partitions with one parent each, so we use
  one dendrogram (average linkage, which merges the clusters of highest mean affinity
  first: a greedy maximiser of within-group affinity) cut at each layer's block count, as
  `tree.correlation_routing` does with label correlations. Z is symmetrised, since a tree
  shares in both directions.
- Lookahead: a plain SGD step with the training learning rate (``affinity_lookahead_lr`` 0),
  as the reference code steps with the optimizer's rate; momentum is left out. Batch norm uses
  the batch's statistics in the lookahead (training mode, as the training steps) and its
  moving statistics are restored after it; dropout is off in the lookahead, so that the two
  losses differ by the step alone.
- The measured batch is a training batch drawn apart from the training steps' (seeded by the
  measurement's position), the same batch before and after the lookahead.
- The supernet weights trained here serve the measurement only: the found tree is fine-tuned
  from fresh weights (`SearchResult.model` None), as a fixed tree is.

Resuming: `AffinityState` holds the number of measurements done and the running sum of Z;
`search` checkpoints it with the supernet after every measurement ("candidate", one
evaluation each; ``checkpoint_every`` thins them). GNAS's ``initial_tree=affinity`` repeats
the measurement after a kill inside it, from the weights of its last checkpoint, with the
same batches: the same tree.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

import numpy as np

from gnas_keras.space.architecture import Architecture
from gnas_keras.settings import require_positive, setting
from gnas_keras.training.evaluation import check_finite, segment_seed
from gnas_keras.methods.base import (Method, SearchContext, SearchLogger, SearchResult,
                                     resume)
from gnas_keras.space.tree import Routing, affinity_routing, shared_routing

if TYPE_CHECKING:
    from gnas_keras.models.supernet import Supernet
    from gnas_keras.training.loop import Loop


@dataclasses.dataclass
class AffinityConfig:
    affinity_steps: int = setting(600, "Inter-task affinity: supernet training steps on the "
                                       "shared trunk while affinities are measured.")
    affinity_every: int = setting(10, "Inter-task affinity: measure the affinities every "
                                      "this many training steps.")
    affinity_lookahead_lr: float = setting(0.0, "Inter-task affinity: step size of the "
                                                "lookahead (0: the training learning rate).")

    def validate(self) -> None:
        require_positive(self, "affinity_steps", "affinity_every")
        if self.affinity_steps < self.affinity_every:
            raise ValueError(f"affinity_steps: must be >= affinity_every "
                             f"({self.affinity_every}), got {self.affinity_steps}")
        if self.affinity_lookahead_lr < 0:
            raise ValueError(f"affinity_lookahead_lr: must be >= 0, got "
                             f"{self.affinity_lookahead_lr}")

    @property
    def measurements(self) -> int:
        return self.affinity_steps // self.affinity_every


@dataclasses.dataclass
class AffinityState:
    """Everything but the weights that the measurement needs after a restart."""

    rng_state: Optional[Dict] = None
    evaluations: int = 0               # measurements done
    elapsed: float = 0.0
    affinity_sum: Optional[List[List[float]]] = None   # sum of Z over the measurements

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict) -> "AffinityState":
        return cls(**d)

    def mean(self) -> np.ndarray:
        return np.asarray(self.affinity_sum) / max(self.evaluations, 1)


def per_attribute_losses(labels, logits):
    """Mean 2-class cross-entropy of every attribute over its labelled examples, float [N]
    (labels int [batch, N] with -1 unknown, logits [batch, N, 2])."""
    import tensorflow as tf
    labels = tf.cast(labels, tf.int32)
    mask = tf.cast(labels >= 0, tf.float32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(labels, 0),
                                                        logits=logits)
    return tf.reduce_sum(ce * mask, axis=0) / tf.maximum(tf.reduce_sum(mask, axis=0), 1.0)


def make_lookahead(supernet: "Supernet"):
    """The compiled measurement ``lookahead(images, labels, lr) -> Z`` float [N, N] on the
    supernet's current routing (module docstring); every weight and batch-norm statistic is
    as before it afterwards."""
    import tensorflow as tf
    from gnas_keras.models.base import normalize_images
    from gnas_keras.models.supernet import RoutedConv

    shared_layers = supernet.routed_layers[:supernet.space.grouping_layer + 1]
    shared = [v for layer in shared_layers for v in layer.trainable_variables]
    statistics = [v for layer in shared_layers if isinstance(layer, RoutedConv)
                  for v in (layer.moving_mean, layer.moving_variance)]
    n = supernet.num_attributes

    def losses(images, labels):
        stack = normalize_images(images)[None]
        for layer in supernet.routed_layers:  # batch statistics, no dropout
            stack = layer(stack, training=isinstance(layer, RoutedConv))
        return per_attribute_losses(labels, tf.cast(tf.transpose(stack, [1, 0, 2]),
                                                    tf.float32))

    @tf.function
    def lookahead(images, labels, lr):
        kept = [tf.identity(v.value) for v in shared + statistics]
        with tf.GradientTape(persistent=True) as tape:
            before = losses(images, labels)
            per_task = [before[i] for i in range(n)]
        grads = [[tf.convert_to_tensor(g) for g in tape.gradient(per_task[i], shared)]
                 for i in range(n)]
        del tape
        after = []
        for i in range(n):
            for v, value, g in zip(shared, kept, grads[i]):
                v.assign(value - lr * g)
            after.append(losses(images, labels))
        for v, value in zip(shared + statistics, kept):
            v.assign(value)
        return 1.0 - tf.stack(after) / before[None, :]

    return lookahead


def measure(loop: "Loop", train_data: Callable[[int], object], config: AffinityConfig,
            seed: int, state: AffinityState, save: Callable[[str], None],
            logger: SearchLogger) -> np.ndarray:
    """Trains `loop`'s supernet on the shared trunk and measures the affinities, continuing
    from `state` (``save("candidate")`` after each measurement); returns the mean Z [N, N]."""
    import tensorflow as tf
    model = loop.model
    n = model.num_attributes
    model.set_routing(shared_routing(model.space, n))
    lookahead = make_lookahead(model)
    if state.affinity_sum is None:
        state.affinity_sum = np.zeros((n, n)).tolist()
    while state.evaluations < config.measurements:
        m = state.evaluations
        loop.restart(7, m)
        check_finite(loop.train(config.affinity_every), f"affinity step "
                                                         f"{(m + 1) * config.affinity_every}")
        images, labels = next(iter(train_data(segment_seed(seed, 8, m))))
        lr = config.affinity_lookahead_lr or loop.learning_rate
        z = lookahead(images, labels, tf.constant(lr, tf.float32)).numpy()
        if not np.isfinite(z).all():  # a loss of 0 before the step: nothing to measure
            z = np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)
        state.affinity_sum = (np.asarray(state.affinity_sum) + z).tolist()
        state.evaluations = m + 1
        if state.evaluations % max(1, config.measurements // 10) == 0:  # ~10 lines
            mean = state.mean()
            logger.progress(f"affinity step {state.evaluations * config.affinity_every}/"
                            f"{config.measurements * config.affinity_every}  mean Z "
                            f"{mean.mean():+.4f}  off-diagonal {_off_diagonal(mean):+.4f}")
        save("candidate")
    return state.mean()


def _off_diagonal(z: np.ndarray) -> float:
    n = len(z)
    return float((z.sum() - np.trace(z)) / max(n * n - n, 1))


def gnas_start(context: SearchContext) -> Callable[[], Routing]:
    """GNAS's ``initial_tree=affinity``: () -> the tree of a measurement on the search's
    supernet, with the run's affinity settings (repeated after a kill inside it)."""
    config = context.config.methods.get("affinity") or AffinityConfig()

    def start() -> Routing:
        affinity = measure(context.loop, context.train_data, config, context.config.seed,
                           AffinityState(), lambda boundary: None, context.logger)
        return affinity_routing(context.space, context.num_attributes, affinity)

    return start


def _search(context: SearchContext) -> SearchResult:
    config: AffinityConfig = context.method_config
    saved = context.saved_state
    state = (AffinityState.from_dict(saved) if saved
             else AffinityState(rng_state=context.rng.bit_generator.state))
    _, save = resume(state, context.rng, context.checkpoint)
    affinity = measure(context.loop, context.train_data, config, context.config.seed, state,
                       save, context.logger)
    routing = affinity_routing(context.space, context.num_attributes, affinity)
    return SearchResult(Architecture.from_space(context.space, routing), None,
                        {"affinity": np.round(affinity, 6).tolist(),
                         "measurements": state.evaluations})


METHOD = Method("affinity", _search, AffinityConfig, uses_supernet=True,
                summary="Inter-task affinity (Fifty et al. 2021, TAG): lookahead affinities "
                        "on the shared trunk, clustered into a tree.")
