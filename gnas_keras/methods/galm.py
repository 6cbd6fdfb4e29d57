"""GALM as a search method: one architecture per attribute (Cheng et al. 2018, Alg. 1).

    child = a weight-sharing network: the shared trunk Conv-1..3 and, per attribute, one
            weight set for every option of every decision of Table 1 (`galm_space`)
    controller = ARM + MNAS (`galm_controller.GalmController`)
    for phase in 1..galm_phases:
        child training: galm_child_steps steps; before each step every attribute gets an
            architecture sampled from the controller (assigned to variables, no retrace)
        controller training: galm_controller_steps REINFORCE steps (paper: 2,000); each
            draws an attribute uniformly, samples its architecture, and the reward is that
            attribute's accuracy (or AUC) on the same fixed validation batches
    final architecture of attribute a = the controller's most probable action sequence
        (or, with galm_final_samples = M, the best of M samples on the validation batches)

``galm_sampler="uniform"`` is the baseline of the same budget: every architecture (child
steps and reward evaluations alike) is drawn uniformly from the 2,304 choices, the
controller is never updated, and an attribute's final architecture is the best-rewarded one
it was evaluated with (random search per attribute).

The result is an `Architecture` (conv1..conv5, fc1..fc3; per attribute its own conv4..fc3)
that the run fine-tunes on train+validation, tests and exports like every method: by
default a `TreeNetwork` holding the child's weights of the chosen options
(`GalmChild.block_weights`; it computes what the child computes, tested), as GNAS fine-tunes
its supernet's weights; ``galm_finetune_from_child=False``: fresh weights.

The child network is `gnas_keras.models.galm_net.GalmChild` (its docstring says how the
options share one graph). It follows the core's block semantics (`gnas_keras.space.architecture`)
so that what is searched is what is exported: a conv block is conv (SAME, no bias) -> BN ->
ReLU -> 2x2 max-pool (the paper's order is ReLU, pool, BN; the core's order is kept, one
convention for every method), skip inputs are max-pooled to the block's *input* resolution
and concatenated with the main input (`GalmSpace(skip_merge="concat")`), and a conv source
feeding fc1 is flattened. "FC-3 skips FC-2" is exported as an fc2 block of 2 linear units
(no activation) under FC-3: two stacked affine maps to 2 units are exactly the affine maps
FC-1 -> 2 units, so the function family is FC-3 reading FC-1 (6 extra parameters; the core's
`Architecture` has a fixed number of layers per attribute). With momentum, unselected
options keep drifting by their old momentum, as in a TF1 ENAS child. L2 (`l2_in_use`)
covers the selected options' whole weight sets.

The objects of a run (child, controller, which controller row is which attribute) are made
by the method's build step (`_build`, ``Method.build``) and reach both `_trackables` (what
is checkpointed) and the search as ``context.built``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time
from typing import TYPE_CHECKING, Dict, List, Sequence

import numpy as np

from gnas_keras.space.architecture import Architecture, BlockSpec
from gnas_keras.settings import setting
from gnas_keras.training.evaluation import Stream, check_finite, segment_seed
from gnas_keras.methods import galm_space as gs
from gnas_keras.methods.base import Method, SearchContext, SearchResult, resume

if TYPE_CHECKING:
    from gnas_keras.methods.galm_controller import GalmController
    from gnas_keras.models.galm_net import GalmChild

SPACES = ("paper", "synthetic")
REWARDS = ("accuracy", "auc")
SAMPLERS = ("controller", "uniform")
CONTROLLER_DIR = "galm_controller"  # in the workdir: the trained controller, for transfer


@dataclasses.dataclass
class GalmConfig:
    galm_space: str = setting("paper", "GALM search space: Table 1 (paper) or its channels "
                              "and widths x0.25 for the 32x32 synthetic set.", choices=SPACES)
    galm_phases: int = setting(10, "Alternations of child and controller training (Alg. 1).")
    galm_child_steps: int = setting(200, "Child training steps per phase, each on freshly "
                                    "sampled per-attribute architectures.")
    galm_controller_steps: int = setting(2000, "REINFORCE steps per phase (paper: 2,000).")
    galm_val_batches: int = setting(2, "Fixed validation batches every reward is measured on.")
    galm_reward: str = setting("accuracy", "Reward: the attribute's validation accuracy or "
                               "AUC.", choices=REWARDS)
    galm_controller_lr: float = setting(1e-4, "Controller learning rate (paper: 1e-4).")
    galm_baseline_decay: float = setting(0.99, "Decay of the reward baseline's moving "
                                         "average (Eq. 5; ENAS: 0.99).")
    galm_sampler: str = setting("controller", "Who draws the architectures: the REINFORCE "
                                "controller (the paper) or 'uniform': uniformly random, "
                                "controller untouched, final = each attribute's best-rewarded "
                                "sample (the random baseline with the same budget).",
                                choices=SAMPLERS)
    galm_final_samples: int = setting(0, "Final architecture: 0 = the most probable sequence "
                                      "(sec. 4.1); M > 0 = the best of M samples on the "
                                      "validation batches.")
    galm_finetune_from_child: bool = setting(True, "Fine-tune the found architectures from "
                                             "the child's shared weights (False: fresh "
                                             "weights).")
    transfer_from: str = setting("", "A finished GALM run directory: start from its "
                                 "controller; attributes it lacks get the embedding of the "
                                 "cosine-nearest learned one and only they are searched.")

    def validate(self) -> None:
        for name in ("galm_phases", "galm_val_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("galm_child_steps", "galm_controller_steps", "galm_final_samples"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.galm_controller_lr <= 0 or not 0 <= self.galm_baseline_decay < 1:
            raise ValueError("galm_controller_lr / galm_baseline_decay: need lr > 0 and "
                             f"0 <= decay < 1, got {self.galm_controller_lr} / "
                             f"{self.galm_baseline_decay}")
        if self.transfer_from and not os.path.exists(
                os.path.join(self.transfer_from, CONTROLLER_DIR + ".json")):
            raise ValueError(f"transfer_from: {self.transfer_from} holds no finished GALM run "
                             f"({CONTROLLER_DIR}.json missing)")


def make_space(name: str) -> gs.GalmSpace:
    """The searched space; skips concatenated, as the core's `Architecture` merges them."""
    if name == "synthetic":
        return gs.synthetic_space(skip_merge="concat")
    return gs.GalmSpace(skip_merge="concat")


