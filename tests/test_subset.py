"""pipelines.subset: a converted dataset restricted to chosen attributes."""

import json

import numpy as np
import pytest
import tensorflow as tf

from gnas_keras_pipelines import records
from gnas_keras_pipelines.subset import subset_attributes


def labels_by_key(data_dir, split):
    meta = records.read_metadata(data_dir)
    spec = records.feature_spec(meta.num_attributes)
    out = {}
    for path in records.shard_set(data_dir, split):
        for serialized in tf.data.TFRecordDataset(path):
            example = tf.io.parse_single_example(serialized, spec)
            out[example["key"].numpy()] = (example["attributes"].numpy(),
                                           example["image"].numpy())
    return out


def test_subset_keeps_images_splits_and_the_chosen_columns(synthetic_dir, tmp_path):
    source = records.read_metadata(synthetic_dir)
    names = ["texture_rule_3", "colour_rule_1", "colour_rule_3"]  # out of order on purpose
    meta = subset_attributes(synthetic_dir, str(tmp_path / "sub"), names)
    saved = json.load(open(tmp_path / "sub" / "metadata.json"))
    assert saved["attribute_names"] == names == meta.attribute_names
    assert saved["split_sizes"] == source.split_sizes
    assert saved["groups"] == [["colour_rule_1", "colour_rule_3"], ["texture_rule_3"]]
    columns = [source.attribute_names.index(n) for n in names]
    for split in source.split_sizes:
        before, after = labels_by_key(synthetic_dir, split), labels_by_key(tmp_path / "sub",
                                                                           split)
        assert before.keys() == after.keys() and len(after) == source.split_sizes[split]
        for key, (attributes, image) in after.items():
            np.testing.assert_array_equal(attributes, before[key][0][columns])
            assert image == before[key][1]
    with pytest.raises(ValueError, match="no attribute 'nope'"):
        subset_attributes(synthetic_dir, str(tmp_path / "bad"), ["colour_rule_1", "nope"])
    assert not (tmp_path / "bad").exists()
