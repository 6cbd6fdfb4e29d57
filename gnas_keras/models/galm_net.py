"""GALM's weight-sharing child network (Cheng et al. 2018, Table 1) as Keras layers.

Backend-agnostic: the layers compute with `keras.ops` only and this module imports no
TensorFlow, so the child builds and runs under any Keras backend (TensorFlow, JAX; the
forward pass and the L2 agree across the two to float rounding: tests/test_galm_backends.py).

`GalmChild` holds, for N attributes at once, the shared trunk Conv-1..3 and per attribute one
weight set for every option of every decision of Table 1 (`galm_space.Slot`); which option
each attribute uses is the int32 variable ``actions`` [N, len(Slot)], read inside the graph,
so switching architectures never retraces the compiled train and eval functions. The pieces:

* `GalmTrunk`: Conv-1..3, shared by all attributes.
* `ChoiceConv`: Conv-4 or Conv-5 of every attribute, every kernel option, with its skip
  inputs switched on and off per attribute.
* `ChoiceDense`: FC-1, FC-2 or FC-3 of every attribute, every width option (or, for FC-3,
  every input option).
* `GalmChildBody`: the pieces wired by the decisions in ``actions``.

Block semantics follow the core's (`gnas_keras.space.architecture`), so that what is searched is
what the run exports (`gnas_keras.methods.galm` docstring): a conv block is conv (SAME, no
bias) -> BN -> ReLU -> 2x2/2 max-pool; skip inputs are max-pooled to the block's *input*
resolution and concatenated with its main input (``GalmSpace(skip_merge="concat")``).

How the options share one graph. A skip is a 0/1 factor on the part of the convolution that
reads that source (a convolution is linear in its input channels, so this equals convolving
the concatenation of the selected sources with the kernel's rows for them). Every FC option
has its own weights and its output is zero-padded to the widest option, so the next layer's
rows beyond the actual width see zeros (equal to the narrower network). All options are
computed and the sampled one is selected by a one-hot factor: simple and retrace-free, at
the compute price of all options. Unselected options get zero gradients.

Weights are created when a layer is constructed (every shape follows from its config), in a
fixed order, so that Keras' global seed gives the same initial weights on every build.
"""

from __future__ import annotations

from typing import Callable, List, Sequence

import keras
import numpy as np
from keras import ops

from gnas_keras.methods import galm_space as gs
from gnas_keras.models.base import AttributeModel, compile_model, normalize_images


def _he(fan_in: int):
    """He-normal (untruncated) for a weight read by `fan_in` inputs per output."""
    return keras.initializers.RandomNormal(stddev=float(np.sqrt(2.0 / fan_in)))


def _pool(x, k: int):
    """k x k / stride-k max-pool (the identity for k = 1). Channels last, whatever
    ``keras.config.image_data_format()`` says: every tensor here is [batch, h, w, c]."""
    return x if k == 1 else ops.max_pool(x, k, k, padding="valid",
                                         data_format="channels_last")


def _conv(x, kernel):
    """Stride-1 SAME convolution of channels-last `x` with `kernel` [k, k, in, out]."""
    return ops.conv(x, kernel, strides=1, padding="same", data_format="channels_last")


def _per_attribute_squares(weight, num_attributes: int, channels: int):
    """Sum of squares of a weight whose last axis is N groups of `channels` -> [N]."""
    squares = ops.reshape(ops.square(weight), (-1, num_attributes, channels))
    return ops.sum(squares, axis=(0, 2))