# --- the architecture the run fine-tunes and exports ------------------------------------------
LAYERS = gs.LAYERS


def to_architecture(space: gs.GalmSpace, choices: Sequence[gs.Choice],
                    name: str = "galm") -> Architecture:
    """Per-attribute choices -> the core's `Architecture` (module docstring)."""
    if space.num_logits != 2:
        raise ValueError("the core's networks have 2 logits per attribute")
    n = len(choices)
    index = {layer: l for l, layer in enumerate(gs.SHARED_LAYERS)}
    trunk = tuple((BlockSpec("conv", c, k),) for c, k in zip(space.shared_channels,
                                                              space.shared_kernels))
    conv4 = tuple(BlockSpec("conv", space.conv4_channels, c.conv4_kernel,
                            skips=tuple((index[s], 0) for s in c.conv4_skips)) for c in choices)
    conv5 = tuple(BlockSpec("conv", space.conv5_channels, c.conv5_kernel,
                            skips=tuple((index[s], 0) for s in c.conv5_skips)) for c in choices)
    fc1 = tuple(BlockSpec("fc", c.fc1_width) for c in choices)
    fc2 = tuple(BlockSpec("fc", c.fc2_width) if c.fc3_reads_fc2
                else BlockSpec("fc", 2, activation=False) for c in choices)
    fc3 = tuple(BlockSpec("fc", 2, activation=False) for _ in choices)
    own = tuple(range(n))
    return Architecture(LAYERS, ((0,), (0,), (0,), (0,) * n, own, own, own, own),
                        trunk + (conv4, conv5, fc1, fc2, fc3), "conv4", name)


