"""Differentiable routing on the shared supernet (Guo, Lee, Ulbricht, "Learning to Branch
for Multi-Task Learning", ICML 2020).

    for every searched layer l: logits alpha_l [B_l, B_{l-1}], zero (all parents alike)
    for step s = 1 .. S:
        tau = tau_0 * (tau_S / tau_0) ** (s / S)                      (annealed)
        w_l = softmax((alpha_l + g) / tau) per block, g ~ Gumbel(0, 1) (drawn every step)
        block j of layer l reads  sum_p w_l[j, p] * (edge p -> j's output)
        one step of the run's optimizer on the weights (loss + L2) and one Adam step on alpha
    the tree: every block's parent argmax_p alpha_l[j, p]

It trains on the supernet of the run (`Supernet.soft_routing`: a trace-time switch, the hard
path is untouched), and the fine-tune continues from the supernet on the found tree, as
after GNAS.

What we changed, and the choices the paper leaves open (each a `SoftRoutingConfig` field):
- Weights. In Learning to Branch a child node owns one set of weights and reads the mixture
  of its candidate parents' outputs; here weights belong to edges (the supernet's W[A_ij],
  as GNAS has them), so every edge (p, j) computes its own output from parent p and block j
  mixes the edges' outputs. One-hot mixing weights then give exactly the hard tree, and the
  found tree keeps the weights its edges trained. It costs B_{l-1} times the edges of a
  searched layer per step (cheap in the `tiny` space: conv3 16 edges of 3 channels).
- Logit optimizer: Adam (``soft_logit_lr``, default 0.01, no weight decay), as DARTS and
  its successors train architecture weights; the paper trains them jointly with the weights
  without saying how. Both updates come from the same batch (single-level, as the paper).
- Temperature: exponential from ``soft_temperature_start`` (5) to ``soft_temperature_end``
  (0.5) over the steps, held per chunk of ``soft_chunk`` steps (a variable: never retraces).
- ``soft_warmup`` (ours, default 0): the first steps train the weights only, the logits
  frozen at zero, so every edge trains before the logits compare them (measured without
  it: the argmax tree settled within 200 steps on the edges that happened to train first;
  docs/grouping_methods.md). It is read per chunk (a partial chunk counts as warm-up).
- Gumbel noise is stateless, seeded by the run seed, the layer and a step counter that is
  checkpointed, so a resumed search draws the same noise (``--deterministic``).
- ``soft_layers`` names the layers routed softly (default every searched layer); the other
  searched layers take the widest parents (block j under block j mod B), as GNAS's
  ``search_only``.
- One replica: the soft step runs on the default strategy (`search` refuses others).

Resuming: `SoftRoutingState` holds the steps done, the tree after every chunk and the random
generator's state; the logits, their Adam slots, the temperature and the noise counter are a
trackable (`Method.trackables`) checkpointed with the supernet after every chunk
("candidate", one evaluation per chunk).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any, Dict, List

import numpy as np

from gnas_keras.space.architecture import Architecture
from gnas_keras.settings import require_positive, setting
from gnas_keras.training.evaluation import NumericalError, segment_seed
from gnas_keras.methods.base import Method, SearchContext, SearchResult, resume
from gnas_keras.space.tree import Routing, independent_routing

if TYPE_CHECKING:
    from gnas_keras.models.supernet import Supernet


@dataclasses.dataclass
class SoftRoutingConfig:
    soft_steps: int = setting(600, "Differentiable routing: training steps with soft "
                                   "(Gumbel-softmax) parents.")
    soft_chunk: int = setting(50, "Differentiable routing: steps between checkpoints, "
                                  "temperature updates and tree readings.")
    soft_temperature_start: float = setting(5.0, "Differentiable routing: Gumbel-softmax "
                                                 "temperature at the first step.")
    soft_temperature_end: float = setting(0.5, "Differentiable routing: temperature at the "
                                               "last step (exponential schedule).")
    soft_logit_lr: float = setting(0.01, "Differentiable routing: Adam learning rate of the "
                                         "parent logits.")
    soft_warmup: int = setting(0, "Differentiable routing: of soft_steps, the first steps "
                                  "train the weights only, the logits frozen at zero (every "
                                  "parent alike, Gumbel noise at the start temperature).")
    soft_layers: str = setting("", "Differentiable routing: comma-separated searched layers "
                                   "routed softly (default all); the others get the widest "
                                   "parents.")

    def validate(self) -> None:
        require_positive(self, "soft_steps", "soft_chunk", "soft_temperature_start",
                         "soft_temperature_end", "soft_logit_lr")
        if not 0 <= self.soft_warmup < self.soft_steps:
            raise ValueError(f"soft_warmup: must be in [0, soft_steps), got {self.soft_warmup}")


@dataclasses.dataclass
class ChunkResult:
    step: int                  # steps done after the chunk
    temperature: float
    train_loss: float
    routing: Routing           # argmax of the logits after the chunk
    elapsed: float

    def to_dict(self) -> Dict:
        return {"step": self.step, "temperature": self.temperature,
                "train_loss": self.train_loss,
                "tree": [list(p) for p in self.routing.parents], "elapsed": self.elapsed}

    @classmethod
    def from_dict(cls, d: Dict) -> "ChunkResult":
        return cls(d["step"], d["temperature"], d["train_loss"], Routing.from_lists(d["tree"]),
                   d["elapsed"])


@dataclasses.dataclass
class SoftRoutingState:
    """Everything but the weights and logits that the search needs after a restart."""

    rng_state: Dict
    evaluations: int = 0       # chunks done
    elapsed: float = 0.0
    results: List[ChunkResult] = dataclasses.field(default_factory=list)

    def to_dict(self) -> Dict:
        return {"rng_state": self.rng_state, "evaluations": self.evaluations,
                "elapsed": self.elapsed, "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, d: Dict) -> "SoftRoutingState":
        return cls(d["rng_state"], d["evaluations"], d["elapsed"],
                   [ChunkResult.from_dict(r) for r in d["results"]])


def soft_layers(space, num_attributes: int, names: str) -> List[int]:
    from gnas_keras.methods.gnas import searched_layers
    return searched_layers(space, num_attributes, names)


def new_logits(supernet: "Supernet", layers: List[int], learning_rate: float):
    """The trackable of the search: a `tf.Module` with ``logits`` (one [B_l, B_{l-1}]
    variable per layer of `layers`, zeros), ``temperature``, ``step`` (the noise counter)
    and ``optimizer`` (Adam, built so a checkpoint restores its slots)."""
    import keras
    import tensorflow as tf
    counts = supernet.space.block_counts(supernet.num_attributes)
    holder = tf.Module(name="soft_routing")
    holder.logits = [keras.Variable(np.zeros((counts[l], counts[l - 1]), np.float32),
                                    name=f"logits_{supernet.space.layers[l].name}")
                     for l in layers]
    holder.temperature = tf.Variable(1.0, trainable=False, name="temperature")
    holder.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="noise_step")
    holder.learning = tf.Variable(1.0, trainable=False, name="learning")  # 0: logits frozen
    holder.optimizer = keras.optimizers.Adam(learning_rate)
    holder.optimizer.build(holder.logits)
    return holder


def mixing(holder, layers: List[int], seed: int) -> Dict[int, Any]:
    """{layer: training -> parent weights [B_l, B_{l-1}]} for `Supernet.soft_routing`:
    softmax((logits + Gumbel noise) / temperature) when training, softmax(logits /
    temperature) otherwise. The noise is stateless, seeded by (seed, layer, noise step)."""
    import tensorflow as tf

    def weights_of(index: int, layer: int):
        def weights(training: bool):
            logits = holder.logits[index].value
            if training:
                u = tf.random.stateless_uniform(
                    tf.shape(logits), tf.stack([tf.constant(seed * 1000 + layer, tf.int64),
                                                holder.step]),
                    minval=1e-6, maxval=1.0 - 1e-6)
                logits = logits - tf.math.log(-tf.math.log(u))
            return tf.nn.softmax(logits / holder.temperature, axis=-1)
        return weights

    return {l: weights_of(i, l) for i, l in enumerate(layers)}


def make_soft_step(supernet: "Supernet", holder, layers: List[int], seed: int):
    """The compiled soft training step ``step(iterator) -> loss``: the model's loss (masked
    cross-entropy + L2 on every weight in use) through the soft layers; the run's optimizer
    steps the weights, Adam the logits; the noise counter advances."""
    import tensorflow as tf
    from gnas_keras.models.losses import masked_cross_entropy
    from gnas_keras.models.tf_backend import scale_gradients

    soft = mixing(holder, layers, seed)

    @tf.function
    def step(iterator):
        images, labels = next(iterator)
        with supernet.soft_routing(soft):  # read while tracing
            with tf.GradientTape() as tape:
                logits = tf.cast(supernet(images, training=True), tf.float32)
                loss = masked_cross_entropy(labels, logits)
                total = loss + 0.5 * supernet.weight_decay * supernet.l2_in_use()
            variables = supernet.trainable_variables + list(holder.logits)
            grads = tape.gradient(total, variables)
        count = len(supernet.trainable_variables)
        supernet.optimizer.apply(scale_gradients(supernet, grads[:count]),
                                 supernet.trainable_variables)
        holder.optimizer.apply([g * holder.learning for g in grads[count:]], holder.logits)
        holder.step.assign_add(1)
        return loss

    return step


def argmax_routing(supernet: "Supernet", holder, layers: List[int]) -> Routing:
    """Every soft block's most likely parent; the other searched layers the widest."""
    routing = independent_routing(supernet.space, supernet.num_attributes)
    for l, logits in zip(layers, holder.logits):
        routing = routing.with_layer(l, np.argmax(logits.numpy(), axis=1))
    return routing