class GalmTrunk(keras.layers.Layer):
    """Conv-1..3, shared by all attributes: per layer conv (SAME, no bias) -> BN -> ReLU ->
    2x2/2 max-pool.

    Args:
      kernels, channels: per layer, the kernel size in pixels and the output channels.
      input_channels: channels of the input (3 for images).
      bn_momentum, bn_epsilon: batch norm, Keras' convention.

    Call: x [batch, H, W, input_channels] (normalized pixels) -> the list of the three
    layers' outputs, layer k's [batch, H / 2**k, W / 2**k, channels[k - 1]].
    """

    def __init__(self, kernels: Sequence[int], channels: Sequence[int], input_channels: int,
                 bn_momentum: float, bn_epsilon: float, **kwargs):
        super().__init__(**kwargs)
        self.kernels, self.channels = tuple(kernels), tuple(channels)
        self.input_channels = input_channels
        self.bn_momentum, self.bn_epsilon = bn_momentum, bn_epsilon
        self.convs, self.bns = [], []
        below = input_channels
        for i, (c, k) in enumerate(zip(self.channels, self.kernels)):
            conv = keras.layers.Conv2D(c, k, padding="same", use_bias=False,
                                       kernel_initializer=keras.initializers.HeNormal(),
                                       name=f"conv{i + 1}")
            bn = keras.layers.BatchNormalization(momentum=bn_momentum, epsilon=bn_epsilon,
                                                 name=f"conv{i + 1}_bn")
            conv.build((None, None, None, below))
            bn.build((None, None, None, c))
            self.convs.append(conv)
            self.bns.append(bn)
            below = c
        self.built = True

    def call(self, x, training=False):
        outputs = []
        for conv, bn in zip(self.convs, self.bns):
            x = _pool(ops.relu(bn(conv(x), training=training)), 2)
            outputs.append(x)
        return outputs

    def l2(self):
        """Sum of squares of every trainable weight (all are in use)."""
        return sum(ops.sum(ops.square(w)) for conv, bn in zip(self.convs, self.bns)
                   for w in conv.trainable_weights + bn.trainable_weights)

    def block_weights(self, layer: int) -> List[np.ndarray]:
        """[kernel, gamma, beta, moving mean, moving variance] of layer `layer` (0-based)."""
        bn = self.bns[layer]
        return [self.convs[layer].kernel.numpy()] + [v.numpy() for v in (
            bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)]

    def get_config(self):
        return {**super().get_config(), "kernels": list(self.kernels),
                "channels": list(self.channels), "input_channels": self.input_channels,
                "bn_momentum": self.bn_momentum, "bn_epsilon": self.bn_epsilon}


