"""`records.check_dataset`: a broken converted dataset is found before work starts and named
in one line (file, key, shard, record); what real tools do to metadata.json is accepted."""

import json
import os

import pytest
import tensorflow as tf

from gnas_keras_pipelines import records
from gnas_keras_pipelines.convert_errors import ConversionError, DatasetError
from tests import fixtures_datasets as fx

LABELS = [[1, 0, -1], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0]]


@pytest.fixture
def data(tmp_path):
    path = str(tmp_path / "data")
    fx.write_tiny(path, "tiny", ["a", "b", "c"], {"train": LABELS, "validation": LABELS[:2],
                                                  "test": LABELS[:1]}, num_shards=2)
    return path


def _error(data_dir, *fragments):
    with pytest.raises(DatasetError) as info:
        records.check_dataset(data_dir)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, ConversionError)  # one line
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def _edit_metadata(data_dir, change):
    path = os.path.join(data_dir, records.METADATA_FILE)
    with open(path) as f:
        raw = json.load(f)
    change(raw)
    with open(path, "w") as f:
        json.dump(raw, f, indent=2)


def test_a_good_dataset_passes(data):
    meta = records.check_dataset(data)
    assert meta.split_sizes == {"train": 5, "validation": 2, "test": 1}


def test_metadata_with_bom_and_crlf_is_read(data):
    path = os.path.join(data, records.METADATA_FILE)
    with open(path) as f:
        text = f.read()
    with open(path, "w", encoding="utf-8-sig", newline="\r\n") as f:
        f.write(text)
    assert records.check_dataset(data).name == "tiny"


def test_garbled_json_names_file_and_line(data):
    path = os.path.join(data, records.METADATA_FILE)
    with open(path) as f:
        lines = f.read().splitlines()
    lines[2] = lines[2][:-3]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    _error(data, "metadata.json:", "not valid JSON")


def test_missing_and_unknown_keys_and_wrong_types(data):
    _edit_metadata(data, lambda m: m.pop("image_width"))
    _error(data, "metadata.json: key 'image_width' is missing")
    _edit_metadata(data, lambda m: m.update(image_width=8, labels=[]))
    _error(data, "metadata.json: unknown key 'labels'")
    _edit_metadata(data, lambda m: (m.pop("labels"), m.update(split_sizes=[5, 2, 1])))
    _error(data, "key 'split_sizes' should be an object of split -> record count")


def test_missing_metadata(tmp_path):
    _error(str(tmp_path), "metadata.json: no converted dataset here")


def test_missing_shard(data):
    os.remove(os.path.join(data, "train-00001-of-00002.tfrecord"))
    _error(data, "train-00001-of-00002.tfrecord: missing shard ('train' has 1 files of 2)")


def test_truncated_shard_is_named(data):
    fx.truncate(os.path.join(data, "train-00000-of-00002.tfrecord"))
    _error(data, "train-00000-of-00002.tfrecord: truncated or corrupt: record 2 runs past "
           "the end")


def test_record_count_disagrees_with_metadata(data):
    _edit_metadata(data, lambda m: m["split_sizes"].update(validation=3))
    _error(data, "validation-*-of-*.tfrecord: the validation shards hold 2 records, "
           "metadata.json says 3")


def test_attribute_count_disagrees_with_metadata(data):
    _edit_metadata(data, lambda m: m.update(attribute_names=["a", "b", "c", "d"]))
    _error(data, "train-00000-of-00002.tfrecord:record 1: has 3 attributes, metadata.json "
           "lists 4")


def test_every_folder_of_a_combination_is_checked(data, tmp_path):
    other = str(tmp_path / "other")
    fx.write_tiny(other, "other", ["x"], {s: [[1]] for s in records.SPLITS})
    assert records.check_dataset([data, other]).num_attributes == 4
    os.remove(os.path.join(other, "test-00000-of-00001.tfrecord"))
    with pytest.raises(DatasetError, match=r"other/test-\*-of-\*.tfrecord: no shards for split"):
        records.check_dataset([data, other])


def _write_with_image(path, images, attributes=None):
    """A converted dataset whose train split holds `images` (encoded bytes) in one shard;
    the other splits one good record each."""
    with records.DatasetWriter(path, {s: 1 for s in records.SPLITS}) as writer:
        for i, data in enumerate(images):
            writer.add("train", data, (attributes or {}).get(i, [1, 0]), key=f"train/{i}")
        for split in ("validation", "test"):
            writer.add(split, images[0], [0, 1], key=split)
        writer.finish(records.Metadata("bad", "test", ["a", "b"], {}, 12, 10))


def test_an_image_that_does_not_decode_in_record_2_is_named(tmp_path):
    jpeg = fx.write_jpeg(str(tmp_path / "a.jpg"))
    path = str(tmp_path / "data")
    _write_with_image(path, [jpeg, jpeg[:-2], jpeg])  # record 2 misses its end of image
    shard = os.path.join(path, "train-00000-of-00001.tfrecord")
    message = _error(path, f"{shard}:record 2: image does not decode (")
    assert "function_node" not in message
    # The quick pass alone (--nocheck_images) does not see it: it reads record 1 only.
    assert records.check_dataset(path, check_images=False).split_sizes["train"] == 3


def test_an_attribute_value_outside_the_encoding_in_record_3_is_named(tmp_path):
    jpeg = fx.write_jpeg(str(tmp_path / "a.jpg"))
    path = str(tmp_path / "data")
    _write_with_image(path, [jpeg] * 4)
    # make_example refuses such values; write the record by hand as a foreign tool might.
    shard = os.path.join(path, "train-00000-of-00001.tfrecord")
    recs = [r.numpy() for r in tf.data.TFRecordDataset(shard)]
    example = tf.train.Example.FromString(recs[2])
    example.features.feature["attributes"].int64_list.value[:] = [1, 2]
    recs[2] = example.SerializeToString()
    with tf.io.TFRecordWriter(shard) as w:
        for r in recs:
            w.write(r)
    _error(path, f"{shard}:record 3: attribute value 2 is not -1, 0 or 1")


def test_a_byte_flipped_inside_a_record_is_named_before_the_run(data):
    from tests.test_run_safety import _flip_a_byte_inside_record

    shard = os.path.join(data, "train-00001-of-00002.tfrecord")
    _flip_a_byte_inside_record(shard, 1)
    _error(data, f"{shard}: record 2 is corrupted (corrupted record at byte ")
    records.check_dataset(data, check_images=False)
