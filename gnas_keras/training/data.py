"""The datasets of a run, from its config (`pipelines.input` does the reading)."""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

import numpy as np
import tensorflow as tf

from gnas_keras_pipelines import input as data_input
from gnas_keras_pipelines import records

# `RunConfig` in annotations is gnas_keras.config.RunConfig, not imported (no import circle
# through the config's method registry).


def repeat_batches(dataset: tf.data.Dataset, fixed_batches: Optional[int] = None
                   ) -> tf.data.Dataset:
    """An endless evaluation stream: cycles through `dataset` in order, or through only its
    first `fixed_batches` batches (so that every evaluation sees the same examples)."""
    if fixed_batches:
        dataset = dataset.take(fixed_batches).cache()
    return dataset.repeat()


def planted_groups(meta: records.Metadata) -> Optional[List[int]]:
    """Group index of every attribute if the dataset has a planted grouping, else None."""
    if not meta.groups:
        return None
    index = {a: g for g, members in enumerate(meta.groups) for a in members}
    return [index[a] for a in meta.attribute_names]


def bounded_by_validation(config: RunConfig, examples: int) -> Tuple[RunConfig, List[str]]:
    """`config` with ``eval_batch_size`` at most the validation split's `examples` and
    ``val_batches`` at most one pass over it (ceil(examples / eval_batch_size) batches), and
    a line for each clamp.

    The reward stream repeats the split before it batches: a batch far above the split
    re-reads it for every batch (a 100000 batch on 128 examples never seemed to finish), and
    V batches beyond one pass score every candidate on the same examples again (V = 100000
    re-read the split for hours) with no information gained."""
    candidates, notes = config.candidates, []
    batch = min(config.eval_batch_size, examples)
    if batch < config.eval_batch_size:
        notes.append(f"eval_batch_size: {config.eval_batch_size} is more than the validation "
                     f"split's {examples} examples; using {batch}")
    one_pass = -(-examples // batch)
    if candidates.val_batches > one_pass:
        passes = -(-candidates.val_batches * batch // examples)
        notes.append(f"val_batches: {candidates.val_batches} batches of {batch} would read the "
                     f"{examples} validation examples {passes} times per candidate; using "
                     f"{one_pass} (one pass)")
    return dataclasses.replace(config, eval_batch_size=batch, candidates=dataclasses.replace(
        candidates, val_batches=min(candidates.val_batches, one_pass))), notes


@dataclasses.dataclass
class Data:
    """The datasets of a run. Training and reward streams are functions seed -> dataset, so
    that every segment of a run can start a stream of its own (see `training.segment_seed`)."""

    meta: records.Metadata
    prep: data_input.Preprocessing
    config: RunConfig
    # (workers, this worker's index): a multi-worker run's workers read disjoint shard files
    # (`pipelines.input.make_dataset`); `test_whole` is never sharded.
    shard: Tuple[int, int] = (1, 0)
    # What `load` changed in the config (`bounded_by_validation`), one line each.
    notes: List[str] = dataclasses.field(default_factory=list)

    @classmethod
    def load(cls, config: RunConfig) -> "Data":
        """Checks the dataset(s) before any work starts (`records.check_dataset`: metadata,
        complete shard sets, record counts, the first record of every split, and with
        ``check_images`` every record decoded) and builds the
        preprocessing from the metadata plus the config's overrides. The Data's `config` is
        `config` `bounded_by_validation` (the run continues with it; `notes` says any
        clamp, for the run to print once its checks have passed).

        Raises:
          DatasetError: naming the file, shard or metadata key.
          ValueError: a config that does not fit the data (naming the field).
        """
        dirs = config.data_dirs
        meta = records.check_dataset(dirs[0] if len(dirs) == 1 else list(dirs),
                                     check_images=config.check_images)
        if config.dataset and meta.name != config.dataset:
            raise ValueError(f"dataset: {config.data_dir} holds dataset {meta.name!r}, "
                             f"not {config.dataset!r}")
        prep = data_input.preprocessing_for(meta, config.crop_height, config.crop_width,
                                            config.flip, image_height=config.image_height,
                                            image_width=config.image_width)
        if config.num_attributes and config.num_attributes != meta.num_attributes:
            raise ValueError(f"num_attributes: {config.num_attributes} given, but "
                             f"{config.data_dir} has {meta.num_attributes}")
        for split in ("train", "validation", "test"):
            if meta.split_sizes.get(split, 0) < 1:
                raise ValueError(f"{config.data_dir}: split {split!r} is empty")
        if meta.split_sizes["train"] < config.batch_size:
            raise ValueError(f"batch_size: {config.batch_size} is larger than the training "
                             f"split ({meta.split_sizes['train']} examples)")
        bounded, notes = bounded_by_validation(config, meta.split_sizes["validation"])
        return cls(meta, prep, bounded, notes=notes)

    def _make(self, split: str, training: bool, seed: int = 0, **kwargs) -> tf.data.Dataset:
        batch = self.config.batch_size if training else self.config.eval_batch_size
        kwargs.setdefault("shard", self.shard)
        dirs = self.config.data_dirs
        return data_input.make_dataset(dirs[0] if len(dirs) == 1 else list(dirs), split,
                                       batch, training, self.prep, seed=seed, **kwargs)

    def train(self, seed: int) -> tf.data.Dataset:
        return self._make("train", True, seed)

    def train_and_validation(self, seed: int) -> tf.data.Dataset:
        return self._make("train+validation", True, seed)

    def rewards(self, seed: int) -> tf.data.Dataset:
        """Endless validation batches for rewards: shuffled by `seed`, or with
        ``fixed_val_batches`` always the same first V batches."""
        candidates = self.config.candidates
        if candidates.fixed_val_batches:
            return repeat_batches(self._make("validation", False), candidates.val_batches)
        return self._make("validation", False, seed, shuffled_evaluation=True)

    def training_labels(self) -> np.ndarray:
        """Every training label, int32 [examples, attributes], the same on every worker
        (GNAS+'s tree from label correlations)."""
        dirs = self.config.data_dirs
        return data_input.read_labels(dirs[0] if len(dirs) == 1 else list(dirs), "train")

    @property
    def validation(self) -> tf.data.Dataset:
        """One pass over the validation split in a fixed order (decision thresholds)."""
        return self._make("validation", False)

    @property
    def test(self) -> tf.data.Dataset:
        return self._make("test", False)

    @property
    def test_whole(self) -> tf.data.Dataset:
        """The whole test split, also on a worker of a multi-worker run (predictions)."""
        return self._make("test", False, shard=(1, 0))

    @property
    def test_whole_jpeg95(self) -> tf.data.Dataset:
        """`test_whole` with every image re-encoded as JPEG quality 95 (the model card's
        encoding check: how much compression the training images lacked costs)."""
        return self._make("test", False, shard=(1, 0), jpeg_quality=95)

    @property
    def image_shape(self):
        return data_input.input_shape(self.prep)
