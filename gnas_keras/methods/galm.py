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

The child network (`GalmChild`) follows the core's block semantics (`gnas_keras.space.architecture`)
so that what is searched is what is exported: a conv block is conv (SAME, no bias) -> BN ->
ReLU -> 2x2 max-pool (the paper's order is ReLU, pool, BN; the core's order is kept, one
convention for every method), skip inputs are max-pooled to the block's *input* resolution
and concatenated with the main input (`GalmSpace(skip_merge="concat")`), and a conv source
feeding fc1 is flattened. "FC-3 skips FC-2" is exported as an fc2 block of 2 linear units
(no activation) under FC-3: two stacked affine maps to 2 units are exactly the affine maps
FC-1 -> 2 units, so the function family is FC-3 reading FC-1 (6 extra parameters; the core's
`Architecture` has a fixed number of layers per attribute).

Weight sharing. Every option's weights exist once per attribute; the sampled architecture is
an int32 variable ``actions`` [N, 10] read inside the graph, so switching architectures
never retraces the compiled train/eval functions. A skip is a 0/1 factor on the part of the
convolution that reads that source (a convolution is linear in its input channels, so this
equals convolving the concatenation of the selected sources with the kernel's rows for
them); widths: every FC option has its own weights and its output is zero-padded to the
widest option, so the next layer's rows beyond the actual width see zeros (equal to the
narrower network). All options are computed and the sampled one is selected by a one-hot
factor: simple and retrace-free, at the compute price of all options (tiny beside the trunk
on the synthetic set). Unselected options get zero gradients; with momentum their weights
keep drifting by their old momentum, as in a TF1 ENAS child. L2 (`l2_in_use`) covers the
selected options' whole weight sets.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import numpy as np

from gnas_keras.space.architecture import Architecture, BlockSpec
from gnas_keras.settings import setting
from gnas_keras.training.evaluation import check_finite, segment_seed
from gnas_keras.methods import galm_space as gs
from gnas_keras.methods.base import Method, SearchContext, SearchResult

if TYPE_CHECKING:
    from gnas_keras.methods.galm_controller import GalmController

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
        if self.galm_space not in SPACES:
            raise ValueError(f"galm_space: {self.galm_space!r} is not one of {SPACES}")
        if self.galm_sampler not in SAMPLERS:
            raise ValueError(f"galm_sampler: {self.galm_sampler!r} is not one of {SAMPLERS}")
        if self.galm_reward not in REWARDS:
            raise ValueError(f"galm_reward: {self.galm_reward!r} is not one of {REWARDS}")
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
LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2", "fc3")


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