class ChoiceConv(keras.layers.Layer):
    """A searched conv block (Conv-4 or Conv-5) of N attributes with every kernel option.

    Per kernel option one kernel over the concatenation of every possible input (the main
    input first, then the skip sources in `galm_space.SKIP_SLOTS` order), N groups of output
    channels (attribute-major), and its own batch norm over those channels. Per option:
    conv (SAME) -> BN -> ReLU -> 2x2/2 max-pool; the options are summed weighted by the
    one-hot kernel choice.

    Args:
      num_attributes: N.
      channels: output channels per attribute.
      kernels: the kernel options, in pixels.
      main_channels: channels of the main input (per attribute when `grouped`).
      skip_channels: channels of each possible skip source.
      grouped: the main input is per attribute ([..., N * main_channels], Conv-4's output
        feeding Conv-5) rather than shared ([..., main_channels], Conv-3 feeding Conv-4).
      bn_momentum, bn_epsilon: batch norm, Keras' convention.

    Call: ``main`` [batch, h, w, C] (C = N * main_channels when grouped, else
    main_channels); ``skips``: one [batch, h, w, skip_channels[s]] per source, already at
    main's resolution; ``skip_on`` float [N, sources], 1 where attribute a reads source s;
    ``kernel_choice`` float one-hot [N, len(kernels)]. Returns [batch, h / 2, w / 2,
    N * channels].
    """

    def __init__(self, num_attributes: int, channels: int, kernels: Sequence[int],
                 main_channels: int, skip_channels: Sequence[int], grouped: bool,
                 bn_momentum: float, bn_epsilon: float, **kwargs):
        super().__init__(**kwargs)
        self.num_attributes, self.channels = num_attributes, channels
        self.kernel_sizes, self.main_channels = tuple(kernels), main_channels
        self.skip_channels, self.grouped = tuple(skip_channels), grouped
        self.bn_momentum, self.bn_epsilon = bn_momentum, bn_epsilon
        cin = main_channels + sum(self.skip_channels)
        self.kernels = [self.add_weight(name=f"k{k}", initializer=_he(k * k * cin),
                                        shape=(k, k, cin, num_attributes * channels))
                        for k in self.kernel_sizes]
        self.bns = [keras.layers.BatchNormalization(momentum=bn_momentum, epsilon=bn_epsilon,
                                                    name=f"{self.name}_k{k}_bn")
                    for k in self.kernel_sizes]
        for bn in self.bns:
            bn.build((None, None, None, num_attributes * channels))
        self.built = True

    def _main_conv(self, main, kernel):
        n, cin, channels = self.num_attributes, self.main_channels, self.channels
        if not self.grouped:
            return _conv(main, kernel[:, :, :cin])
        # attribute a's input -> its channels (no grouped-conv gradient on CPU, so one
        # convolution per attribute)
        return ops.concatenate([_conv(main[..., a * cin:(a + 1) * cin],
                                      kernel[:, :, :cin, a * channels:(a + 1) * channels])
                                for a in range(n)], axis=-1)

    def call(self, main, skips, skip_on, kernel_choice, training=False):
        n, channels = self.num_attributes, self.channels
        out = 0.0
        for o, (kernel, bn) in enumerate(zip(self.kernels, self.bns)):
            y = self._main_conv(main, kernel)
            # h and w: ints, or (TensorFlow, unknown at trace time) scalar tensors
            _, h, w, _ = ops.shape(y)
            y = ops.reshape(y, (-1, h, w, n, channels))
            start = self.main_channels
            for s, (source, width) in enumerate(zip(skips, self.skip_channels)):
                part = kernel[:, :, start:start + width]
                start += width
                z = _conv(source, part)
                y += ops.reshape(z, (-1, h, w, n, channels)) * skip_on[:, s][:, None]
            y = ops.reshape(y, (-1, h, w, n * channels))
            y = _pool(ops.relu(bn(y, training=training)), 2)
            out += y * ops.repeat(kernel_choice[:, o], channels)
        return out

    def l2(self, kernel_choice):
        """Sum of squares of each attribute's chosen kernel option (kernel, gamma, beta)."""
        total = 0.0
        for o, (kernel, bn) in enumerate(zip(self.kernels, self.bns)):
            sq = sum(_per_attribute_squares(w, self.num_attributes, self.channels)
                     for w in (kernel, bn.gamma, bn.beta))
            total += ops.sum(sq * kernel_choice[:, o])
        return total

    def block_weights(self, attribute: int, kernel: int, skips_on: Sequence[bool]
                      ) -> List[np.ndarray]:
        """The core block of `attribute` with kernel size `kernel` reading the skip sources
        where `skips_on` is true: [kernel rows of the main input and those sources, gamma,
        beta, moving mean, moving variance], its output channels only."""
        o = self.kernel_sizes.index(kernel)
        rows, start = list(range(self.main_channels)), self.main_channels
        for on, width in zip(skips_on, self.skip_channels):
            rows += list(range(start, start + width)) if on else []
            start += width
        cols = slice(attribute * self.channels, (attribute + 1) * self.channels)
        bn = self.bns[o]
        return [self.kernels[o].numpy()[:, :, rows, cols]] + [v.numpy()[cols] for v in (
            bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)]

    def get_config(self):
        return {**super().get_config(), "num_attributes": self.num_attributes,
                "channels": self.channels, "kernels": list(self.kernel_sizes),
                "main_channels": self.main_channels, "skip_channels": list(self.skip_channels),
                "grouped": self.grouped, "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon}


class ChoiceDense(keras.layers.Layer):
    """A searched fully connected layer of N attributes with every option (no activation).

    Per option and attribute a dense map [input_dim -> widths[o]]; each option's output is
    zero-padded to `pad_to` units and the options are summed weighted by the one-hot
    choice. FC-1 and FC-2 have one option per width; FC-3 one per input (FC-1, FC-2).

    Args:
      num_attributes: N.
      input_dim: input units per attribute.
      widths: output units of each option.
      pad_to: output units (>= max(widths)).

    Call: ``inputs`` [batch, N, input_dim], read by every option, or a list of one such
    tensor per option; ``choice`` float one-hot [N, len(widths)]. Returns [batch, N, pad_to].
    """

    def __init__(self, num_attributes: int, input_dim: int, widths: Sequence[int],
                 pad_to: int, **kwargs):
        super().__init__(**kwargs)
        self.num_attributes, self.input_dim = num_attributes, input_dim
        self.widths, self.pad_to = tuple(widths), pad_to
        if pad_to < max(self.widths):
            raise ValueError(f"pad_to={pad_to}: below the widest option {max(self.widths)}")
        self.kernels, self.biases = [], []
        for o, u in enumerate(self.widths):
            self.kernels.append(self.add_weight(name=f"o{o}_w{u}",
                                                shape=(num_attributes, input_dim, u),
                                                initializer=_he(input_dim)))
            self.biases.append(self.add_weight(name=f"o{o}_w{u}_bias",
                                               shape=(num_attributes, u), initializer="zeros"))
        self.built = True

    def call(self, inputs, choice):
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs] * len(self.widths)
        out = 0.0
        for o, (x, kernel, bias) in enumerate(zip(inputs, self.kernels, self.biases)):
            y = ops.einsum("bnd,ndu->bnu", x, kernel) + bias
            y = ops.pad(y, [[0, 0], [0, 0], [0, self.pad_to - self.widths[o]]])
            out += y * choice[None, :, o, None]
        return out

    def l2(self, choice):
        """Sum of squares of each attribute's chosen option (kernel and bias)."""
        total = 0.0
        for o, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            sq = ops.sum(ops.square(kernel), axis=(1, 2)) + ops.sum(ops.square(bias), axis=1)
            total += ops.sum(sq * choice[:, o])
        return total

    def block_weights(self, attribute: int, option: int, rows: int) -> List[np.ndarray]:
        """[kernel [rows, width], bias [width]] of `attribute`'s `option`, its first `rows`
        input rows (the actual width of the layer below)."""
        return [self.kernels[option].numpy()[attribute][:rows],
                self.biases[option].numpy()[attribute]]

    def get_config(self):
        return {**super().get_config(), "num_attributes": self.num_attributes,
                "input_dim": self.input_dim, "widths": list(self.widths),
                "pad_to": self.pad_to}


