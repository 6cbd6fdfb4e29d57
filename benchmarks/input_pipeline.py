r"""tf.data input throughput vs what the supernet's train step consumes.

    PYTHONPATH=. .venv/bin/python -m benchmarks.input_pipeline    # CelebA-like, shallow_thin

Writes a CelebA-like converted dataset (JPEG 218x178, 40 attributes, 8 shards) to a temporary
directory with `pipelines.records`, reads it with `pipelines.input.make_dataset` and the
``celeba`` preprocessing (decode, resize, random 192x168 crop, flip, batch 64), and alternates:
A = pulling batches from the training iterator (after draining what it had prefetched while B
ran), B = supernet train steps on the full shallow_thin tree (in-memory batch).
Ratio = images/s delivered by tf.data / images/s consumed by training. Target >= 3.

Both run on the same 2 cores but not at the same time, so the ratio is the pipeline's headroom
when it has the machine to itself; during training it gets what the step leaves idle.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tempfile  # noqa: E402

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import measure, timing  # noqa: E402  (timing defines the model flags)
from benchmarks.train_step import random_batch, supernet_on_full_tree  # noqa: E402
from gnas_keras_pipelines import records  # noqa: E402
from gnas_keras_pipelines.input import make_dataset, preprocessing_for  # noqa: E402

flags.DEFINE_integer("images", 1024, "Images in the generated training split.")
flags.DEFINE_integer("batches", 12, "Batches pulled per timed tf.data sample.")
FLAGS = flags.FLAGS

TARGET = 3.0


def write_celeba_like(path: str, num_images: int, num_attributes: int, height: int = 218,
                      width: int = 178) -> None:
    """JPEG (quality 90) images with smooth content (upsampled noise), like photographs in
    size and decode cost; random labels in {-1, 0, 1}."""
    rng = np.random.default_rng(0)
    with records.DatasetWriter(path, {"train": 8}) as writer:
        for i in range(num_images):
            low = rng.uniform(0, 255, (1, height // 8, width // 8, 3)).astype("float32")
            image = tf.image.resize(low, [height, width], method="bicubic")[0]
            image = tf.cast(tf.clip_by_value(image + rng.normal(0, 6, image.shape), 0, 255),
                            tf.uint8)
            writer.add("train", tf.io.encode_jpeg(image, quality=90).numpy(),
                       rng.integers(-1, 2, num_attributes).tolist(), key=f"{i:06d}")
        writer.finish(records.Metadata(
            name="celeba", source="benchmarks.input_pipeline", split_sizes={},
            attribute_names=[f"attr{i:02d}" for i in range(num_attributes)],
            image_height=height, image_width=width))


def main(argv):
    del argv
    n = FLAGS.num_attributes
    prep = preprocessing_for("celeba", FLAGS.crop_height, FLAGS.crop_width)
    shape = (prep.crop_height, prep.crop_width, 3)
    data_dir = os.path.join(tempfile.mkdtemp(prefix="gnas-bench-"), "celeba")
    write_celeba_like(data_dir, FLAGS.images, n, prep.height, prep.width)
    pipeline = iter(make_dataset(data_dir, "train", FLAGS.batch_size, training=True,
                                 prep=prep, shuffle_buffer=FLAGS.images))
    supernet, _ = supernet_on_full_tree(FLAGS.space, n, shape)
    train_iter = iter(random_batch(FLAGS.batch_size, shape, n))

    def drain():  # batches prefetched while the train step ran: not timed
        for _ in range(8):  # more than tf.data's autotuned prefetch buffer holds
            next(pipeline)

    def read_batches():
        for _ in range(FLAGS.batches):
            images, _ = next(pipeline)
        return images.shape

    def train():
        logs = supernet.train_function(train_iter)
        float(logs["loss"])

    print(f"machine: {measure.machine()}")
    print(f"tf.data: celeba preprocessing ({prep.height}x{prep.width} JPEG -> "
          f"{prep.crop_height}x{prep.crop_width}), batch {FLAGS.batch_size}, "
          f"{FLAGS.batches} batches per sample; train: {FLAGS.space}, {n} attributes")
    samples = measure.interleaved({"tf.data": read_batches, "supernet train step": train},
                                 FLAGS.repeats, before={"tf.data": drain})
    samples["tf.data, per batch"] = [t / FLAGS.batches for t in samples.pop("tf.data")]
    medians = measure.report("seconds per batch of 64", samples)
    ratio = medians["supernet train step"] / medians["tf.data, per batch"]
    print(f"tf.data {FLAGS.batch_size / medians['tf.data, per batch']:.0f} images/s, "
          f"training {FLAGS.batch_size / medians['supernet train step']:.1f} images/s")
    print(f"RATIO tf.data / train step throughput = {ratio:.1f} (target >= {TARGET}: "
          f"{'met' if ratio >= TARGET else 'MISSED'})")


if __name__ == "__main__":
    app.run(main)
