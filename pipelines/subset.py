"""A converted dataset restricted to some of its attributes (same images, same splits).

    from gnas_keras_pipelines.subset import subset_attributes
    subset_attributes("data/synthetic", "data/synthetic_12", ["colour_rule_1", ...])

Used to hold attributes out, e.g. GALM's transfer experiment (search 12 attributes, then add
the other 4 with ``--transfer_from``; `benchmarks/galm_transfer.py`). Every record is copied
with only the chosen attributes, in the order given; the metadata keeps the source's name,
sizes and extras, and its planted groups restricted to the chosen attributes. Written
atomically (`records.DatasetWriter`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import tensorflow as tf

from gnas_keras_pipelines import records


def subset_attributes(data_dir: str, output_dir: str, names: Sequence[str],
                      overwrite: bool = False) -> records.Metadata:
    """Writes `output_dir`: `data_dir` with only the attributes `names`; returns its
    metadata. Raises ValueError naming an attribute `data_dir` lacks."""
    meta = records.read_metadata(data_dir)
    unknown = [n for n in names if n not in meta.attribute_names]
    if unknown or not names:
        raise ValueError(f"{os.path.join(data_dir, records.METADATA_FILE)}: no attribute "
                         f"{unknown[0] if unknown else '(none chosen)'!r}")
    columns = [meta.attribute_names.index(n) for n in names]
    spec = records.feature_spec(meta.num_attributes)
    shards = {split: len(records.shard_set(data_dir, split)) for split in meta.split_sizes}
    with records.DatasetWriter(output_dir, shards, overwrite=overwrite,
                               protected=[data_dir]) as writer:
        for split in meta.split_sizes:
            for path in records.shard_set(data_dir, split):
                for serialized in tf.data.TFRecordDataset(path):
                    example = tf.io.parse_single_example(serialized, spec)
                    attributes = example["attributes"].numpy()
                    writer.add(split, example["image"].numpy(),
                               [int(attributes[c]) for c in columns],
                               example["key"].numpy().decode("utf-8"))
        chosen = set(names)
        groups = None if meta.groups is None else \
            [[n for n in g if n in chosen] for g in meta.groups if chosen & set(g)]
        subset = dataclasses.replace(
            meta, attribute_names=list(names), groups=groups,
            source=f"{meta.source}; attributes {', '.join(names)} of {data_dir}",
            split_sizes={})
        writer.finish(subset)
    return subset