class GalmChildBody(keras.layers.Layer):
    """The whole child as one layer (so that `GalmChild` is a functional model like every
    `AttributeModel`): the trunk, Conv-4, Conv-5, FC-1..3 of N attributes, wired by the
    decisions in ``actions``.

    Args:
      space: the searched space; skips must be concatenated (``skip_merge="concat"``).
      num_attributes: N.
      image_shape: (height, width, channels) of the input in pixels; the height and width
        must be multiples of 32 (five 2x2 pools).
      dropout: rate after FC-1 and FC-2 (0: none).
      bn_momentum, bn_epsilon: batch norm, Keras' convention.

    Call: images [batch, H, W, 3], pixels in [0, 255] -> logits [batch, N, num_logits] of
    the architectures in ``actions`` (int32 [N, len(Slot)], one row per attribute, columns
    `galm_space.Slot`).
    """

    def __init__(self, space: gs.GalmSpace, num_attributes: int, image_shape,
                 dropout: float, bn_momentum: float, bn_epsilon: float, **kwargs):
        super().__init__(**kwargs)
        if space.skip_merge != "concat":
            raise ValueError("GalmChildBody concatenates skip inputs: needs a space with "
                             f"skip_merge='concat', got {space.skip_merge!r}")
        n, bn = num_attributes, dict(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)
        self.space, self.num_attributes = space, n
        self.image_shape, self.dropout = tuple(image_shape), dropout
        self.bn_momentum, self.bn_epsilon = bn_momentum, bn_epsilon
        # Keras' global seed hands the initializers their seeds in the order they are made:
        # this order (trunk, conv4, conv5, fc1, fc2, fc3, dropout) fixes the initial weights.
        self.trunk = GalmTrunk(space.shared_kernels, space.shared_channels, image_shape[-1],
                               name="trunk", **bn)
        self.actions = self.add_weight(name="actions", shape=(n, len(gs.Slot)), dtype="int32",
                                       trainable=False, initializer="zeros")
        self.conv4, self.conv5 = (ChoiceConv(
            n, space.channels(block), space.conv_kernels, space.channels(main),
            [space.channels(s) for s in gs.SKIP_SLOTS[block]], grouped=block == "conv5",
            name=block, **bn) for block, main in (("conv4", "conv3"), ("conv5", "conv4")))
        divisor, wmax = space.resolution_divisor("conv5"), max(space.fc_widths)
        flat = (image_shape[0] // divisor) * (image_shape[1] // divisor) * space.conv5_channels
        self.fc1 = ChoiceDense(n, flat, space.fc_widths, wmax, name="fc1")
        self.fc2 = ChoiceDense(n, wmax, space.fc_widths, wmax, name="fc2")
        # FC-3's options by Slot.FC3_READS_FC2: 0 reads FC-1, 1 reads FC-2.
        self.fc3 = ChoiceDense(n, wmax, (space.num_logits,) * 2, space.num_logits, name="fc3")
        self.drop = keras.layers.Dropout(dropout) if dropout else None
        self.built = True

    def choice(self, slot: gs.Slot):
        """Decision `slot` of every attribute, one-hot float [N, options]."""
        return ops.one_hot(self.actions[:, int(slot)], self.space.options(slot),
                           dtype="float32")

    def _skip_inputs(self, block: str, features):
        """Block's skip sources, pooled to its input's resolution, and which attributes read
        them (float [N, sources])."""
        slots = [int(slot) for slot in gs.SKIP_SLOTS[block].values()]  # Slot -> plain index
        on = ops.take(ops.cast(self.actions, "float32"), slots, axis=1)
        return [_pool(features[s], gs.skip_pool_factor(self.space, block, s))
                for s in gs.SKIP_SLOTS[block]], on

    def _dropout(self, x, training):
        return x if self.drop is None else self.drop(x, training=training)

    def call(self, images, training=False):
        features = dict(zip(gs.SHARED_LAYERS,
                            self.trunk(normalize_images(images), training=training)))
        for block, main, kernel in (("conv4", "conv3", gs.Slot.CONV4_KERNEL),
                                    ("conv5", "conv4", gs.Slot.CONV5_KERNEL)):
            skips, on = self._skip_inputs(block, features)
            features[block] = getattr(self, block)(features[main], skips, on,
                                                   self.choice(kernel), training=training)
        x5 = features["conv5"]  # [batch, h, w, N * c5] -> [batch, N, h * w * c5]
        n, (_, h, w, _) = self.num_attributes, ops.shape(x5)
        x5 = ops.reshape(x5, (-1, h, w, n, self.conv5.channels))
        x5 = ops.reshape(ops.transpose(x5, (0, 3, 1, 2, 4)), (-1, n, self.fc1.input_dim))
        h1 = self._dropout(ops.relu(self.fc1(x5, self.choice(gs.Slot.FC1_WIDTH))), training)
        h2 = self._dropout(ops.relu(self.fc2(h1, self.choice(gs.Slot.FC2_WIDTH))), training)
        return self.fc3([h1, h2], self.choice(gs.Slot.FC3_READS_FC2))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_attributes, self.space.num_logits)

    def l2(self):
        """Sum of squares of the trunk and of every attribute's selected options."""
        return (self.trunk.l2() + self.conv4.l2(self.choice(gs.Slot.CONV4_KERNEL))
                + self.conv5.l2(self.choice(gs.Slot.CONV5_KERNEL))
                + self.fc1.l2(self.choice(gs.Slot.FC1_WIDTH))
                + self.fc2.l2(self.choice(gs.Slot.FC2_WIDTH))
                + self.fc3.l2(self.choice(gs.Slot.FC3_READS_FC2)))

    def get_config(self):
        return {**super().get_config(), "space": self.space.to_dict(),
                "num_attributes": self.num_attributes, "image_shape": list(self.image_shape),
                "dropout": self.dropout, "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon}

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "space": gs.GalmSpace.from_dict(config["space"])})


