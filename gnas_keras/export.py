"""Export one architecture as a pruned, BN-folded SavedModel for TensorFlow Serving.

`export_saved_model(model, architecture, ...)` takes the weights from any
`gnas_keras.models.base.AttributeModel` (a supernet: the edges of the architecture's tree;
a tree network: its blocks), builds `inference_model`: a plain functional Keras model of
only the live blocks, every BN folded into its convolution ("BNs are removed in inference
phase", GNAS paper), and writes ``<export_dir>/<name>/<version>/`` (TF Serving layout)
through a temporary directory and a rename, with a ``serving_default`` signature::

    image: float32 [batch, H, W, 3], pixels in [0, 255]
      -> {attribute name: float32 [batch] probability that the attribute is present}

and ``tree.json`` (`Architecture.to_json`) beside ``saved_model.pb``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from gnas_keras.architecture import Architecture
from gnas_keras.models.base import AttributeModel
from gnas_keras.models.tree_net import TreeNetwork, build_graph, stack_logits


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name)


def inference_model(tree: TreeNetwork, attribute_names: Optional[Sequence[str]] = None
                    ) -> keras.Model:
    """`tree` with BN folded: per conv block ``Conv2D`` with kernel * gamma / sqrt(var + eps)
    and bias beta - mean * gamma / sqrt(var + eps). Output: {attribute name: probability
    [batch]} when `attribute_names` is given, else logits [batch, N, 2] like `tree`."""
    architecture, assignments = tree.architecture, []

    def make_block(l, j, name, spec, x):
        weights = tree.block_weights(l, j)
        if spec.op == "conv":
            kernel, gamma, beta, mean, var = weights
            scale = gamma / np.sqrt(var + tree.bn_epsilon)
            conv = keras.layers.Conv2D(spec.width, spec.kernel, padding="same", name=name)
            assignments.append((conv, [kernel * scale, beta - mean * scale]))
            return keras.layers.ReLU(name=f"{name}_relu")(conv(x))
        dense = keras.layers.Dense(spec.width, activation="relu" if spec.activation else None,
                                   name=name)
        assignments.append((dense, weights))
        return dense(x)

    image = keras.Input(shape=tree.image_shape, name="image")
    heads = build_graph(architecture, image, make_block)
    if attribute_names is None:
        outputs = stack_logits(heads)
    else:
        if len(attribute_names) != len(heads):
            raise ValueError(f"{len(attribute_names)} attribute names for {len(heads)} "
                             "attributes")
        outputs = {attr: keras.layers.Lambda(lambda z: tf.nn.softmax(z)[:, 1],
                                             name=f"prob_{i}_{_safe(attr)}")(heads[i])
                   for i, attr in enumerate(attribute_names)}
    model = keras.Model(image, outputs, name="tree")
    for layer, weights in assignments:
        layer.set_weights(weights)
    return model


def next_version(model_dir: str) -> int:
    """One more than the highest numeric version under `model_dir` (1 if none)."""
    versions = [int(v) for v in os.listdir(model_dir) if v.isdigit()] \
        if os.path.isdir(model_dir) else []
    return max(versions, default=0) + 1


def export_saved_model(model: AttributeModel, architecture: Architecture,
                       attribute_names: Sequence[str], export_dir: str, name: str,
                       version: Optional[int] = None) -> str:
    """Prunes `model` to `architecture`, folds BN, and writes a SavedModel; returns its
    versioned directory (`next_version` unless `version` is given)."""
    folded = inference_model(model.to_tree_network(architecture), attribute_names)
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
        archive.track(folded)
        spec = tf.TensorSpec([None, *model.image_shape], tf.float32, name="image")
        archive.add_endpoint(name="serving_default",
                             fn=lambda image: folded(image, training=False),
                             input_signature=[spec])
        path = os.path.join(tmp, "model")
        archive.write_out(path, verbose=False)
        with open(os.path.join(path, "tree.json"), "w") as f:
            f.write(architecture.to_json(attribute_names))
        os.rename(path, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