# --- the weight-sharing child network ---------------------------------------------------------
def build_child(space: gs.GalmSpace, num_attributes: int, image_shape, *,
                learning_rate: float, momentum: float, weight_decay: float, dropout: float,
                bn_momentum: float, bn_epsilon: float):
    """A compiled `GalmChild` (Keras' global seed decides its weights)."""
    import tensorflow as tf
    import keras
    from gnas_keras.models.base import AttributeModel, compile_model, normalize_images

    n, steps = num_attributes, len(space.action_counts)
    c1, c2, c3 = space.shared_channels
    c4, c5, widths = space.conv4_channels, space.conv5_channels, space.fc_widths
    wmax, logits = max(widths), space.num_logits

    def he(fan_in):
        return keras.initializers.RandomNormal(stddev=float(np.sqrt(2.0 / fan_in)))

    def pool(x, k):
        return x if k == 1 else tf.nn.max_pool2d(x, k, k, "VALID")

    class GalmChildBody(keras.layers.Layer):
        """All of the child as one layer (a Keras layer, so that `GalmChild` is a functional
        model like every `AttributeModel`: Keras turns the shared base class functional once
        any functional subclass is built). Images [batch, H, W, 3] in [0, 255] -> logits
        [batch, N, 2] of the per-attribute architectures in ``actions``."""

        def __init__(self):
            super().__init__(name="galm_child_body")
            self.trunk = [(keras.layers.Conv2D(c, k, padding="same", use_bias=False,
                                               kernel_initializer=keras.initializers.HeNormal(),
                                               name=f"conv{i + 1}"),
                           keras.layers.BatchNormalization(momentum=bn_momentum,
                                                           epsilon=bn_epsilon,
                                                           name=f"conv{i + 1}_bn"))
                          for i, (c, k) in enumerate(zip(space.shared_channels,
                                                         space.shared_kernels))]
            self.actions = self.add_weight(name="actions", shape=(n, steps), dtype="int32",
                                           trainable=False, initializer="zeros")
            # Per kernel option: one kernel over the concatenation of every possible input
            # (main input first, then the skip sources in `galm_space` order), N groups of
            # output channels (attribute-major), and its own BN over those channels.
            cin4, cin5 = c3 + c1 + c2, c4 + c1 + c2 + c3
            self.conv4 = [self.add_weight(name=f"conv4_k{k}", shape=(k, k, cin4, n * c4),
                                          initializer=he(k * k * cin4))
                          for k in space.conv_kernels]
            self.conv5 = [self.add_weight(name=f"conv5_k{k}", shape=(k, k, cin5, n * c5),
                                          initializer=he(k * k * cin5))
                          for k in space.conv_kernels]
            bn = dict(momentum=bn_momentum, epsilon=bn_epsilon)
            self.conv4_bn = [keras.layers.BatchNormalization(name=f"conv4_k{k}_bn", **bn)
                             for k in space.conv_kernels]
            self.conv5_bn = [keras.layers.BatchNormalization(name=f"conv5_k{k}_bn", **bn)
                             for k in space.conv_kernels]
            h, w = image_shape[0] // 32, image_shape[1] // 32
            d5 = h * w * c5
            self.fc1 = [(self.add_weight(name=f"fc1_w{u}", shape=(n, d5, u),
                                         initializer=he(d5)),
                         self.add_weight(name=f"fc1_w{u}_bias", shape=(n, u),
                                         initializer="zeros")) for u in widths]
            self.fc2 = [(self.add_weight(name=f"fc2_w{u}", shape=(n, wmax, u),
                                         initializer=he(wmax)),
                         self.add_weight(name=f"fc2_w{u}_bias", shape=(n, u),
                                         initializer="zeros")) for u in widths]
            self.fc3 = [(self.add_weight(name=f"fc3_from_{src}", shape=(n, wmax, logits),
                                         initializer=he(wmax)),
                         self.add_weight(name=f"fc3_from_{src}_bias", shape=(n, logits),
                                         initializer="zeros")) for src in ("fc1", "fc2")]
            self.drop = keras.layers.Dropout(dropout) if dropout else None

        def _onehot(self, t):
            return tf.one_hot(self.actions[:, t], space.action_counts[t])  # [N, options]

        def _conv_block(self, kernels, bns, main, sources, masks, channels, kernel_step,
                        grouped, training):
            """Every kernel option of conv4 or conv5 for all attributes, selected.
            main [B, h, w, C] (grouped: [B, h, w, N*C] per attribute); sources: skip inputs
            at main's resolution; masks [N] each. Returns [B, h/2, w/2, N*channels]."""
            choose = self._onehot(kernel_step)
            out = 0.0
            for o, (kernel, bn) in enumerate(zip(kernels, bns)):
                cin = main.shape[-1] // (n if grouped else 1)
                if grouped:  # attribute a's input -> its channels (no grouped-conv
                    # gradient on CPU, so one convolution per attribute)
                    y = tf.concat([tf.nn.conv2d(
                        main[..., a * cin:(a + 1) * cin],
                        kernel[:, :, :cin, a * channels:(a + 1) * channels], 1, "SAME")
                        for a in range(n)], axis=-1)
                else:
                    y = tf.nn.conv2d(main, kernel[:, :, :cin], 1, "SAME")
                shape = tf.shape(y)
                y = tf.reshape(y, [shape[0], shape[1], shape[2], n, channels])
                start = cin
                for source, mask in zip(sources, masks):
                    part = kernel[:, :, start:start + source.shape[-1]]
                    start += source.shape[-1]
                    s = tf.nn.conv2d(source, part, 1, "SAME")
                    y += tf.reshape(s, [shape[0], shape[1], shape[2], n, channels]) \
                        * mask[:, None]
                y = tf.reshape(y, shape)
                y = tf.nn.max_pool2d(tf.nn.relu(bn(y, training=training)), 2, 2, "VALID")
                out += y * tf.repeat(choose[:, o], channels)
            return out

        def _fc(self, options, x, step):
            """x [B, N, D] -> the selected option's output, zero-padded: [B, N, wmax]."""
            choose = self._onehot(step)
            out = 0.0
            for o, (kernel, bias) in enumerate(options):
                y = tf.einsum("bnd,ndu->bnu", x, kernel) + bias
                y = tf.pad(y, [[0, 0], [0, 0], [0, wmax - y.shape[-1]]])
                out += y * choose[None, :, o, None]
            return out

        def compute_output_shape(self, input_shape):
            return (input_shape[0], n, logits)

        def call(self, images, training=False):
            x = normalize_images(images)
            trunk = []
            for conv, bn in self.trunk:
                x = tf.nn.max_pool2d(tf.nn.relu(bn(conv(x), training=training)), 2, 2,
                                     "VALID")
                trunk.append(x)
            f1, f2, f3 = trunk
            on = tf.cast(self.actions, tf.float32)
            x4 = self._conv_block(self.conv4, self.conv4_bn, f3, [pool(f1, 4), pool(f2, 2)],
                                  [on[:, 0], on[:, 1]], c4, 2, False, training)
            x5 = self._conv_block(self.conv5, self.conv5_bn, x4,
                                  [pool(f1, 8), pool(f2, 4), pool(f3, 2)],
                                  [on[:, 3], on[:, 4], on[:, 5]], c5, 6, True, training)
            shape = tf.shape(x5)
            x5 = tf.reshape(x5, [shape[0], shape[1], shape[2], n, c5])
            x5 = tf.reshape(tf.transpose(x5, [0, 3, 1, 2, 4]), [shape[0], n, -1])
            h1 = tf.nn.relu(self._fc(self.fc1, x5, 7))
            if self.drop is not None:
                h1 = self.drop(h1, training=training)
            h2 = tf.nn.relu(self._fc(self.fc2, h1, 8))
            if self.drop is not None:
                h2 = self.drop(h2, training=training)
            reads_fc2 = on[:, 9][None, :, None]
            (k1, b1), (k2, b2) = self.fc3
            return ((tf.einsum("bnd,ndu->bnu", h1, k1) + b1) * (1.0 - reads_fc2)
                    + (tf.einsum("bnd,ndu->bnu", h2, k2) + b2) * reads_fc2)

        def l2_in_use(self):
            """Sum of squares of the trunk and of every attribute's selected options."""
            total = tf.add_n([tf.reduce_sum(tf.square(w)) for conv, bn in self.trunk
                              for w in conv.trainable_weights + bn.trainable_weights])

            def per_attribute(w, channels):  # [..., N*channels] -> [N]
                w = tf.reshape(tf.square(w), [-1, n, channels])
                return tf.reduce_sum(w, axis=[0, 2])

            for kernels, bns, channels, step in ((self.conv4, self.conv4_bn, c4, 2),
                                                 (self.conv5, self.conv5_bn, c5, 6)):
                choose = self._onehot(step)
                for o, (kernel, bn) in enumerate(zip(kernels, bns)):
                    sq = per_attribute(kernel, channels) + per_attribute(bn.gamma, channels) \
                        + per_attribute(bn.beta, channels)
                    total += tf.reduce_sum(sq * choose[:, o])
            for options, choose in ((self.fc1, self._onehot(7)), (self.fc2, self._onehot(8)),
                                    (self.fc3, self._onehot(9))):
                for o, (kernel, bias) in enumerate(options):
                    sq = tf.reduce_sum(tf.square(kernel), [1, 2]) \
                        + tf.reduce_sum(tf.square(bias), 1)
                    total += tf.reduce_sum(sq * choose[:, o])
            return total

        def set_choices(self, choices: Sequence[gs.Choice]) -> None:
            """Assigns one architecture per attribute (no retrace)."""
            if len(choices) != n:
                raise ValueError(f"{len(choices)} choices for {n} attributes")
            self.actions.assign(np.asarray([gs.choice_to_actions(space, c) for c in choices],
                                           np.int32))

        def set_choice(self, attribute: int, choice: gs.Choice) -> None:
            actions = self.actions.numpy()
            actions[attribute] = gs.choice_to_actions(space, choice)
            self.actions.assign(actions)

        def block_weights(self, choices: Sequence[gs.Choice]):
            """``weights(layer, block)`` -> the `TreeNetwork.block_weights` of block (layer,
            block) of ``to_architecture(space, choices)``, sliced from this child's options:
            the rows of a conv kernel for the main input and the selected skips, the columns
            of the attribute, the first FC rows of the actual widths. "FC-3 skips FC-2":
            fc2 gets FC-3's weights on FC-1, fc3 the identity."""
            def conv(kernels, bns, a, kernel, channels, main, offsets, skips):
                o = space.conv_kernels.index(kernel)
                full = kernels[o].numpy()
                rows = list(range(main)) + [r for s in skips for r in range(
                    offsets[s][0], offsets[s][1])]
                cols = slice(a * channels, (a + 1) * channels)
                bn = bns[o]
                return [full[:, :, rows, cols]] + [v.numpy()[cols] for v in (
                    bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)]

            off4 = {"conv1": (c3, c3 + c1), "conv2": (c3 + c1, c3 + c1 + c2)}
            off5 = {"conv1": (c4, c4 + c1), "conv2": (c4 + c1, c4 + c1 + c2),
                    "conv3": (c4 + c1 + c2, c4 + c1 + c2 + c3)}

            def weights(layer: int, block: int):
                if layer < 3:
                    conv_layer, bn = self.trunk[layer]
                    return [conv_layer.kernel.numpy()] + [v.numpy() for v in (
                        bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)]
                c, a = choices[block], block
                if layer == 3:
                    return conv(self.conv4, self.conv4_bn, a, c.conv4_kernel, c4, c3, off4,
                                c.conv4_skips)
                if layer == 4:
                    return conv(self.conv5, self.conv5_bn, a, c.conv5_kernel, c5, c4, off5,
                                c.conv5_skips)
                w1 = space.fc_widths.index(c.fc1_width)
                if layer == 5:
                    return [self.fc1[w1][0].numpy()[a], self.fc1[w1][1].numpy()[a]]
                if not c.fc3_reads_fc2:
                    k, b = self.fc3[0]
                    if layer == 6:
                        return [k.numpy()[a][:c.fc1_width], b.numpy()[a]]
                    return [np.eye(logits, dtype=np.float32), np.zeros(logits, np.float32)]
                if layer == 6:
                    k, b = self.fc2[space.fc_widths.index(c.fc2_width)]
                    return [k.numpy()[a][:c.fc1_width], b.numpy()[a]]
                k, b = self.fc3[1]
                return [k.numpy()[a][:c.fc2_width], b.numpy()[a]]

            return weights

    class GalmChild(AttributeModel):
        """Images [batch, H, W, 3] in [0, 255] -> logits [batch, N, 2] of the per-attribute
        architectures in ``body.actions`` (module docstring). `set_choices` assigns them."""

        def __init__(self):
            body = GalmChildBody()
            image = keras.Input(shape=tuple(image_shape), name="image")
            super().__init__(inputs=image, outputs=body(image), name="galm_child")
            self.init_training(n, image_shape, weight_decay)
            self.body = body
            self.space = space

        def weights_in_use(self):
            """Every trainable weight (a superset: `l2_in_use` weights by selection)."""
            return list(self.trainable_variables)

        def l2_in_use(self):
            return self.body.l2_in_use()

        def set_choices(self, choices: Sequence[gs.Choice]) -> None:
            self.body.set_choices(choices)

        def set_choice(self, attribute: int, choice: gs.Choice) -> None:
            self.body.set_choice(attribute, choice)

        def block_weights(self, choices: Sequence[gs.Choice]):
            return self.body.block_weights(choices)

    model = GalmChild()
    return compile_model(model, learning_rate, momentum)


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


