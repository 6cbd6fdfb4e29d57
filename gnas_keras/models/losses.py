"""The loss every model trains with, on every backend (`tf_backend`, `jax_backend`)."""

from keras import ops


def masked_cross_entropy(labels, logits):
    """Mean 2-class cross-entropy over the labelled (image, attribute) pairs.

    labels: int [batch, N] in {-1, 0, 1}; -1 (unknown) is masked out.
    logits: float [batch, N, 2]. Returns a scalar (0 when nothing is labelled).
    """
    labels = ops.cast(labels, "int32")
    mask = ops.cast(labels >= 0, logits.dtype)
    ce = ops.sparse_categorical_crossentropy(ops.maximum(labels, 0), logits, from_logits=True)
    return ops.sum(ce * mask) / ops.maximum(ops.sum(mask), 1.0)
