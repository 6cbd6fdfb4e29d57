"""The tf.data input function shared by every dataset.

`make_dataset` reads the shards written by `pipelines.records`, decodes images in parallel,
resizes them to the dataset's working size, then crops (random + horizontal flip for training,
central for evaluation) and batches. It yields ``(images, labels)``:

- images: float32 [batch, crop_height, crop_width, 3], pixel values in [0, 255]. Normalisation
  happens inside the model (`gnas_keras.supernet.normalize_images`) so that an exported
  SavedModel takes the same raw pixels.
- labels: int32 [batch, N] with 1 = yes, 0 = no, -1 = unknown.

Per-dataset defaults (working size, crop, flip) live in one table, `PREPROCESSING`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import tensorflow as tf

from pipelines import records


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How a dataset's images become model inputs.

    Attributes:
      height, width: every decoded image is resized to this first (pixels).
      crop_height, crop_width: model input size; random crop in training, central crop in
        evaluation. Equal to height/width means no cropping.
      flip: random horizontal flip in training. Off where left/right carries meaning (the
        synthetic set has a position factor).
    """

    height: int
    width: int
    crop_height: int
    crop_width: int
    flip: bool = True

    def __post_init__(self):
        if self.crop_height > self.height or self.crop_width > self.width:
            raise ValueError(
                f"crop {self.crop_height}x{self.crop_width} is larger than the image "
                f"{self.height}x{self.width}")
        if min(self.height, self.width, self.crop_height, self.crop_width) <= 0:
            raise ValueError(f"image and crop sizes must be positive, got {self}")


# Sources: CelebA crop 192x168 and LFWA crop 224x224 from GNAS sec. 4.1; CelebA's aligned
# images are 218x178 and LFW's 250x250. Market-1501 crops are 128x64 and the paper does not
# crop them further. AwA2, aPY and SUN have images of varying size: the common 256 -> 224
# ImageNet recipe is our choice.
PREPROCESSING = {
    "synthetic": Preprocessing(32, 32, 32, 32, flip=False),
    "celeba": Preprocessing(218, 178, 192, 168),
    "lfwa": Preprocessing(250, 250, 224, 224),
    "market1501": Preprocessing(128, 64, 128, 64),
    "awa2": Preprocessing(256, 256, 224, 224),
    "awa1": Preprocessing(256, 256, 224, 224),
    "apy": Preprocessing(256, 256, 224, 224),
    "sun": Preprocessing(256, 256, 224, 224),
}


def preprocessing_for(dataset: str, crop_height: int = 0, crop_width: int = 0,
                      flip: Optional[bool] = None) -> Preprocessing:
    """The table's entry for `dataset`, with optional overrides (0 / None keep the default)."""
    if dataset not in PREPROCESSING:
        raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(PREPROCESSING)}")
    p = PREPROCESSING[dataset]
    return Preprocessing(p.height, p.width, crop_height or p.crop_height,
                         crop_width or p.crop_width, p.flip if flip is None else flip)


def _decode(serialized, num_attributes: int, prep: Preprocessing):
    parsed = tf.io.parse_single_example(serialized, records.feature_spec(num_attributes))
    image = tf.io.decode_image(parsed["image"], channels=3, expand_animations=False)
    image = tf.image.resize(tf.cast(image, tf.float32), [prep.height, prep.width])
    return image, tf.cast(parsed["attributes"], tf.int32)


def _augment(seed, image, labels, prep: Preprocessing):
    """Random crop and flip from an explicit per-example seed [2] (stateless ops), so the
    augmentation depends only on the dataset seed and the example's position, not on how many
    datasets the process built before: a resumed run sees the same crops."""
    image = tf.image.stateless_random_crop(image, [prep.crop_height, prep.crop_width, 3],
                                           seed=seed)
    if prep.flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=seed[::-1])
    return image, labels


def _center_crop(image, labels, prep: Preprocessing):
    top = (prep.height - prep.crop_height) // 2
    left = (prep.width - prep.crop_width) // 2
    image = image[top:top + prep.crop_height, left:left + prep.crop_width, :]
    return tf.ensure_shape(image, [prep.crop_height, prep.crop_width, 3]), labels


def shard_files(data_dir: str, split: str) -> list:
    """Shard paths of `split`; ``train+validation`` joins both. Raises if there are none."""
    files = []
    for part in split.split("+"):
        found = sorted(tf.io.gfile.glob(records.shard_pattern(data_dir, part)))
        if not found:
            raise FileNotFoundError(
                f"{records.shard_pattern(data_dir, part)}: no shards for split {part!r}")
        files += found
    return files


def make_dataset(data_dir: str, split: str, batch_size: int, training: bool,
                 prep: Preprocessing, seed: int = 0, shuffle_buffer: int = 4096,
                 shuffled_evaluation: bool = False, shard: Tuple[int, int] = (1, 0)
                 ) -> tf.data.Dataset:
    """Batches of ``(images, labels)`` from a converted dataset.

    Training datasets repeat forever, shuffle, augment and drop the last partial batch; their
    order and augmentation are a function of `seed` alone. Evaluation datasets use central
    crops and are read once in a fixed order, or, with `shuffled_evaluation`, forever in an
    order shuffled by `seed` (the stream GNAS draws its reward batches from).

    The shuffle buffer holds serialized records, before decoding, so that starting a new
    iterator (every GNAS candidate does, see `training.Loop.restart`) costs little.

    ``shard=(W, k)``: worker k of a multi-worker run reads only files k, k + W, ... of the
    split (sharding by file, done here rather than by tf.data's auto-sharding, which refuses
    the augmentation's second source, ``Dataset.random``; auto-sharding is switched off).
    """
    meta = records.read_metadata(data_dir)
    workers, index = shard
    files = shard_files(data_dir, split)[index::workers]
    if not files:
        raise ValueError(f"{data_dir}: split {split!r} has fewer shard files than the "
                         f"{workers} workers (file sharding needs one per worker)")
    n = meta.num_attributes
    auto = tf.data.AUTOTUNE
    if training:
        ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed)
        ds = ds.repeat().interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                                    num_parallel_calls=auto, deterministic=True)
        ds = ds.shuffle(shuffle_buffer, seed=seed)
        ds = ds.map(lambda s: _decode(s, n, prep), num_parallel_calls=auto)
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        ds = tf.data.Dataset.zip(seeds, ds).map(
            lambda s, xy: _augment(s, xy[0], xy[1], prep), num_parallel_calls=auto)
        ds = ds.batch(batch_size, drop_remainder=True)
    else:
        ds = tf.data.TFRecordDataset(files)
        if shuffled_evaluation:
            ds = ds.repeat().shuffle(shuffle_buffer, seed=seed)
        ds = ds.map(lambda s: _decode(s, n, prep), num_parallel_calls=auto)
        ds = ds.map(lambda x, y: _center_crop(x, y, prep), num_parallel_calls=auto)
        ds = ds.batch(batch_size)
    if workers > 1:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.OFF
        ds = ds.with_options(options)
    return ds.prefetch(auto)


def input_shape(prep: Preprocessing) -> Tuple[int, int, int]:
    return (prep.crop_height, prep.crop_width, 3)
