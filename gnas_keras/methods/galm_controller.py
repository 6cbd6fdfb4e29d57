"""GALM's controller: ARM + MNAS trained by REINFORCE (Cheng et al. 2018, sec. 3.3-3.5, 4.1).

ARM (sec. 3.3, Eq. 1): every attribute i has a learned, randomly initialised embedding e_i;
a 50-unit fully connected layer without bias or activation gives its representation
``ê_i = W e_i``. ê_i conditions the search and, by cosine similarity, measures how
correlated two attributes are (Fig. 5, Table 5) and which learned attribute a new one starts
from (sec. 3.5).

MNAS (sec. 3.4, 4.1): a 2-layer LSTM with 100 units that emits an attribute's action sequence
(`galm_space.GalmSpace.action_counts`, ten decisions for Table 1) one step at a time, one
softmax head per decision. "The attribute embedding (i.e. the output of ARM) is passed to
MNAS along with the selected neural architecture action embedding" (Fig. 3): the input of
step t is ``[ê_i ; emb_t(a_{t-1})]``, with a learned start vector for ``a_0`` (ENAS's
``g_emb``), and the LSTM state starts at zero. Reading "ARM embeds the attribute and the
previous action" as one linear layer over ``[e_i ; emb(a_{t-1})]`` gives the same family of
functions, since everything before the LSTM's gates is linear. All weights start uniform in
[-0.1, 0.1] ("uniformly initialized ... approximately uniform distribution over actions"; the
range is NAS's and ENAS's), drawn from one NumPy generator seeded by `ControllerConfig.seed`.

REINFORCE (Eq. 3-5, Alg. 1): batch 1 (M = 1). For a sampled attribute i and actions a_1:T
with reward r the baseline is first moved, ``b <- decay * b + (1 - decay) * r`` (Alg. 1 line
14 before line 16; ENAS's order; b starts at 0 as in ENAS), then the loss
``-(r - b) * sum_t log P(a_t | a_<t, i)`` is minimised, which updates MNAS, W and e_i
together (Alg. 1 line 17). Learning rate 1e-4 (sec. 4.1). The paper names no optimizer and
Alg. 1 writes a plain gradient step; NAS and ENAS, whose setup it follows, use Adam, so Adam
is the default (beta_1 0.9, epsilon 1e-8: TF1's and PyTorch's defaults, not Keras' 1e-7) and
``optimizer="sgd"`` gives Alg. 1 literally. The decay is ``baseline_decay`` (ENAS: 0.99).

Determinism: sampling uses stateless ops only. Without an explicit seed, draw k of a
controller uses the seed pair ``(config.seed, k)``; k (``draws``) is a variable, so a
checkpoint holds it along with the weights, the embeddings, the optimizer slots and the
baseline (`GalmController` is a ``tf.Module``: ``tf.train.Checkpoint(controller=c)``).
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from gnas_keras.methods.galm_space import (Choice, GalmSpace, actions_to_choice,
                                           choice_to_actions)

OPTIMIZERS = ("adam", "sgd")


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
    """Sizes and training settings of ARM + MNAS.

    Attributes:
      attribute_embedding_dim: size of e_i (the paper does not say; 50, like ARM's output).
      arm_units: ARM's output size, ê_i (sec. 4.1: 50).
      action_embedding_dim: size of the previous action's embedding fed to the LSTM.
      lstm_units, lstm_layers: MNAS (sec. 4.1: 2 layers of 100).
      init_scale: every weight starts uniform in [-init_scale, init_scale].
      learning_rate: sec. 4.1: 1e-4.
      optimizer: ``adam`` or ``sgd`` (module docstring).
      adam_beta_1, adam_beta_2, adam_epsilon: Adam's settings.
      baseline_decay: the exponential moving average's decay (Eq. 5).
      seed: initial weights and the sampling seeds.
    """

    attribute_embedding_dim: int = 50
    arm_units: int = 50
    action_embedding_dim: int = 50
    lstm_units: int = 100
    lstm_layers: int = 2
    init_scale: float = 0.1
    learning_rate: float = 1e-4
    optimizer: str = "adam"
    adam_beta_1: float = 0.9
    adam_beta_2: float = 0.999
    adam_epsilon: float = 1e-8
    baseline_decay: float = 0.99
    seed: int = 0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r}: expected one of {OPTIMIZERS}")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ValueError(f"baseline_decay={self.baseline_decay}: expected 0 <= decay < 1")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate={self.learning_rate}: expected > 0")
        for name in ("attribute_embedding_dim", "arm_units", "action_embedding_dim",
                     "lstm_units", "lstm_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected >= 1")


class GalmPolicy(keras.layers.Layer):
    """ARM and MNAS: P(a_1..a_T | attribute).

    Weights: ``attribute_embeddings`` [N, attribute_embedding_dim] (the e_i), ``arm``
    (W of Eq. 1, [attribute_embedding_dim, arm_units], no bias), ``start``
    [action_embedding_dim], ``action_embeddings`` [sum(action_counts[:-1]),
    action_embedding_dim] (step t's actions are rows ``offsets[t]`` on), `lstm_layers` LSTM
    cells of `lstm_units`, ``heads`` (a dense layer to sum(action_counts) logits; columns
    ``offsets[t]`` on are step t's softmax head). One table and one head layer rather than one
    per step: the same functions, but a third of the variables, and tracing Keras' Adam
    update costs time per variable.
    """

    def __init__(self, num_attributes: int, action_counts: Sequence[int],
                 config: ControllerConfig = ControllerConfig(), **kwargs):
        super().__init__(**kwargs)
        if num_attributes < 1:
            raise ValueError(f"num_attributes={num_attributes}: expected >= 1")
        if not action_counts or any(int(c) < 1 for c in action_counts):
            raise ValueError(f"action_counts={list(action_counts)}: expected positive counts")
        self.num_attributes = int(num_attributes)
        self.action_counts = [int(c) for c in action_counts]
        self.config = config
        c = config
        self.attribute_embeddings = self.add_weight(
            shape=(self.num_attributes, c.attribute_embedding_dim), name="attribute_embeddings")
        self.arm = keras.layers.Dense(c.arm_units, use_bias=False, name="arm")
        self.arm.build((None, c.attribute_embedding_dim))
        self.start = self.add_weight(shape=(c.action_embedding_dim,), name="start")
        self.offsets = [int(x) for x in np.cumsum([0] + self.action_counts[:-1])]
        self.action_embeddings = self.add_weight(
            shape=(sum(self.action_counts[:-1]), c.action_embedding_dim),
            name="action_embeddings")
        self.cells = []
        width = c.arm_units + c.action_embedding_dim
        for layer in range(c.lstm_layers):
            cell = keras.layers.LSTMCell(c.lstm_units, name=f"lstm_{layer}")
            cell.build((None, width))
            self.cells.append(cell)
            width = c.lstm_units
        self.heads = keras.layers.Dense(sum(self.action_counts), name="heads")
        self.heads.build((None, c.lstm_units))
        self.built = True
        rng = np.random.default_rng(c.seed)
        for w in self.weights:  # a fixed order: creation order
            w.assign(rng.uniform(-c.init_scale, c.init_scale, size=w.shape).astype(np.float32))

    def get_config(self):
        return dict(super().get_config(), num_attributes=self.num_attributes,
                    action_counts=self.action_counts, config=dataclasses.asdict(self.config))

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["config"] = ControllerConfig(**config["config"])
        return cls(**config)

    def representations(self, attributes=None):
        """ê = W e for `attributes` (int tensor [K]; all N when None): [K, arm_units]."""
        e = self.attribute_embeddings
        if attributes is not None:
            e = tf.gather(e, attributes)
        return tf.matmul(e, self.arm.kernel)

    def run(self, attribute, mode: str, seed=None, actions=None):
        """One pass over the T decisions for one attribute.

        attribute: int32 scalar. mode: ``sample`` (stateless categorical draws, `seed`: int
        [2]), ``greedy`` (argmax) or ``score`` (teacher-forced on `actions`, int32 [T]).
        Returns (actions int32 [T], log P(actions | attribute) float32 scalar).
        """
        rep = self.representations(tf.reshape(attribute, [1]))  # [1, arm_units]
        prev = tf.expand_dims(self.start, 0)  # [1, action_embedding_dim]
        states = [[tf.zeros([1, self.config.lstm_units])] * 2 for _ in self.cells]
        seeds = (tf.random.experimental.stateless_split(seed, num=len(self.action_counts))
                 if mode == "sample" else None)
        chosen, log_prob = [], tf.constant(0.0)
        for t, count in enumerate(self.action_counts):
            x = tf.concat([rep, prev], axis=1)
            for layer, cell in enumerate(self.cells):
                x, states[layer] = _lstm_step(cell, x, states[layer])
            columns = slice(self.offsets[t], self.offsets[t] + count)
            logits = (tf.matmul(x, self.heads.kernel[:, columns])
                      + self.heads.bias[columns])  # [1, count]
            if mode == "sample":
                a = tf.random.stateless_categorical(logits, 1, seed=seeds[t],
                                                    dtype=tf.int32)[0, 0]
            elif mode == "greedy":
                a = tf.argmax(logits[0], output_type=tf.int32)
            else:
                a = actions[t]
            log_prob += tf.nn.log_softmax(logits[0])[a]
            chosen.append(a)
            if t + 1 < len(self.action_counts):
                prev = tf.gather(self.action_embeddings, tf.reshape(a + self.offsets[t], [1]))
        return tf.stack(chosen), log_prob


def _lstm_step(cell: keras.layers.LSTMCell, x, state):
    """Keras' LSTMCell arithmetic (gates i, f, c, o; sigmoid and tanh) on the cell's own
    weights, as plain TF ops: through Keras' call machinery, tracing the unrolled REINFORCE
    step took about 1.4x as long (two interleaved pairs of runs on a loaded CPU).
    Returns (h, [h, c])."""
    h, c = state
    z = tf.matmul(x, cell.kernel) + tf.matmul(h, cell.recurrent_kernel) + cell.bias
    i, f, g, o = tf.split(z, 4, axis=1)
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    h = tf.sigmoid(o) * tf.tanh(c)
    return h, [h, c]


@dataclasses.dataclass(frozen=True)
class UpdateResult:
    """What one REINFORCE step did: the baseline after the reward moved it, the advantage
    r - b, and log P of the actions before the step."""

    baseline: float
    advantage: float
    log_prob: float


class GalmController(tf.Module):
    """Samples per-attribute architectures of a `GalmSpace` and learns from their rewards.

    Checkpointable state (``tf.train.Checkpoint(controller=this)``): ``policy`` (MNAS, ARM,
    the embeddings), ``optimizer`` (its slots and iteration count), ``baseline`` (float32) and
    ``draws`` (int64, how many seedless samples were drawn).
    """

    def __init__(self, space: GalmSpace, num_attributes: int,
                 config: ControllerConfig = ControllerConfig(), name: str = "galm_controller"):
        super().__init__(name=name)
        self.space = space
        self.config = config
        self.policy = GalmPolicy(num_attributes, space.action_counts, config)
        if config.optimizer == "adam":
            self.optimizer = keras.optimizers.Adam(
                learning_rate=config.learning_rate, beta_1=config.adam_beta_1,
                beta_2=config.adam_beta_2, epsilon=config.adam_epsilon)
        else:
            self.optimizer = keras.optimizers.SGD(learning_rate=config.learning_rate)
        self.optimizer.build(self.policy.trainable_variables)
        self.baseline = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="baseline")
        self.draws = tf.Variable(0, dtype=tf.int64, trainable=False, name="draws")
        num_steps = len(space.action_counts)
        attribute = tf.TensorSpec([], tf.int32)
        actions = tf.TensorSpec([num_steps], tf.int32)
        # One trace each: the attribute, seed, actions and reward are tensors.
        self._sample = tf.function(
            lambda a, s: self.policy.run(a, "sample", seed=s),
            input_signature=[attribute, tf.TensorSpec([2], tf.int64)], autograph=False)
        self._greedy = tf.function(lambda a: self.policy.run(a, "greedy"),
                                   input_signature=[attribute], autograph=False)
        self._score = tf.function(lambda a, x: self.policy.run(a, "score", actions=x)[1],
                                  input_signature=[attribute, actions], autograph=False)
        self._update = tf.function(self._reinforce_step, input_signature=[
            attribute, actions, tf.TensorSpec([], tf.float32)], autograph=False)

    @property
    def num_attributes(self) -> int:
        return self.policy.num_attributes

    def _check(self, attribute: int) -> tf.Tensor:
        if not 0 <= int(attribute) < self.num_attributes:
            raise ValueError(f"attribute={attribute}: expected 0 <= attribute < "
                             f"{self.num_attributes}")
        return tf.constant(int(attribute), tf.int32)

    # ---- sampling ----

    def sample(self, attribute: int, seed: Optional[Sequence[int]] = None
               ) -> Tuple[Choice, float]:
        """A sampled architecture for `attribute` and its log-probability.

        seed: two ints; None draws the controller's next seed ``(config.seed, draws)`` and
        counts the draw, so a restored checkpoint continues the same sequence."""
        if seed is None:
            seed = (self.config.seed, int(self.draws.numpy()))
            self.draws.assign_add(1)
        seed = tf.constant([int(s) for s in seed], tf.int64)
        actions, log_prob = self._sample(self._check(attribute), seed)
        return actions_to_choice(self.space, actions.numpy()), float(log_prob)

    def most_probable(self, attribute: int) -> Choice:
        """The greedy decode: the most probable action at every step (sec. 4.1's final
        architecture)."""
        actions, _ = self._greedy(self._check(attribute))
        return actions_to_choice(self.space, actions.numpy())

    def log_prob(self, attribute: int, choice: Choice) -> float:
        """log P(choice | attribute)."""
        actions = tf.constant(choice_to_actions(self.space, choice), tf.int32)
        return float(self._score(self._check(attribute), actions))

    # ---- learning ----

    def _reinforce_step(self, attribute, actions, reward):
        d = self.config.baseline_decay
        self.baseline.assign(d * self.baseline + (1.0 - d) * reward)
        advantage = reward - self.baseline
        variables = self.policy.trainable_variables
        with tf.GradientTape() as tape:
            _, log_prob = self.policy.run(attribute, "score", actions=actions)
            loss = -tf.stop_gradient(advantage) * log_prob
        grads = tape.gradient(loss, variables)
        self.optimizer.apply(grads, variables)
        return self.baseline.read_value(), advantage, log_prob

    def update(self, attribute: int, choice: Choice, reward: float) -> UpdateResult:
        """One REINFORCE step (Eq. 5, M = 1) on `choice` sampled for `attribute` and its
        `reward` (e.g. validation accuracy)."""
        reward = float(reward)
        if not np.isfinite(reward):
            raise ValueError(f"reward={reward}: expected a finite number")
        actions = tf.constant(choice_to_actions(self.space, choice), tf.int32)
        b, adv, lp = self._update(self._check(attribute), actions, tf.constant(reward))
        return UpdateResult(float(b), float(adv), float(lp))

    # ---- ARM: representations, growth, transfer ----

    def representations(self) -> np.ndarray:
        """ê_i of every attribute: [N, arm_units]."""
        return self.policy.representations().numpy()

    def add_attributes(self, count: int) -> "GalmController":
        """A new controller with `count` more attributes (indices N..N+count-1): the same
        weights, embeddings, baseline and draw count; the new embeddings random like any
        initial one (drawn from ``config.seed + N``); a fresh optimizer, since the grown
        table has new shapes and the search that follows is a new one. Initialise the new
        rows from learned ones with `init_from_nearest`."""
        if count < 1:
            raise ValueError(f"count={count}: expected >= 1")
        grown = GalmController(self.space, self.num_attributes + count, self.config,
                               name=self.name)
        old_table = self.policy.attribute_embeddings.numpy()
        rng = np.random.default_rng(self.config.seed + self.num_attributes)
        new_rows = rng.uniform(-self.config.init_scale, self.config.init_scale,
                               size=(count, old_table.shape[1])).astype(np.float32)
        for old, new in zip(self.policy.weights, grown.policy.weights):
            if old is self.policy.attribute_embeddings:
                new.assign(np.concatenate([old_table, new_rows]))
            else:
                new.assign(old.numpy())
        grown.baseline.assign(self.baseline)
        grown.draws.assign(self.draws)
        return grown

    def init_from_nearest(self, new_attributes: Sequence[int], source_attributes: Sequence[int],
                          similarity: Optional[np.ndarray] = None) -> List[int]:
        """Sets each new attribute's embedding e to a copy of its most correlated source
        attribute's (sec. 3.5, Alg. 1 lines 7-8) and returns the sources chosen.

        similarity: [len(new), len(source)], e.g. label co-occurrence on shared images; None
        uses the paper's rule, the cosine between ê of the new attributes (their current,
        e.g. random, embeddings) and ê of the sources."""
        new_attributes = [int(a) for a in new_attributes]
        source_attributes = [int(a) for a in source_attributes]
        for a in new_attributes + source_attributes:
            self._check(a)
        if similarity is None:
            reps = self.representations()
            similarity = cosine_similarity(reps[new_attributes], reps[source_attributes])
        picks = nearest_sources(similarity)
        chosen = [source_attributes[p] for p in picks]
        table = self.policy.attribute_embeddings.numpy()
        table[new_attributes] = table[chosen]
        self.policy.attribute_embeddings.assign(table)
        return chosen


# ---- analysis of the embeddings ----

def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[K, d] x [M, d] -> [K, M] cosines; a zero row has similarity 0 to everything."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected [K, d] and [M, d], got {a.shape} and {b.shape}")

    def unit(x):
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(n == 0, 1.0, n)

    return unit(a) @ unit(b).T


def nearest_sources(similarity: np.ndarray) -> np.ndarray:
    """For each row (a new attribute), the column (source) of highest similarity; ties go
    to the lowest index."""
    similarity = np.asarray(similarity)
    if similarity.ndim != 2 or similarity.shape[1] == 0:
        raise ValueError(f"similarity: expected [new, sources] with sources >= 1, got "
                         f"{similarity.shape}")
    return np.argmax(similarity, axis=1)


def attribute_correlation(representations: np.ndarray) -> np.ndarray:
    """The learned attribute-correlation matrix (Fig. 5, Table 5): cosine similarity of
    the ARM representations ê, [N, N]."""
    return cosine_similarity(representations, representations)


def cluster_embeddings(representations: np.ndarray, num_clusters: int) -> np.ndarray:
    """Average-linkage agglomerative clustering on cosine distance (scipy's hierarchy),
    cut into `num_clusters` clusters: labels [N] in 1..num_clusters."""
    from scipy.cluster import hierarchy
    reps = np.asarray(representations, np.float64)
    if reps.shape[0] < 2:
        return np.ones(reps.shape[0], np.int64)
    distance = np.clip(1.0 - attribute_correlation(reps), 0.0, 2.0)
    condensed = distance[np.triu_indices(len(reps), k=1)]
    tree = hierarchy.linkage(condensed, method="average")
    return hierarchy.fcluster(tree, t=num_clusters, criterion="maxclust")


def embedding_ari(representations: np.ndarray, groups: Sequence[int]) -> float:
    """ARI between clustering the embeddings into as many clusters as there are groups and
    the given groups (e.g. the synthetic set's planted ones)."""
    from gnas_keras.space.tree import adjusted_rand_index
    groups = np.asarray(groups)
    if len(groups) != len(representations):
        raise ValueError(f"groups: {len(groups)} labels for {len(representations)} attributes")
    labels = cluster_embeddings(representations, len(np.unique(groups)))
    return adjusted_rand_index(labels, groups)