# --- objects shared by `trackables` and `search` -----------------------------------------------
@dataclasses.dataclass
class _Objects:
    space: gs.GalmSpace
    child: object
    controller: "GalmController"
    rows: List[int]           # controller row of each of the data's attributes
    searched: List[int]       # the data's attributes that are searched (transfer: new ones)
    transfer_sources: Dict[str, str]
    row_names: List[str]      # the attribute of every controller row (transfer: source's
                              # attributes first, then the new ones)


_BUILT: Dict[int, _Objects] = {}


def _controller_config(config: GalmConfig, seed: int):
    from gnas_keras.methods.galm_controller import ControllerConfig
    return ControllerConfig(learning_rate=config.galm_controller_lr,
                            baseline_decay=config.galm_baseline_decay, seed=seed)


def _build(context: SearchContext) -> _Objects:
    import keras
    from gnas_keras.methods.galm_controller import GalmController
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
        return _Objects(space, child, controller, list(range(len(names))),
                        list(range(len(names))), {}, list(names))
    controller, source_names = load_controller(config.transfer_from, space)
    controller = _with_settings(controller, _controller_config(config, run.seed))
    return _Objects(space, child, *transfer(controller, source_names, names))


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
    objects = _build(context)
    _BUILT[id(context)] = objects
    import tensorflow as tf
    # Every child variable by position as well: Keras' tracking misses variables kept in
    # lists of tuples (the trunk's BN statistics were not checkpointed without this).
    every = tf.train.Checkpoint(**{f"w{i:03d}": v for i, v in enumerate(objects.child.weights)})
    return {"galm_child": objects.child, "galm_child_optimizer": objects.child.optimizer,
            "galm_child_weights": every, "galm_controller": objects.controller}


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