# --- the search state ---------------------------------------------------------------------------
@dataclasses.dataclass
class GalmState:
    """Everything but the weights (child, controller, their optimizers, the baseline: all
    checkpointed as trackables) that a GALM search needs to continue after a restart.

    phase: phases finished; child_done: whether this phase's child training is done;
    controller_done: REINFORCE steps done in this phase; evaluations: REINFORCE steps in
    all; rewards: [attribute, reward, baseline] per REINFORCE step (baseline None with the
    uniform sampler); best: attribute -> [choice index, reward], the best-rewarded sample
    (uniform sampler)."""

    rng_state: Dict
    phase: int = 0
    child_done: bool = False
    controller_done: int = 0
    evaluations: int = 0
    elapsed: float = 0.0
    child_loss: List[float] = dataclasses.field(default_factory=list)
    rewards: List[List[float]] = dataclasses.field(default_factory=list)
    best: Dict[str, List[float]] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict) -> "GalmState":
        return cls(**d)


# --- the build step: what `trackables` checkpoints and `search` uses -------------------------
@dataclasses.dataclass
class GalmBuild:
    """What `Method.build` makes for a GALM run (``context.built``), before the run
    restores a checkpoint into it.

    Attributes:
      space: the searched space (`make_space`).
      child: the compiled weight-sharing child (`gnas_keras.models.galm_net.GalmChild`).
      controller: ARM + MNAS.
      rows: the controller row of each of the data's attributes.
      searched: the data's attributes that are searched (transfer: the new ones).
      transfer_sources: {new attribute: the learned attribute its embedding copies}.
      row_names: the attribute of every controller row (transfer: the source's attributes
        first, then the new ones).
    """

    space: gs.GalmSpace
    child: "GalmChild"
    controller: "GalmController"
    rows: List[int]
    searched: List[int]
    transfer_sources: Dict[str, str]
    row_names: List[str]


def _controller_config(config: GalmConfig, seed: int):
    from gnas_keras.methods.galm_controller import ControllerConfig
    return ControllerConfig(learning_rate=config.galm_controller_lr,
                            baseline_decay=config.galm_baseline_decay, seed=seed)


def _build(context: SearchContext) -> GalmBuild:
    """GALM's build step (`Method.build`): the seeded child, a new controller or (with
    ``transfer_from``) a finished run's, grown by the data's new attributes."""
    import keras
    from gnas_keras.methods.galm_controller import GalmController
    from gnas_keras.models.galm_net import build_child
    config, run = context.method_config, context.config
    space = make_space(config.galm_space)
    keras.utils.set_random_seed(run.seed)
    with context.strategy.scope():
        child = build_child(space, context.num_attributes, context.image_shape,
                            learning_rate=run.learning_rate, momentum=run.momentum,
                            weight_decay=run.weight_decay, dropout=run.dropout,
                            bn_momentum=run.bn_momentum, bn_epsilon=run.bn_epsilon)
    names = context.attribute_names
    if not config.transfer_from:
        controller = GalmController(space, len(names), _controller_config(config, run.seed))
        return GalmBuild(space, child, controller, list(range(len(names))),
                         list(range(len(names))), {}, list(names))
    controller, source_names = load_controller(config.transfer_from, space)
    controller = _with_settings(controller, _controller_config(config, run.seed))
    return GalmBuild(space, child, *transfer(controller, source_names, names))


def transfer(controller, source_names: Sequence[str], names: Sequence[str]):
    """Sec. 3.5: the data's attributes that `controller` (trained on `source_names`) lacks
    get new rows whose embeddings are copies of the cosine-nearest learned ones.
    Returns (controller, each data attribute's row, the data attributes to search (the new
    ones), {new attribute: its source}, every row's attribute name)."""
    new = [a for a in names if a not in source_names]
    if new:
        controller = controller.add_attributes(len(new))
    all_names = list(source_names) + new
    new_rows = [all_names.index(a) for a in new]
    chosen = controller.init_from_nearest(new_rows, list(range(len(source_names)))) \
        if new else []
    return (controller, [all_names.index(a) for a in names], [names.index(a) for a in new],
            {a: all_names[c] for a, c in zip(new, chosen)}, all_names)


def _with_settings(controller, config):
    """The loaded controller with this run's learning rate, decay and seed (weights kept)."""
    from gnas_keras.methods.galm_controller import GalmController
    fresh = GalmController(controller.space, controller.num_attributes, config)
    for old, new in zip(controller.policy.weights, fresh.policy.weights):
        new.assign(old.numpy())
    fresh.baseline.assign(controller.baseline)
    return fresh