class GalmChild(AttributeModel):
    """GALM's weight-sharing child as a trainable functional model: images [batch, H, W, 3]
    in [0, 255] -> logits [batch, N, 2] of the per-attribute architectures set by
    `set_choices` (`GalmChildBody`; module docstring).

    Args:
      space, num_attributes, image_shape, dropout, bn_momentum, bn_epsilon: `GalmChildBody`.
      weight_decay: L2 coefficient on the selected options' weights (`l2_in_use`).
    """

    def __init__(self, space: gs.GalmSpace, num_attributes: int, image_shape, *,
                 weight_decay: float, dropout: float, bn_momentum: float, bn_epsilon: float,
                 name: str = "galm_child", **kwargs):
        body = GalmChildBody(space, num_attributes, image_shape, dropout, bn_momentum,
                             bn_epsilon, name="galm_child_body")
        image = keras.Input(shape=tuple(image_shape), name="image")
        super().__init__(inputs=image, outputs=body(image), name=name, **kwargs)
        self.init_training(num_attributes, image_shape, weight_decay)
        self.body, self.space = body, space

    def weights_in_use(self):
        """Every trainable weight (a superset: `l2_in_use` weights by selection)."""
        return list(self.trainable_variables)

    def l2_in_use(self):
        return self.body.l2()

    def set_choices(self, choices: Sequence[gs.Choice]) -> None:
        """Assigns one architecture per attribute (no retrace)."""
        if len(choices) != self.num_attributes:
            raise ValueError(f"{len(choices)} choices for {self.num_attributes} attributes")
        self.body.actions.assign(np.asarray(
            [gs.choice_to_actions(self.space, c) for c in choices], np.int32))

    def set_choice(self, attribute: int, choice: gs.Choice) -> None:
        """Assigns `attribute`'s architecture, the others' kept."""
        actions = self.body.actions.numpy()
        actions[attribute] = gs.choice_to_actions(self.space, choice)
        self.body.actions.assign(actions)

    def block_weights(self, choices: Sequence[gs.Choice]
                      ) -> Callable[[int, int], List[np.ndarray]]:
        """``weights(layer, block)`` -> the `TreeNetwork.block_weights` of block (layer,
        block) of ``methods.galm.to_architecture(space, choices)`` (layers
        `galm_space.LAYERS`), sliced from this child's options: the rows of a conv kernel for
        the main input and the selected skips, the columns of the attribute, the first FC
        rows of the actual widths. "FC-3 skips FC-2": fc2 gets FC-3's weights on FC-1, fc3
        the identity."""
        body, widths, logits = self.body, self.space.fc_widths, self.space.num_logits

        def weights(layer: int, block: int) -> List[np.ndarray]:
            name, c = gs.LAYERS[layer], choices[block]
            if name in gs.SHARED_LAYERS:
                return body.trunk.block_weights(layer)
            if name in gs.SKIP_SLOTS:  # conv4, conv5
                skips = c.skips(name)
                return getattr(body, name).block_weights(
                    block, c.kernel(name), [s in skips for s in gs.SKIP_SLOTS[name]])
            if name == "fc1":
                return body.fc1.block_weights(block, widths.index(c.fc1_width), body.fc1.input_dim)
            if not c.fc3_reads_fc2:
                if name == "fc2":
                    return body.fc3.block_weights(block, 0, c.fc1_width)
                return [np.eye(logits, dtype=np.float32), np.zeros(logits, np.float32)]
            if name == "fc2":
                return body.fc2.block_weights(block, widths.index(c.fc2_width), c.fc1_width)
            return body.fc3.block_weights(block, 1, c.fc2_width)

        return weights

    def get_config(self):
        body = self.body
        return {"space": self.space.to_dict(), "num_attributes": self.num_attributes,
                "image_shape": list(self.image_shape), "weight_decay": self.weight_decay,
                "dropout": body.dropout, "bn_momentum": body.bn_momentum,
                "bn_epsilon": body.bn_epsilon, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "space": gs.GalmSpace.from_dict(config["space"])})


def build_child(space: gs.GalmSpace, num_attributes: int, image_shape, *,
                learning_rate: float, momentum: float, weight_decay: float, dropout: float,
                bn_momentum: float, bn_epsilon: float) -> GalmChild:
    """A compiled `GalmChild` (call under the strategy's scope). Its initial weights come
    from Keras' global seed: seed it (``keras.utils.set_random_seed``) first."""
    model = GalmChild(space, num_attributes, image_shape, weight_decay=weight_decay,
                      dropout=dropout, bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)
    return compile_model(model, learning_rate, momentum)


__all__ = ["GalmTrunk", "ChoiceConv", "ChoiceDense", "GalmChildBody", "GalmChild",
           "build_child"]
