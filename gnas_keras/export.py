"""Prune a supernet to one tree and export it as a SavedModel for TensorFlow Serving.

`build_tree_model` makes a plain functional Keras model of only the live blocks of a routing
(standard Conv2D / Dense layers, one per live block), copying the weights of the used edges.
With ``fold_bn=True`` (the export) every BN is folded into its convolution, as the paper does
for inference ("BNs are removed in inference phase"); with ``fold_bn=False`` the model keeps
trainable BN layers and is the static-graph equivalent of the supernet on that routing (used
by benchmarks).

`export_saved_model` writes ``<export_dir>/<name>/<version>/`` (TF Serving layout) through a
temporary directory and a rename, with a ``serving_default`` signature::

    image: float32 [batch, H, W, 3], pixels in [0, 255]
      -> {attribute name: float32 [batch] probability that the attribute is present}

and ``tree.json`` beside ``saved_model.pb``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Dict, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from gnas_keras.supernet import BN_EPSILON, Supernet, normalize_images
from gnas_keras.tree import Routing


def _edge(layer, child: int, parent: int) -> int:
    return parent * layer.blocks + child if layer.searchable else child


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name)


def build_tree_model(supernet: Supernet, routing: Optional[Routing] = None,
                     fold_bn: bool = True, attribute_names: Optional[Sequence[str]] = None
                     ) -> keras.Model:
    """A static model of `routing`'s live blocks, with the supernet's weights.

    Output: a dict {attribute name: probability [batch]} when `attribute_names` is given,
    else logits [batch, N, 2] like the supernet (for exact comparisons and training).
    """
    routing = routing or supernet.routing
    routing.validate(supernet.space, supernet.num_attributes)
    live = routing.live_blocks()
    image = keras.Input(shape=supernet.image_shape, name="image")
    x = keras.layers.Lambda(normalize_images, name="normalize")(image)
    below: Dict[int, keras.KerasTensor] = {0: x}
    assignments = []  # (keras layer, weights) set after the model is built
    for l, layer in enumerate(supernet.routed_layers):
        here = {}
        for j in live[l]:
            p = routing.parents[l][j]
            e = _edge(layer, j, p)
            name = f"{layer.name}_{j}"
            inp = below[p]
            if layer.__class__.__name__ == "RoutedConv":
                kernel = layer.kernel.numpy()[e]
                gamma, beta = layer.gamma.numpy()[e], layer.beta.numpy()[e]
                mean, var = layer.moving_mean.numpy()[e], layer.moving_variance.numpy()[e]
                if fold_bn:
                    scale = gamma / np.sqrt(var + BN_EPSILON)
                    conv = keras.layers.Conv2D(layer.channels, layer.kernel_size,
                                               padding="same", name=name)
                    y = conv(inp)
                    assignments.append((conv, [kernel * scale, beta - mean * scale]))
                else:
                    conv = keras.layers.Conv2D(layer.channels, layer.kernel_size,
                                               padding="same", use_bias=False, name=name)
                    bn = keras.layers.BatchNormalization(epsilon=BN_EPSILON,
                                                         name=f"{name}_bn")
                    y = bn(conv(inp))
                    assignments += [(conv, [kernel]), (bn, [gamma, beta, mean, var])]
                y = keras.layers.ReLU(name=f"{name}_relu")(y)
                y = keras.layers.MaxPooling2D(2, 2, name=f"{name}_pool")(y)
            else:
                if len(inp.shape) > 2:
                    inp = keras.layers.Flatten(name=f"{name}_flatten")(inp)
                last = l == len(supernet.routed_layers) - 1
                dense = keras.layers.Dense(layer.units, activation=None if last else "relu",
                                           name=name)
                y = dense(inp)
                if layer.dropout and not last:
                    y = keras.layers.Dropout(layer.dropout, name=f"{name}_dropout")(y)
                assignments.append((dense, [layer.kernel.numpy()[e], layer.bias.numpy()[e]]))
            here[j] = y
        if l > 0 and len(here) != len(live[l]):
            raise AssertionError("every live block must have been built")
        below = here
    n = supernet.num_attributes
    if attribute_names is None:
        logits = keras.layers.Lambda(lambda ys: tf.stack(ys, axis=1), name="logits")(
            [below[i] for i in range(n)])
        outputs = logits
    else:
        if len(attribute_names) != n:
            raise ValueError(f"{len(attribute_names)} attribute names for {n} attributes")
        outputs = {
            attr: keras.layers.Lambda(lambda z: tf.nn.softmax(z)[:, 1],
                                      name=f"prob_{i}_{_safe(attr)}")(below[i])
            for i, attr in enumerate(attribute_names)}
    model = keras.Model(image, outputs, name="tree")
    for keras_layer, weights in assignments:
        keras_layer.set_weights(weights)
    return model


def next_version(model_dir: str) -> int:
    """One more than the highest numeric version under `model_dir` (1 if none)."""
    versions = [int(v) for v in os.listdir(model_dir) if v.isdigit()] \
        if os.path.isdir(model_dir) else []
    return max(versions, default=0) + 1


def export_saved_model(supernet: Supernet, routing: Routing, attribute_names: Sequence[str],
                       export_dir: str, name: str, tree_json: str,
                       version: Optional[int] = None) -> str:
    """Prunes, folds BN, and writes a SavedModel; returns its versioned directory."""
    model = build_tree_model(supernet, routing, fold_bn=True, attribute_names=attribute_names)
    model_dir = os.path.join(export_dir, name)
    os.makedirs(model_dir, exist_ok=True)
    version = version or next_version(model_dir)
    for stale in os.listdir(model_dir):  # left by an export that was killed
        if stale.startswith(".") and ".tmp-" in stale:
            shutil.rmtree(os.path.join(model_dir, stale), ignore_errors=True)
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final}: export version already exists")
    tmp = tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=model_dir)
    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        spec = tf.TensorSpec([None, *supernet.image_shape], tf.float32, name="image")
        archive.add_endpoint(name="serving_default",
                             fn=lambda image: model(image, training=False),
                             input_signature=[spec])
        path = os.path.join(tmp, "model")
        archive.write_out(path, verbose=False)
        with open(os.path.join(path, "tree.json"), "w") as f:
            f.write(tree_json)
        os.rename(path, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
