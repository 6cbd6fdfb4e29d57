"""The train step on Keras' JAX backend: stateless, jit-compiled, TensorFlow's arithmetic.

`TrainStep(model)` is the JAX counterpart of `tf_backend.train_step` for any
`AttributeModel` (the supernet, a tree network, GALM's child) built under
``KERAS_BACKEND=jax``: the same masked cross-entropy, the same L2 on the weights in use, the
same per-layer gradient scales and the same SGD with (Nesterov) momentum as the model's
compiled optimizer (`base.make_optimizer`), including the dynamic loss scale of a
mixed-precision model (Keras' ``LossScaleOptimizer``: initial 2^15, halved and the step
skipped on a non-finite gradient, doubled after 2,000 finite steps).

The model's variables are the state. Each call reads them (weights, batch-norm statistics,
routing, training switches, momentum, loss scale), runs one jit-compiled function of those
arrays and the batch, and assigns the results back. Anything a search assigns between
steps (`Supernet.set_routing`, `train_only_from`, `snapshot` / `restore`, the learning
rate) is therefore an argument value, not a constant of the trace: the function is traced
once per batch shape (`TrainStep.traces` counts) and never recompiled for a new routing.

Row-sparse update. TensorFlow hands the supernet's gathered rows over as sparse gradients
and `tf_backend.SparseSGD` updates those rows only. JAX's gradients are dense (zeros on the
inactive edges), so the step keeps the weights and momentum of every row outside
`AttributeModel.rows_in_use` as they were: the same result.

This module imports JAX; nothing else in `gnas_keras.models` does.
"""

from __future__ import annotations

from typing import List

import jax
import jax.numpy as jnp
import keras
from keras import ops

from gnas_keras.models.losses import masked_cross_entropy


class TrainStep:
    """``step(images, labels) -> loss`` (float32 scalar, the masked cross-entropy before
    L2) for `model`, a compiled `AttributeModel` on the JAX backend; updates the model's
    variables and its optimizer's.

    images: float [batch, H, W, 3] in [0, 255]; labels: int [batch, N] in {-1, 0, 1}.
    """

    def __init__(self, model):
        if keras.backend.backend() != "jax":
            raise ValueError(f"jax_backend.TrainStep needs KERAS_BACKEND=jax, "
                             f"not {keras.backend.backend()}")
        self.model = model
        optimizer, sgd = model.optimizer, model.sgd
        self.momentum, self.nesterov = float(sgd.momentum), bool(sgd.nesterov)
        self._momentums = ([model.momentum_of(v) for v in model.trainable_variables]
                           if self.momentum else [])
        self._loss_scale = optimizer if optimizer is not sgd else None
        # Finite steps before the scale doubles (Keras' default 2,000); unused without scaling.
        self._growth_steps = getattr(self._loss_scale, "dynamic_growth_steps", 2000)
        self.traces = 0  # Python side effect of tracing: counts traces, not steps
        self._step = jax.jit(self._stateless_step)

    # --- the pure function ----------------------------------------------------------------
    def _stateless_step(self, trainable, non_trainable, momentums, learning_rate,
                        loss_scale, good_steps, images, labels):
        self.traces += 1
        model = self.model

        def scaled_loss(trainable):
            mapping = (list(zip(model.trainable_variables, trainable))
                       + list(zip(model.non_trainable_variables, non_trainable)))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                logits = ops.cast(model(images, training=True), "float32")
                loss = masked_cross_entropy(labels, logits)
                total = loss + 0.5 * model.weight_decay * model.l2_in_use()
                rows = model.rows_in_use()
                scales = [None if s is None else ops.convert_to_tensor(s)
                          for s in model.gradient_scales()]
            updated = [scope.get_current_value(v) for v in model.non_trainable_variables]
            return total * loss_scale, (loss, updated, rows, scales)

        grads, (loss, non_trainable, rows, scales) = jax.grad(scaled_loss, has_aux=True)(
            trainable)
        grads = [g / loss_scale for g in grads]
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in grads]))
        new_trainable, new_momentums = [], []
        for i, (w, g) in enumerate(zip(trainable, grads)):
            g = g.astype(w.dtype) if scales[i] is None else (g * scales[i]).astype(w.dtype)
            if self.momentum:  # Keras' SGD, as tf_backend.SparseSGD on the rows in use
                m = momentums[i] * self.momentum - g * learning_rate
                step = m * self.momentum - g * learning_rate if self.nesterov else m
            else:
                m, step = None, -g * learning_rate
            keep = ~finite  # a non-finite step changes nothing (loss scaling)
            if rows[i] is not None:
                keep = keep | ~rows[i].reshape((-1,) + (1,) * (w.ndim - 1))
            new_trainable.append(jnp.where(keep, w, w + step))
            if m is not None:
                new_momentums.append(jnp.where(keep, momentums[i], m))
        # Keras' LossScaleOptimizer: halve on overflow, double after enough finite steps.
        grow = good_steps + 1 >= self._growth_steps
        loss_scale = jnp.where(finite, jnp.where(grow, loss_scale * 2, loss_scale),
                               loss_scale / 2)
        good_steps = jnp.where(finite & ~grow, good_steps + 1, 0)
        return (new_trainable, non_trainable, new_momentums, loss_scale, good_steps,
                finite, loss)

    # --- one call: read the variables, step, write them back ------------------------------
    def __call__(self, images, labels):
        model, scaler = self.model, self._loss_scale
        loss_scale = (jnp.float32(1.0) if scaler is None
                      else jnp.asarray(scaler.dynamic_scale.value, jnp.float32))
        good_steps = (jnp.int32(0) if scaler is None
                      else jnp.asarray(scaler.step_counter.value, jnp.int32))
        (trainable, non_trainable, momentums, loss_scale, good_steps, finite,
         loss) = self._step(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [m.value for m in self._momentums],
            jnp.asarray(model.sgd.learning_rate, jnp.float32),
            loss_scale, good_steps, images, labels)
        _assign(model.trainable_variables, trainable)
        _assign(model.non_trainable_variables, non_trainable)
        _assign(self._momentums, momentums)
        if scaler is not None:
            scaler.dynamic_scale.assign(loss_scale)
            scaler.step_counter.assign(good_steps)
        model.sgd.iterations.assign_add(1)
        return loss


def _assign(variables: List, values: List) -> None:
    for v, value in zip(variables, values):
        v.assign(value)


def predict_function(model):
    """A jit-compiled ``predict(images) -> logits`` [batch, N, 2] of `model` in inference
    mode (moving batch-norm statistics, no dropout), reading the current variables."""
    @jax.jit
    def forward(trainable, non_trainable, images):
        logits, _ = model.stateless_call(trainable, non_trainable, images, training=False)
        return logits

    def predict(images):
        return forward([v.value for v in model.trainable_variables],
                       [v.value for v in model.non_trainable_variables], images)
    return predict
