"""The tf.data input function shared by every dataset.

`make_dataset` reads the shards written by `pipelines.records`, decodes images in parallel,
resizes them to the dataset's working size, then crops (random + horizontal flip for training,
central for evaluation) and batches. It yields ``(images, labels)``:

- images: float32 [batch, crop_height, crop_width, 3], pixel values in [0, 255]. Normalisation
  happens inside the model (`gnas_keras.supernet.normalize_images`) so that an exported
  SavedModel takes the same raw pixels.
- labels: int32 [batch, N] with 1 = yes, 0 = no, -1 = unknown.

Per-dataset defaults (working size, crop, flip) live in one table, `PREPROCESSING`; any other
converted dataset gets them from its metadata (`preprocessing_for`). Several converted
datasets can be read as one (`make_dataset` with a list of folders).
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from gnas_keras_pipelines import records


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


# Datasets outside the table (own data converted with --dataset=folder, combinations): the
# working size is the stored typical image size, scaled down so that the longer side is at
# most this many pixels (aspect kept); random crops take CROP_FRACTION of each side (the
# 224/256 ImageNet recipe the table uses for AwA, aPY and SUN); flips are off, because a
# mirror image changes labels that depend on orientation (text, slant, left or right: on
# the fonts set flips left `slanted` at chance, docs/fonts_set.md), which only the user can
# rule out (`--flip` turns them on). Our choice.
MAX_WORKING_SIDE = 256
CROP_FRACTION = 0.875


def preprocessing_for(dataset: Union[str, records.Metadata], crop_height: int = 0,
                      crop_width: int = 0, flip: Optional[bool] = None, *,
                      image_height: int = 0, image_width: int = 0) -> Preprocessing:
    """How a dataset's images become model inputs: defaults plus overrides (0 / None keep a
    default).

    Args:
      dataset: a converted dataset's metadata (any dataset), or the name of one of the six
        known sets. The known sets (by ``metadata.name``) take their row of `PREPROCESSING`;
        any other dataset gets its defaults from the metadata's image size (see
        `MAX_WORKING_SIDE`, `CROP_FRACTION`); a combination of datasets
        (`records.combine_metadata`) takes its first dataset's.
      image_height, image_width: working size every image is resized to (pixels), e.g. 64 x
        64 for quick CelebA runs. Giving one keeps the default's aspect ratio. Unless given,
        the crop is scaled by the same factor (CelebA 218x178 crop 192x168 at 64x64 -> crop
        56x60).
      crop_height, crop_width: model input size (pixels), at most the working size.
      flip: random horizontal flips in training.
    Raises:
      ValueError: unknown name without metadata, or sizes that do not fit.
    """
    base = _default_preprocessing(dataset)
    height, width = base.height, base.width
    if image_height or image_width:
        if image_height < 0 or image_width < 0:
            raise ValueError(f"image_height/image_width must be positive, got "
                             f"{image_height}x{image_width}")
        height = image_height or max(1, round(base.height * image_width / base.width))
        width = image_width or max(1, round(base.width * image_height / base.height))
    crop_h = crop_height or max(1, round(base.crop_height * height / base.height))
    crop_w = crop_width or max(1, round(base.crop_width * width / base.width))
    return Preprocessing(height, width, crop_h, crop_w, base.flip if flip is None else flip)


def _default_preprocessing(dataset: Union[str, records.Metadata]) -> Preprocessing:
    if isinstance(dataset, str):
        if dataset not in PREPROCESSING:
            raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(PREPROCESSING)} "
                             "(for any other converted dataset pass its metadata)")
        return PREPROCESSING[dataset]
    name, height, width = dataset.name, dataset.image_height, dataset.image_width
    parts = dataset.extra.get("combined")
    if parts:
        name, height, width = parts[0]["name"], parts[0]["image_height"], \
            parts[0]["image_width"]
    if name in PREPROCESSING:
        return PREPROCESSING[name]
    scale = min(1.0, MAX_WORKING_SIDE / max(height, width))
    height, width = max(1, round(height * scale)), max(1, round(width * scale))
    return Preprocessing(height, width, max(1, round(CROP_FRACTION * height)),
                         max(1, round(CROP_FRACTION * width)), flip=False)


def _decode(serialized, num_attributes: int, prep: Preprocessing, before: int = 0,
            after: int = 0, jpeg_quality: int = 0):
    """Parses and resizes one record. Labels get `before` and `after` unknowns (-1) around
    them: the attributes of the other datasets of a combination. `jpeg_quality` > 0
    re-encodes the decoded image as JPEG of that quality first (the model card's test of
    inputs encoded unlike the training data)."""
    parsed = tf.io.parse_single_example(serialized, records.feature_spec(num_attributes))
    image = records.decode_image(parsed["image"])
    if jpeg_quality:
        image = tf.io.decode_jpeg(tf.io.encode_jpeg(image, quality=jpeg_quality), channels=3)
    image = tf.image.resize(tf.cast(image, tf.float32), [prep.height, prep.width])
    labels = tf.cast(parsed["attributes"], tf.int32)
    if before or after:
        labels = tf.concat([tf.fill([before], records.UNKNOWN), labels,
                            tf.fill([after], records.UNKNOWN)], axis=0)
    return image, labels


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


@dataclasses.dataclass(frozen=True)
class _Source:
    """One converted dataset inside a (possibly combined) input: its shards, its attribute
    count, the unknowns padded before and after its labels, and its size in the split."""

    files: List[str]
    num_attributes: int
    before: int
    after: int
    size: int


def _sources(data_dir: Union[str, Sequence[str]], split: str,
             shard: Tuple[int, int] = (1, 0)) -> List[_Source]:
    data_dirs = [data_dir] if isinstance(data_dir, str) else list(data_dir)
    workers, index = shard
    if not data_dirs:
        raise ValueError("no data_dir given")
    metas = [records.read_metadata(d) for d in data_dirs]
    total = sum(m.num_attributes for m in metas)
    out, offset = [], 0
    for d, meta in zip(data_dirs, metas):
        n = meta.num_attributes
        size = sum(meta.split_sizes.get(part, 0) for part in split.split("+"))
        files = shard_files(d, split)[index::workers]
        if not files:
            raise ValueError(f"{d}: split {split!r} has fewer shard files than the "
                             f"{workers} workers (file sharding needs one per worker)")
        out.append(_Source(files, n, offset, total - offset - n, size))
        offset += n
    return out


def make_dataset(data_dir: Union[str, Sequence[str]], split: str, batch_size: int,
                 training: bool, prep: Preprocessing, seed: int = 0,
                 shuffle_buffer: int = 4096, shuffled_evaluation: bool = False,
                 shard: Tuple[int, int] = (1, 0), jpeg_quality: int = 0) -> tf.data.Dataset:
    """Batches of ``(images, labels)`` from a converted dataset, or from several read as one.

    Training datasets repeat forever, shuffle, augment and drop the last partial batch; their
    order and augmentation are a function of `seed` alone. Evaluation datasets use central
    crops and are read once in a fixed order, or, with `shuffled_evaluation`, forever in an
    order shuffled by `seed` (the stream GNAS draws its reward batches from).

    The shuffle buffer holds serialized records, before decoding, so that starting a new
    iterator (every GNAS candidate does, see `training.Loop.restart`) costs little.

    With a list of folders, labels are the concatenation of every dataset's attributes in the
    order of `records.combine_metadata`, unknown (-1) for the attributes of the datasets a
    record does not come from, so a masked loss trains each attribute on its own dataset
    only. Endless streams draw from the datasets in proportion to their split sizes (seeded
    `tf.data.Dataset.sample_from_datasets`), i.e. like one shuffled union; a single pass reads
    them one after the other. Every image is resized to the one `prep`.

    ``shard=(W, k)``: worker k of a multi-worker run reads only files k, k + W, ... of the
    split (sharding by file, done here rather than by tf.data's auto-sharding, which refuses
    the augmentation's second source, ``Dataset.random``; auto-sharding is switched off).
    ``jpeg_quality`` > 0: every image re-encoded as JPEG of that quality before resizing.
    """
    workers, _ = shard
    sources = _sources(data_dir, split, shard)
    auto = tf.data.AUTOTUNE

    def decoded(source: _Source, stream: tf.data.Dataset) -> tf.data.Dataset:
        return stream.map(lambda s: _decode(s, source.num_attributes, prep, source.before,
                                            source.after, jpeg_quality),
                          num_parallel_calls=auto)

    def endless(source: _Source, i: int) -> tf.data.Dataset:
        # Source 0 uses `seed` itself: a single dataset reads exactly as it always did.
        source_seed = seed + 7919 * i
        if training:
            ds = tf.data.Dataset.from_tensor_slices(source.files).shuffle(
                len(source.files), seed=source_seed)
            ds = ds.repeat().interleave(tf.data.TFRecordDataset,
                                        cycle_length=min(len(source.files), 8),
                                        num_parallel_calls=auto, deterministic=True)
            return decoded(source, ds.shuffle(shuffle_buffer, seed=source_seed))
        # Reward stream: shuffle within a pass, then repeat, so no example comes twice before
        # every example came once (repeat-then-shuffle drew 681 distinct images in 1,024).
        ds = tf.data.TFRecordDataset(source.files).shuffle(
            shuffle_buffer, seed=source_seed, reshuffle_each_iteration=True).repeat()
        return decoded(source, ds)

    if training or shuffled_evaluation:
        streams = [endless(source, i) for i, source in enumerate(sources)]
        if len(streams) == 1:
            ds = streams[0]
        else:
            weights = [max(source.size, 1) for source in sources]
            ds = tf.data.Dataset.sample_from_datasets(
                streams, weights=[w / sum(weights) for w in weights], seed=seed)
    else:
        ds = None
        for source in sources:
            part = decoded(source, tf.data.TFRecordDataset(source.files))
            ds = part if ds is None else ds.concatenate(part)
    if training:
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        ds = tf.data.Dataset.zip(seeds, ds).map(
            lambda s, xy: _augment(s, xy[0], xy[1], prep), num_parallel_calls=auto)
        ds = ds.batch(batch_size, drop_remainder=True)
    else:
        ds = ds.map(lambda x, y: _center_crop(x, y, prep), num_parallel_calls=auto)
        ds = ds.batch(batch_size)
    if workers > 1:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.OFF
        ds = ds.with_options(options)
    return ds.prefetch(auto)


def read_labels(data_dir: Union[str, Sequence[str]], split: str) -> np.ndarray:
    """Every label of a split, int32 [examples, attributes] (1, 0, -1 unknown), in file
    order and unsharded (the same on every worker), parsed without decoding any image.
    Several folders: one after the other, each padded with unknowns for the others'
    attributes, as `make_dataset` does."""
    sources = _sources(data_dir, split)
    width = sources[0].before + sources[0].num_attributes + sources[0].after
    parts = [np.zeros((0, width), np.int32)]
    for source in sources:
        spec = {"attributes": records.feature_spec(source.num_attributes)["attributes"]}
        ds = tf.data.TFRecordDataset(source.files).batch(4096).map(
            lambda s, spec=spec: tf.io.parse_example(s, spec)["attributes"])
        for batch in ds.as_numpy_iterator():
            parts.append(np.pad(batch.astype(np.int32), ((0, 0), (source.before, source.after)),
                                constant_values=records.UNKNOWN))
    return np.concatenate(parts)


def input_shape(prep: Preprocessing) -> Tuple[int, int, int]:
    return (prep.crop_height, prep.crop_width, 3)