def _trackables(context: SearchContext) -> Dict:
    import tensorflow as tf
    built: GalmBuild = context.built
    # Every child variable by position as well, so that no variable depends on Keras'
    # attribute tracking to be checkpointed (lists of tuples once escaped it).
    every = tf.train.Checkpoint(**{f"w{i:03d}": v for i, v in enumerate(built.child.weights)})
    return {"galm_child": built.child, "galm_child_optimizer": built.child.optimizer,
            "galm_child_weights": every, "galm_controller": built.controller}


# --- saving the controller for --transfer_from ---------------------------------------------------
def save_controller(workdir: str, controller, attribute_names: Sequence[str],
                    space_name: str) -> None:
    """``workdir/galm_controller-*`` (a tf.train checkpoint) and ``galm_controller.json``
    (its attribute names, space and sizes), the JSON written last and atomically."""
    import tensorflow as tf
    from gnas_keras.io import write_json_atomic
    prefix = tf.train.Checkpoint(controller=controller).write(
        os.path.join(workdir, CONTROLLER_DIR, "controller"))
    write_json_atomic(os.path.join(workdir, CONTROLLER_DIR + ".json"), {
        "attribute_names": list(attribute_names), "galm_space": space_name,
        "checkpoint": os.path.relpath(prefix, workdir),
        "controller": dataclasses.asdict(controller.config)})


def load_controller(run_dir: str, space: gs.GalmSpace):
    """A finished GALM run's controller and its attribute names."""
    import tensorflow as tf
    from gnas_keras.methods.galm_controller import ControllerConfig, GalmController
    meta = json.load(open(os.path.join(run_dir, CONTROLLER_DIR + ".json")))
    if make_space(meta["galm_space"]) != space:
        raise ValueError(f"transfer_from: {run_dir} searched galm_space "
                         f"{meta['galm_space']!r}, this run another")
    controller = GalmController(space, len(meta["attribute_names"]),
                                ControllerConfig(**meta["controller"]))
    tf.train.Checkpoint(controller=controller).read(
        os.path.join(run_dir, meta["checkpoint"])).assert_existing_objects_matched()
    return controller, meta["attribute_names"]


