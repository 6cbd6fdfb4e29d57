"""Adaptive branching (Lu et al. 2017, "Fully-adaptive Feature Sharing"), Algorithm 1.

    M = a thin-omega network: one trunk, one logits block per attribute      (sec. 3.1)
    optionally initialise M from a wider saved model by SOMP               (Alg. 2)
    for t = 1, 2, ... while t <= L and the last round branched:
        train M for iterations_per_round steps, collecting the task affinity A from
            every training batch's per-example error margins              (sec. 3.3, Eq. 6)
        the junction: the c child branches of the active layer's single block
        for d = 1..c: spectral clustering of the branches (affinity A_b, Eq. 7-8),
            loss (d - 1) L0 2^p_l + alpha L_s(g_d)                         (Eq. 9-11)
        widen: copy the block d times, one copy per group of branches      (sec. 3.2)
        the active layer moves one layer down
    the run then fine-tunes, tests, exports and reports the grown network ("train M_t with
    sufficient iterations").

The numpy parts (affinity, clustering, width selection, the widening's copies, SOMP, the
layouts) are `gnas_keras.methods.branching_ops`; this module builds the networks (a
`TreeNetwork` of an `Architecture` that grows), trains them with the shared `training.Loop`
and checkpoints the search.

Per-example predictions come from the train step itself: the model's ``report_predictions``
switch (`gnas_keras.models.base.AttributeModel`) makes ``train_step`` also return the batch's
labels and presence probabilities, and `Loop.train`'s ``on_step`` hands them to the
`TaskAffinity` accumulator: the paper's "sample averages from each training mini-batch", with
the training-mode forward pass the step already did (no second forward pass).

The model grows inside one run. Widening builds a new `TreeNetwork` of the widened
architecture under the run's strategy, copies every block's weights (and BN statistics) with
the junction's block copied d times (outputs are unchanged), and copies the optimizer's
momentum slots, iteration count and learning rate the same way. The checkpointed trackable is
one `tf.Module` whose ``model`` / ``optimizer`` attributes are reassigned after each widening,
so every checkpoint holds the current network. A resumed run rebuilds the network of the
architecture saved in the state and restores it.

Choices the paper leaves open (config fields):
- ``branch_unit_cost`` (L0): no value in the paper. Chosen by a sweep on the synthetic set
  (README, "Adaptive branching").
- the learning rate: the run's ``learning_rate`` (the shared loop's Nesterov SGD), divided by
  ``1 / lr_drop_factor`` every ``lr_drop_every`` search iterations (paper: 0.001, / 10 every
  20,000, Caffe SGD); the fine-tune continues at the search's last rate unless
  ``finetune_lr`` is set (the shared loop has no step schedule).
- p_l of Eq. 9 counts the pooling layers above the copied layer (`pooling_layers_above`).
- the k-means inside the spectral clustering is seeded from the run's generator.
- a round whose chosen d is 1 ends the widening (Alg. 1's ``d > 1`` test); so does reaching
  the second layer (the first stays one block: an `Architecture` has one block reading the
  image, where the paper could also copy conv1_1) or ``max_widening_rounds``.

Resuming: `BranchingState` (rounds done, the architecture so far, the affinity accumulator's
arrays, the generator's state, the round reports) is checkpointed after every round, with the
grown network and its optimizer. A run killed mid-round redoes that round from its start on
the same seeded data stream.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from gnas_keras.space.architecture import Architecture, BlockSpec
from gnas_keras.settings import setting
from gnas_keras.training.evaluation import Evaluation, Stream, check_finite
from gnas_keras.methods import branching_ops as ops
from gnas_keras.methods.base import Boundary, Method, SearchContext, SearchResult

if TYPE_CHECKING:
    from gnas_keras.models.tree_net import TreeNetwork

LAYOUTS = ("vgg16", "small")
LOGITS_LAYER = "logits"


@dataclasses.dataclass
class BranchingConfig:
    """Adaptive branching's settings (paper values in the help texts)."""

    thin_layout: str = setting("vgg16", "Thin network layout: vgg16 (13 convs, 5 pools; the "
                                        "paper's) or small (6 convs, 3 pools; 32x32 images).",
                               choices=LAYOUTS)
    omega: int = setting(32, "Thinness omega: conv width min(omega, VGG width), fc width "
                             "2 omega (paper: 32 or 64).")
    branch_factor: float = setting(1.0, "Branch factor alpha of Eq. 9; larger makes more "
                                        "branches (paper: 1.0 or 2.0; 0 = never branch).")
    branch_unit_cost: float = setting(0.02, "L0 of Eq. 9: cost of one more branch at a layer "
                                           "with no pooling above (doubles per pool below); "
                                           "not given in the paper, see the README.")
    iterations_per_round: int = setting(1000, "Training iterations before each widening "
                                              "(paper: 1,000).")
    max_widening_rounds: int = setting(0, "Widening round cap (0 = until no layer branches "
                                          "or the second layer has been widened).")
    affinity_decay: float = setting(0.99, "Decay of the exponentially weighted affinity "
                                          "averages (paper: 0.99).")
    lr_drop_every: int = setting(0, "Search iterations between learning-rate drops (paper: "
                                    "20,000; 0 = constant).")
    lr_drop_factor: float = setting(0.1, "Learning-rate factor at each drop (paper: 0.1).")
    somp_from: str = setting("", "A wider Keras model file (.keras) to initialise the thin "
                                 "network from by SOMP (Alg. 2); '' = random initialisation.")

    def validate(self) -> None:
        for name in ("omega", "iterations_per_round"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("branch_factor", "branch_unit_cost", "max_widening_rounds",
                     "lr_drop_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.affinity_decay < 1.0:
            raise ValueError(f"affinity_decay: must be in [0, 1), got {self.affinity_decay}")
        if not 0.0 < self.lr_drop_factor <= 1.0:
            raise ValueError(f"lr_drop_factor: must be in (0, 1], got {self.lr_drop_factor}")

    def layout(self) -> Tuple[ops.ThinLayerSpec, ...]:
        return (ops.thin_vgg16 if self.thin_layout == "vgg16" else ops.thin_vgg_small)(
            self.omega)


# --- the thin network as an Architecture -------------------------------------------------------
def thin_architecture(layout: Sequence[ops.ThinLayerSpec], num_attributes: int
                      ) -> Architecture:
    """The thin-omega network before any widening: one block per layer of `layout` (conv:
    3x3, BN, ReLU, the layer's max-pool; fc: dense + ReLU) and a logits layer of one block
    per attribute, all reading the last fc block. Groups are read at the top hidden layer
    (the first one widened, where the finest task grouping appears)."""
    blocks = []
    for spec in layout:
        if spec.kind == "conv":
            blocks.append((BlockSpec("conv", spec.width, spec.kernel,
                                     "max" if spec.pool_after else "none"),))
        else:
            blocks.append((BlockSpec("fc", spec.width),))
    blocks.append((BlockSpec("fc", 2, activation=False),) * num_attributes)
    parents = ((0,),) * len(layout) + ((0,) * num_attributes,)
    architecture = Architecture(tuple(s.name for s in layout) + (LOGITS_LAYER,), parents,
                                tuple(blocks), layout[-1].name, "thin")
    architecture.validate()
    return architecture


# --- widening a TreeNetwork ----------------------------------------------------------------------
def widened_architecture(architecture: Architecture, layer: int, labels: Sequence[int]
                         ) -> Tuple[Architecture, Tuple[int, ...]]:
    """Block 0 of `layer` copied once per group of `labels` beyond the first (one label per
    block of ``layer + 1``, all children of block 0). Returns the architecture and the
    group of every block of `layer` in it (block 0 keeps group 0; copies are appended)."""
    labels = ops.canonical_labels(labels)
    children = architecture.parents[layer + 1]
    if len(architecture.parents[layer]) != 1 or any(p != 0 for p in children) \
            or len(labels) != len(children):
        raise ValueError(f"widening layer {architecture.layer_names[layer]}: it must be one "
                         f"block whose {len(children)} children get one label each "
                         f"({len(labels)} given)")
    group_of_block = [0]
    for group in range(1, max(labels) + 1):
        architecture = architecture.clone_block(
            layer, 0, [c for c, g in enumerate(labels) if g == group])
        group_of_block.append(group)
    return architecture, tuple(group_of_block)


def copy_optimizer_state(source: "TreeNetwork", target: "TreeNetwork",
                         source_path: Dict[str, str]) -> None:
    """Copies SGD's momentum of every trainable variable of `target` from the variable of
    `source` whose path `source_path` names (default: the same path), plus the iteration
    count and the learning rate."""
    old = {v.path: v for v in source.trainable_variables}
    source_opt, target_opt = source.optimizer, target.optimizer
    for v in target.trainable_variables:
        origin = old[source_path.get(v.path, v.path)]
        target_opt.momentums[target_opt._get_variable_index(v)].assign(
            source_opt.momentums[source_opt._get_variable_index(origin)])
    target_opt.iterations.assign(source_opt.iterations)
    target_opt.learning_rate.assign(source_opt.learning_rate)


def widen(model: "TreeNetwork", layer: int, labels: Sequence[int], strategy=None
          ) -> "TreeNetwork":
    """A new compiled `TreeNetwork` in which block 0 of `layer` is copied once per group of
    `labels` (`widened_architecture`), every copy with the block's weights and BN statistics
    (`branching_ops.widen_junction`) and its optimizer slots: it computes exactly what
    `model` does, and the next optimizer step moves each copy as the block would have moved.
    Built under `strategy`'s scope (default: the current strategy)."""
    import tensorflow as tf

    from gnas_keras.models.tree_net import build_tree_network

    architecture, group_of_block = widened_architecture(model.architecture, layer, labels)
    junction = ops.widen_junction(model.block_weights(layer, 0), labels)
    with (strategy or tf.distribute.get_strategy()).scope():
        grown = build_tree_network(architecture, learning_rate=float(
            model.optimizer.learning_rate.numpy()), momentum=float(model.optimizer.momentum),
            **model.settings())
    source_path = {}
    for l, live in enumerate(architecture.live_blocks()):
        for j in live:
            if l == layer:
                grown.set_block_weights(l, j, junction.copies[group_of_block[j]])
                original = model.block_name(l, 0)
                for suffix in ("", "_bn"):
                    layer_name = grown.block_name(l, j) + suffix
                    if suffix and architecture.blocks[l][j].op != "conv":
                        continue
                    for v in grown.get_layer(layer_name).trainable_variables:
                        source_path[v.path] = v.path.replace(layer_name, original + suffix, 1)
            else:
                grown.set_block_weights(l, j, model.block_weights(l, j))
    copy_optimizer_state(model, grown, source_path)
    return grown


# --- SOMP initialisation ---------------------------------------------------------------------------
def somp_initialise(model: "TreeNetwork", path: str,
                    layout: Sequence[ops.ThinLayerSpec]) -> List[float]:
    """Alg. 2: sets the thin trunk of `model` (block 0 of every layer of `layout`) from the
    conv and dense layers of the Keras model saved at `path`, taken in order (the first
    ``len(layout)`` of them: e.g. VGG-16's 13 convs, fc6, fc7), filters chosen by SOMP.
    Conv biases are dropped (the thin conv has BN, which removes a per-channel constant);
    dense biases are kept for the chosen units. Returns each layer's relative reconstruction
    residual. Raises ValueError naming the file and layer when the model does not fit."""
    import keras

    try:
        wide = keras.models.load_model(path, compile=False)
    except Exception as err:  # a missing or foreign file: one clear line
        raise ValueError(f"somp_from: cannot load a Keras model from {path!r}: {err}") from None
    weighted = [l for l in wide.layers
                if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]
    if len(weighted) < len(layout):
        raise ValueError(f"somp_from: {path} has {len(weighted)} conv/dense layers, the thin "
                         f"network needs {len(layout)} ({', '.join(s.name for s in layout)})")
    wide_layers = []
    for spec, layer in zip(layout, weighted):
        kernel = layer.kernel.numpy()
        want = 4 if spec.kind == "conv" else 2
        if kernel.ndim != want or (spec.kind == "conv" and kernel.shape[0] != spec.kernel):
            raise ValueError(f"somp_from: {path} layer {layer.name} (kernel {kernel.shape}) "
                             f"cannot initialise {spec.kind} layer {spec.name}")
        bias = layer.bias.numpy() if layer.use_bias else None
        wide_layers.append(ops.LayerWeights(kernel, bias))
    thin = ops.somp_thin_layers(wide_layers, [s.width for s in layout])
    for l, (spec, chosen) in enumerate(zip(layout, thin)):
        weights = model.block_weights(l, 0)
        if weights[0].shape != chosen.weights.kernel.shape:
            raise ValueError(f"somp_from: {path}: layer {spec.name} gets a kernel of shape "
                             f"{chosen.weights.kernel.shape} but needs {weights[0].shape} "
                             "(a model for another image size?)")
        weights[0] = chosen.weights.kernel
        if spec.kind == "fc":
            weights[1] = chosen.weights.bias if chosen.weights.bias is not None \
                else np.zeros_like(weights[1])
        model.set_block_weights(l, 0, weights)
    return [t.residual for t in thin]


# --- the search ------------------------------------------------------------------------------------
@dataclasses.dataclass
class BranchingState:
    """Everything but the weights that the search needs to continue after a restart.

    Attributes:
      rng_state: numpy bit generator state (seeds the clustering's k-means).
      architecture: the network so far (`Architecture.to_dict`).
      affinity: `TaskAffinity.arrays()` as lists, or None before the first step.
      rounds_done: widening rounds finished (also `evaluations`, the run's counter).
      steps: search iterations trained.
      finished: no further widening.
      elapsed: search seconds spent before this process.
      rounds: one JSON-ready report per round (`round_report`).
      somp_residuals: per layer, when initialised by SOMP.
    """

    rng_state: Dict
    architecture: Dict
    affinity: Optional[Dict[str, Any]] = None
    rounds_done: int = 0
    steps: int = 0
    finished: bool = False
    elapsed: float = 0.0
    rounds: List[Dict] = dataclasses.field(default_factory=list)
    somp_residuals: List[float] = dataclasses.field(default_factory=list)

    @property
    def evaluations(self) -> int:
        return self.rounds_done

    def to_dict(self) -> Dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Dict) -> "BranchingState":
        return cls(**d)

    def task_affinity(self, num_tasks: int, decay: float) -> ops.TaskAffinity:
        if self.affinity is None:
            return ops.TaskAffinity(num_tasks, decay)
        return ops.TaskAffinity.from_arrays({k: np.asarray(v, np.float64)
                                             for k, v in self.affinity.items()})

    def keep_affinity(self, accumulator: ops.TaskAffinity) -> None:
        self.affinity = {k: np.asarray(v).tolist() for k, v in accumulator.arrays().items()}

    def end_round(self, round_: int, finished: bool, architecture: Architecture,
                  accumulator: ops.TaskAffinity, rng: np.random.Generator,
                  start: float) -> None:
        """Records a finished widening round: the (possibly widened) architecture, the
        affinity so far, the generator state and the elapsed time."""
        self.rounds_done, self.finished = round_, finished
        self.architecture = architecture.to_dict()
        self.keep_affinity(accumulator)
        self.rng_state = rng.bit_generator.state
        self.elapsed = time.time() - start


def round_report(round_: int, layer_name: str, pools_above: int, branch_tasks,
                 selection: ops.WidthSelection, affinity: np.ndarray, train_loss: float,
                 learning_rate: float, elapsed: float, names: Sequence[str]) -> Dict:
    """One widening round for report.json: every candidate d with its Eq. 9 terms."""
    return {
        "round": round_, "layer": layer_name, "pools_above": pools_above,
        "branches": [[names[t] for t in tasks] for tasks in branch_tasks],
        "candidates": [{"num_branches": c.num_branches, "labels": list(c.labels),
                        "branch_cost": c.branch_cost, "separation": c.separation,
                        "loss": c.loss} for c in selection.candidates],
        "chosen": selection.chosen.num_branches,
        "groups": [[names[t] for t in tasks] for tasks in
                   ops.merge_branch_tasks(branch_tasks, selection.chosen.labels)],
        "task_affinity": np.round(affinity, 6).tolist(),
        "train_loss": train_loss, "learning_rate": learning_rate, "elapsed": elapsed}


def learning_rate_at(step: int, base: float, config: BranchingConfig) -> float:
    """The search's step schedule: `base` times lr_drop_factor per lr_drop_every steps."""
    if not config.lr_drop_every:
        return base
    return base * config.lr_drop_factor ** (step // config.lr_drop_every)


def _new_model(context: SearchContext, architecture: Architecture) -> "TreeNetwork":
    from gnas_keras.training.loop import new_tree_network
    return new_tree_network(context.config, architecture, context.image_shape,
                            context.config.seed, context.strategy)


def _trackables(context: SearchContext) -> Dict[str, Any]:
    """The network (thin, or grown as far as the saved state says) in one `tf.Module`, which
    the run checkpoints and restores; the search reassigns its attributes as it grows."""
    import tensorflow as tf

    config: BranchingConfig = context.method_config
    saved = context.saved_state
    if saved:
        architecture = Architecture.from_dict(saved["architecture"])
    else:
        architecture = thin_architecture(config.layout(), context.num_attributes)
    model = _new_model(context, architecture)
    holder = tf.Module(name="branching")
    holder.model, holder.optimizer = model, model.optimizer
    return {"branching": holder}


def _train_round(loop: "Loop", config: BranchingConfig, steps_before: int, round_: int,
                 base_lr: float, on_step: Callable) -> Evaluation:
    """One round's ``iterations_per_round`` training steps (TrainAndGetAffinity), in chunks
    that end where the step schedule drops the learning rate; `on_step` collects the
    affinity. Returns the last chunk's training `Evaluation`."""
    loop.restart(Stream.BRANCHING_ROUND, round_)
    done = 0
    while done < config.iterations_per_round:
        step = steps_before + done
        loop.set_learning_rate(learning_rate_at(step, base_lr, config))
        chunk = config.iterations_per_round - done
        if config.lr_drop_every:
            chunk = min(chunk, config.lr_drop_every - step % config.lr_drop_every)
        train = loop.train(chunk, on_step)
        check_finite(train, f"branching round {round_} step {step}")
        done += chunk
    return train


def search(context: SearchContext) -> SearchResult:
    """Algorithm 1 on the network held by ``context.trackables["branching"]``."""
    from gnas_keras.training.loop import Loop

    config: BranchingConfig = context.method_config
    holder = context.trackables["branching"]
    model: "TreeNetwork" = holder.model
    layout = config.layout()
    pools_above = ops.pooling_layers_above(layout)
    names, rng, logger = context.attribute_names, context.rng, context.logger
    saved = context.saved_state
    if saved:
        state = BranchingState.from_dict(saved)
    else:
        state = BranchingState(rng.bit_generator.state, model.architecture.to_dict())
        if config.somp_from:
            state.somp_residuals = somp_initialise(model, config.somp_from, layout)
    rng.bit_generator.state = state.rng_state
    accumulator = state.task_affinity(context.num_attributes, config.affinity_decay)
    base_lr = context.config.learning_rate
    # Round r copies layer len(layout) - r. The first layer stays one block (the core's
    # architectures have one block reading the image), so at most len(layout) - 1 rounds.
    cap = min(config.max_widening_rounds or len(layout), len(layout) - 1)
    start = time.time() - state.elapsed

    def on_step(logs) -> None:
        n = context.num_attributes
        accumulator.update(np.reshape(logs["labels"].numpy(), (-1, n)),
                           np.reshape(logs["present_probability"].numpy(), (-1, n)))

    def make_loop(network: "TreeNetwork") -> Loop:
        network.report_predictions = True
        network.make_train_function(force=True)
        return Loop(network, context.train_data, context.config.seed)

    loop = make_loop(model)
    if not saved:
        logger.architecture(0, model.architecture, "thin network")
    while not state.finished and state.rounds_done < cap:
        round_ = state.rounds_done + 1
        layer = len(layout) - round_          # the block copied; its children branch
        architecture = model.architecture

        # Train and collect the affinity (TrainAndGetAffinity).
        train = _train_round(loop, config, state.steps, round_, base_lr, on_step)
        state.steps += config.iterations_per_round

        # FindNumberBranches (Eq. 7-11).
        branch_tasks = [sorted(d) for d in architecture.descendants()[layer + 1]]
        affinity = accumulator.affinity()
        selection = ops.select_width(ops.branch_affinity(affinity, branch_tasks),
                                     pools_above[layer], config.branch_factor,
                                     config.branch_unit_cost,
                                     seed=int(rng.integers(2 ** 31)))
        state.rounds.append(round_report(
            round_, architecture.layer_names[layer], pools_above[layer], branch_tasks,
            selection, affinity, train.loss, loop.learning_rate, time.time() - start, names))

        # WidenModel (sec. 3.2).
        d = selection.chosen.num_branches
        if d > 1:
            model = widen(model, layer, selection.chosen.labels, context.strategy)
            holder.model, holder.optimizer = model, model.optimizer
            loop = make_loop(model)
        state.end_round(round_, d == 1 or round_ >= cap, model.architecture, accumulator, rng,
                        start)
        context.checkpoint(state, Boundary.ROUND)
        logger.architecture(round_, model.architecture,
                            f"widening round {round_}/{cap} at {architecture.layer_names[layer]}:"
                            f" {len(branch_tasks)} branches -> {d} (train loss {train.loss:.4f},"
                            f" losses {', '.join(f'{c.loss:.3f}' for c in selection.candidates)})")

    model.report_predictions = False
    model.make_train_function(force=True)
    return SearchResult(model.architecture, model, {
        "widening_rounds": state.rounds, "search_steps": state.steps,
        "thin_layout": config.thin_layout, "omega": config.omega,
        "somp_residuals": state.somp_residuals})


METHOD = Method("branching", search, BranchingConfig, uses_supernet=False,
                trackables=_trackables,
                summary="Adaptive branching (Lu et al. 2017): a thin network widened "
                        "top-down by task affinity while it trains.")