def temperature_at(step: int, config: SoftRoutingConfig) -> float:
    """The start temperature through the warm-up, then exponential decay to the end one."""
    fraction = max(0, step - config.soft_warmup) / (config.soft_steps - config.soft_warmup)
    return config.soft_temperature_start * (
        config.soft_temperature_end / config.soft_temperature_start) ** fraction


def _trackables(context: SearchContext) -> Dict[str, Any]:
    config: SoftRoutingConfig = context.method_config
    layers = soft_layers(context.space, context.num_attributes, config.soft_layers)
    return {"soft_routing": new_logits(context.supernet, layers, config.soft_logit_lr)}


def _search(context: SearchContext) -> SearchResult:
    import tensorflow as tf
    config: SoftRoutingConfig = context.method_config
    supernet, holder = context.supernet, context.trackables["soft_routing"]
    if supernet.distribute_strategy.num_replicas_in_sync != 1:
        raise ValueError("soft_routing: runs on one replica (no distribution strategy)")
    layers = soft_layers(context.space, context.num_attributes, config.soft_layers)
    saved = context.saved_state
    state = (SoftRoutingState.from_dict(saved) if saved
             else SoftRoutingState(rng_state=context.rng.bit_generator.state))
    start, save = resume(state, context.rng, context.checkpoint)
    supernet.set_routing(argmax_routing(supernet, holder, layers))  # the layers not soft
    seed = context.config.seed
    step = make_soft_step(supernet, holder, layers, seed)
    chunks = -(-config.soft_steps // config.soft_chunk)
    while state.evaluations < chunks:
        done = state.evaluations * config.soft_chunk
        steps = min(config.soft_chunk, config.soft_steps - done)
        temperature = temperature_at(done, config)
        holder.temperature.assign(temperature)
        holder.learning.assign(0.0 if done < config.soft_warmup else 1.0)
        iterator = iter(context.train_data(segment_seed(seed, 9, state.evaluations)))
        losses = [float(step(iterator)) for _ in range(steps)]
        loss = float(np.mean(losses))
        if not np.isfinite(loss):
            raise NumericalError(f"training loss is {loss} at soft routing step "
                                 f"{done + steps}", f"soft routing step {done + steps}")
        routing = argmax_routing(supernet, holder, layers)
        state.results.append(ChunkResult(done + steps, temperature, loss, routing,
                                         time.time() - start))
        state.evaluations += 1
        context.logger.progress(
            f"soft routing step {done + steps}/{config.soft_steps}  temperature "
            f"{temperature:.3f}  loss {loss:.4f}  tree {[list(p) for p in routing.parents]}")
        save("candidate")
    routing = argmax_routing(supernet, holder, layers)
    supernet.set_routing(routing)
    probabilities = {supernet.space.layers[l].name: tf.nn.softmax(lg).numpy().round(4).tolist()
                     for l, lg in zip(layers, holder.logits)}
    return SearchResult(Architecture.from_space(supernet.space, routing), supernet,
                        {"chunks": [r.to_dict() for r in state.results],
                         "parent_probabilities": probabilities})


METHOD = Method("soft_routing", _search, SoftRoutingConfig, uses_supernet=True,
                trackables=_trackables,
                summary="Differentiable routing (Guo et al. 2020, Learning to Branch): "
                        "Gumbel-softmax parents trained with the weights, argmax tree.")