# --- Alg. 1 ---------------------------------------------------------------------------------------
def _fixed_batches(context: SearchContext, batches: int):
    """The same `batches` validation batches for every reward, as an endless dataset that
    cycles through them, and the number of batches per cycle."""
    import tensorflow as tf
    stream = context.val_data(5, 0)
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


def _search(context: SearchContext) -> SearchResult:
    from gnas_keras.reporting.reporter import format_duration
    from gnas_keras.training.loop import Loop
    config, run = context.method_config, context.config
    objects = _BUILT.pop(id(context))
    space, child, controller = objects.space, objects.child, objects.controller
    rows, searched = objects.rows, objects.searched
    n, rng = context.num_attributes, context.rng
    state = GalmState.from_dict(context.saved_state) if context.saved_state \
        else GalmState(rng_state=rng.bit_generator.state)
    rng.bit_generator.state = state.rng_state
    start = time.time() - state.elapsed
    loop = Loop(child, context.train_data, run.seed)
    dataset, count = _fixed_batches(context, config.galm_val_batches)
    val = loop.iterator(dataset)
    frozen = {a: controller.most_probable(rows[a]) for a in range(n) if a not in searched}

    def save(boundary: str) -> None:
        state.rng_state = rng.bit_generator.state
        state.elapsed = time.time() - start
        context.checkpoint(state, boundary)

    uniform = config.galm_sampler == "uniform"

    def sample(a: int, *position: int) -> gs.Choice:
        if a in frozen:
            return frozen[a]
        if uniform:
            return gs.uniform_random_choice(
                space, np.random.default_rng(segment_seed(run.seed, *position)))
        seed = (run.seed, segment_seed(run.seed, *position))
        return controller.sample(rows[a], seed)[0]

    while state.phase < config.galm_phases:
        phase = state.phase
        if not state.child_done:
            loop.restart(6, phase)
            losses = []
            for step in range(config.galm_child_steps):
                child.set_choices([sample(a, 7, phase, step, a) for a in range(n)])
                evaluation = loop.train(1)
                check_finite(evaluation, f"GALM child phase {phase} step {step}")
                losses.append(evaluation.loss)
            state.child_loss.append(float(np.mean(losses)) if losses else float("nan"))
            state.child_done = True
            context.logger.progress(
                f"GALM phase {phase + 1}/{config.galm_phases}  child: "
                f"{config.galm_child_steps} steps  train loss {state.child_loss[-1]:.4f}  "
                f"elapsed {format_duration(time.time() - start)}")
            save("warmup")
        while state.controller_done < config.galm_controller_steps and searched:
            step = state.controller_done
            a = searched[int(rng.integers(len(searched)))]
            choice = sample(a, 8, phase, step)
            child.set_choice(a, choice)
            reward = _reward(loop, val, count, a, config.galm_reward)
            if uniform:
                baseline = None
                if reward > state.best.get(str(a), [0, -np.inf])[1]:
                    state.best[str(a)] = [gs.encode(space, choice), reward]
            else:
                baseline = controller.update(rows[a], choice, reward).baseline
            state.rewards.append([a, reward, baseline])
            state.controller_done += 1
            state.evaluations += 1
            every = max(1, config.galm_controller_steps // 5)
            if state.controller_done % every == 0 \
                    or state.controller_done == config.galm_controller_steps:
                recent = [r[1] for r in state.rewards[-every:]]
                context.logger.progress(
                    f"GALM phase {phase + 1}/{config.galm_phases}  controller step "
                    f"{state.controller_done}/{config.galm_controller_steps}  mean reward "
                    f"{np.mean(recent):.4f}  "
                    + ("" if baseline is None else f"baseline {baseline:.4f}  ") +
                    f"elapsed {format_duration(time.time() - start)}")
            save("candidate")
        state.phase, state.child_done, state.controller_done = phase + 1, False, 0
        save("phase")
    return _finish(context, objects, loop, val, count, state)


def _finish(context, objects: _Objects, loop, val, count, state: GalmState) -> SearchResult:
    config, names = context.method_config, context.attribute_names
    space, child, controller, rows = (objects.space, objects.child, objects.controller,
                                      objects.rows)
    choices = []
    for a in range(len(names)):
        best = controller.most_probable(rows[a])
        if config.galm_sampler == "uniform":
            if str(a) in state.best:  # else never evaluated: the untrained controller's
                best = gs.decode(space, int(state.best[str(a)][0]))
        elif config.galm_final_samples and a in objects.searched:
            candidates = [best] + [controller.sample(
                rows[a], (context.config.seed, segment_seed(context.config.seed, 9, a, m)))[0]
                for m in range(config.galm_final_samples)]
            rewards = []
            for c in candidates:
                child.set_choice(a, c)
                rewards.append(_reward(loop, val, count, a, config.galm_reward))
            best = candidates[int(np.argmax(rewards))]
        choices.append(best)
    workdir = context.config.workdir
    save_controller(workdir, controller, objects.row_names, config.galm_space)
    reps = controller.representations()[rows]
    from gnas_keras.methods.galm_controller import attribute_correlation, embedding_ari
    correlation = attribute_correlation(reps)
    picture = os.path.join(workdir, "galm_attribute_correlation.png")
    _correlation_picture(correlation, names, picture)
    report = {
        "galm": {
            "architectures": {a: dataclasses.asdict(c) for a, c in zip(names, choices)},
            "design_choice_frequencies": [dataclasses.asdict(r) for r in
                                          gs.design_choice_frequencies(space, choices)],
            "attribute_correlation": correlation.tolist(),
            "attribute_correlation_picture": picture,
            "searched_attributes": [names[a] for a in objects.searched],
            "transfer_from": config.transfer_from,
            "transfer_sources": objects.transfer_sources,
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
    architecture = to_architecture(space, choices, f"galm_{config.galm_space}")
    model = None
    if config.galm_finetune_from_child:
        from gnas_keras.models.tree_net import copy_weights
        from gnas_keras.training.loop import new_tree_network
        model = new_tree_network(context.config, architecture, context.image_shape,
                                 context.config.seed, context.strategy)
        copy_weights(child.block_weights(choices), model)
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


METHOD = Method("galm", _search, GalmConfig, uses_supernet=False, trackables=_trackables,
                summary="GALM: an RL controller picks one architecture per attribute "
                        "(Cheng et al. 2018).")