# --- Alg. 1 ------------------------------------------------------------------------------
def _fixed_batches(context: SearchContext, batches: int):
    """The same `batches` validation batches for every reward, as an endless dataset that
    cycles through them, and the number of batches per cycle."""
    import tensorflow as tf
    stream = context.val_data(Stream.GALM_REWARDS, 0)
    images, labels = zip(*[next(stream) for _ in range(batches)])
    dataset = tf.data.Dataset.from_tensor_slices((tf.concat(images, 0), tf.concat(labels, 0)))
    size = int(images[0].shape[0])
    count = -(-sum(int(i.shape[0]) for i in images) // size)
    return dataset.batch(size).repeat(), count


def _reward(loop, iterator, count: int, attribute: int, kind: str) -> float:
    if kind == "accuracy":
        accuracy = loop.evaluate(iterator, count).accuracy[attribute]
        return float(0.0 if np.isnan(accuracy) else accuracy)
    from gnas_keras.training.metrics import auc
    import tensorflow as tf
    scores, labels = [], []
    for _ in range(count):
        images, y = next(iterator)
        scores.append(tf.nn.softmax(loop.model(images, training=False))[:, attribute, 1].numpy())
        labels.append(y.numpy()[:, attribute])
    value = auc(np.concatenate(scores), np.concatenate(labels))
    return float(0.0 if np.isnan(value) else value)


class _GalmSearch:
    """Alg. 1 (module docstring) on ``context.built``, resumable at every boundary: after
    the child training of a phase ("warmup"), after every REINFORCE step ("candidate") and
    after a phase ("phase")."""

    def __init__(self, context: SearchContext):
        from gnas_keras.training.loop import Loop
        self.context, self.config, self.seed = context, context.method_config, context.config.seed
        self.built: GalmBuild = context.built
        self.state = GalmState.from_dict(context.saved_state) if context.saved_state \
            else GalmState(rng_state=context.rng.bit_generator.state)
        self.start, self.save = resume(self.state, context.rng, context.checkpoint)
        self.loop = Loop(self.built.child, context.train_data, self.seed)
        dataset, self.count = _fixed_batches(context, self.config.galm_val_batches)
        self.val = self.loop.iterator(dataset)
        controller, rows = self.built.controller, self.built.rows
        self.frozen = {a: controller.most_probable(rows[a])
                       for a in range(context.num_attributes) if a not in self.built.searched}
        self.uniform = self.config.galm_sampler == "uniform"

    def sample(self, a: int, *position: int) -> gs.Choice:
        """Attribute `a`'s architecture for the draw at `position` (seeded by it)."""
        if a in self.frozen:
            return self.frozen[a]
        if self.uniform:
            return gs.uniform_random_choice(
                self.built.space, np.random.default_rng(segment_seed(self.seed, *position)))
        seed = (self.seed, segment_seed(self.seed, *position))
        return self.built.controller.sample(self.built.rows[a], seed)[0]

    def reward(self, a: int) -> float:
        """Attribute `a`'s reward for the child's current architecture of it."""
        return _reward(self.loop, self.val, self.count, a, self.config.galm_reward)

    def progress(self, phase: int, line: str) -> None:
        from gnas_keras.reporting.units import duration as format_duration
        self.context.logger.progress(
            f"GALM phase {phase + 1}/{self.config.galm_phases}  {line}"
            f"elapsed {format_duration(time.time() - self.start)}")

    def train_child(self, phase: int) -> None:
        """Alg. 1's child phase: every step on freshly sampled architectures."""
        state, child, n = self.state, self.built.child, self.context.num_attributes
        self.loop.restart(Stream.GALM_PHASE, phase)
        losses = []
        for step in range(self.config.galm_child_steps):
            child.set_choices([self.sample(a, Stream.GALM_CHILD_DRAW, phase, step, a)
                               for a in range(n)])
            evaluation = self.loop.train(1)
            check_finite(evaluation, f"GALM child phase {phase} step {step}")
            losses.append(evaluation.loss)
        state.child_loss.append(float(np.mean(losses)) if losses else float("nan"))
        state.child_done = True
        self.progress(phase, f"child: {self.config.galm_child_steps} steps  train loss "
                             f"{state.child_loss[-1]:.4f}  ")
        self.save("warmup")

    def controller_step(self, phase: int) -> None:
        """One REINFORCE step (or, uniform sampler, one evaluated random sample)."""
        state, built, steps = self.state, self.built, self.config.galm_controller_steps
        a = built.searched[int(self.context.rng.integers(len(built.searched)))]
        choice = self.sample(a, Stream.GALM_CONTROLLER_DRAW, phase, state.controller_done)
        built.child.set_choice(a, choice)
        reward = self.reward(a)
        baseline = None
        if not self.uniform:
            baseline = built.controller.update(built.rows[a], choice, reward).baseline
        elif reward > state.best.get(str(a), [0, -np.inf])[1]:
            state.best[str(a)] = [gs.encode(built.space, choice), reward]
        state.rewards.append([a, reward, baseline])
        state.controller_done += 1
        state.evaluations += 1
        every = max(1, steps // 5)
        if state.controller_done % every == 0 or state.controller_done == steps:
            recent = np.mean([r[1] for r in state.rewards[-every:]])
            self.progress(phase, f"controller step {state.controller_done}/{steps}  mean "
                                 f"reward {recent:.4f}  "
                          + ("" if baseline is None else f"baseline {baseline:.4f}  "))
        self.save("candidate")

    def run(self) -> SearchResult:
        state, config = self.state, self.config
        while state.phase < config.galm_phases:
            phase = state.phase
            if not state.child_done:
                self.train_child(phase)
            while state.controller_done < config.galm_controller_steps and self.built.searched:
                self.controller_step(phase)
            state.phase, state.child_done, state.controller_done = phase + 1, False, 0
            self.save("phase")
        return _finish(self)


def _search(context: SearchContext) -> SearchResult:
    return _GalmSearch(context).run()


def _final_choices(search: _GalmSearch) -> List[gs.Choice]:
    """Every attribute's found architecture: the controller's most probable one, or the
    best of it and `galm_final_samples` samples, or (uniform sampler) the best-rewarded
    sample."""
    config, built, state, seed = search.config, search.built, search.state, search.seed
    choices = []
    for a in range(search.context.num_attributes):
        best = built.controller.most_probable(built.rows[a])
        if config.galm_sampler == "uniform":
            if str(a) in state.best:  # else never evaluated: the untrained controller's
                best = gs.decode(built.space, int(state.best[str(a)][0]))
        elif config.galm_final_samples and a in built.searched:
            candidates = [best] + [built.controller.sample(
                built.rows[a], (seed, segment_seed(seed, Stream.GALM_FINAL, a, m)))[0]
                for m in range(config.galm_final_samples)]
            rewards = []
            for c in candidates:
                built.child.set_choice(a, c)
                rewards.append(search.reward(a))
            best = candidates[int(np.argmax(rewards))]
        choices.append(best)
    return choices


def _finish(search: _GalmSearch) -> SearchResult:
    """The found architectures, the controller saved for transfer, the report, pictures,
    and the model the run fine-tunes."""
    from gnas_keras.methods.galm_controller import attribute_correlation, embedding_ari
    context, config, built, state = search.context, search.config, search.built, search.state
    names, workdir = context.attribute_names, context.config.workdir
    choices = _final_choices(search)
    save_controller(workdir, built.controller, built.row_names, config.galm_space)
    reps = built.controller.representations()[built.rows]
    correlation = attribute_correlation(reps)
    picture = os.path.join(workdir, "galm_attribute_correlation.png")
    _correlation_picture(correlation, names, picture)
    report = {
        "galm": {
            "architectures": {a: dataclasses.asdict(c) for a, c in zip(names, choices)},
            "design_choice_frequencies": [dataclasses.asdict(r) for r in
                                          gs.design_choice_frequencies(built.space, choices)],
            "attribute_correlation": correlation.tolist(),
            "attribute_correlation_picture": picture,
            "searched_attributes": [names[a] for a in built.searched],
            "transfer_from": config.transfer_from,
            "transfer_sources": built.transfer_sources,
            "sampler": config.galm_sampler,
            # uniform sampler: each evaluated attribute's best sample (index into the 2,304
            # choices, `galm_space.decode`) and its reward
            "best_samples": {names[int(a)]: {"choice_index": int(i), "reward": r}
                             for a, (i, r) in sorted(state.best.items(),
                                                     key=lambda item: int(item[0]))},
            "rewards": state.rewards, "child_loss": state.child_loss,
            "phases": state.phase,
        }}
    if context.planted_groups:
        report["galm"]["embedding_ari"] = embedding_ari(reps, context.planted_groups)
    _tensorboard(workdir, state, picture)
    architecture = to_architecture(built.space, choices, f"galm_{config.galm_space}")
    model = None
    if config.galm_finetune_from_child:
        from gnas_keras.models.tree_net import copy_weights
        from gnas_keras.training.loop import new_tree_network
        model = new_tree_network(context.config, architecture, context.image_shape,
                                 context.config.seed, context.strategy)
        copy_weights(built.child.block_weights(choices), model)
    return SearchResult(architecture, model, report)


def _correlation_picture(matrix: np.ndarray, names: Sequence[str], path: str) -> None:
    """The learned attribute-correlation matrix (Fig. 5) as a PNG, written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from gnas_keras.io import write_bytes_atomic
    size = max(4.0, 0.3 * len(names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
    axes.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    axes.set_yticks(range(len(names)), names, fontsize=6)
    axes.set_title("cosine similarity of the ARM embeddings")
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())


def _tensorboard(workdir: str, state: GalmState, picture: str) -> None:
    import tensorflow as tf
    writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard", "galm"))
    with writer.as_default():
        for step, (_, reward, baseline) in enumerate(state.rewards):
            tf.summary.scalar("galm/reward", reward, step=step)
            if baseline is not None:  # the uniform sampler has none
                tf.summary.scalar("galm/baseline", baseline, step=step)
        png = tf.io.decode_png(tf.io.read_file(picture), channels=4)
        tf.summary.image("galm/attribute_correlation", png[None], step=state.evaluations)
    writer.close()


METHOD = Method("galm", _search, GalmConfig, uses_supernet=False, build=_build,
                trackables=_trackables,
                summary="GALM: an RL controller picks one architecture per attribute "
                        "(Cheng et al. 2018).")
