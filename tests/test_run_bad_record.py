"""A converted record whose image does not decode (issue 30, case 9, run side): named in one
line (shard and record) before the run by the full-decode check, or, with --nocheck_images,
when the run meets it; and a shard that disappears mid-run (case 10) is one line too."""

import os
import re
import shutil

import tensorflow as tf

from gnas_keras import run as run_module
from gnas_keras.checkpoint import RunCheckpoint
from gnas_keras.config import RunConfig
from gnas_keras_pipelines import records
from tests.test_run_safety import in_process

SEARCH = ["--export_dir=", "--batch_size=16", "--train_steps=2", "--val_batches=1",
          "--max_rounds=1", "--warmup_steps=30"]


def _break_images(shard, first):
    """Rewrites `shard` with the images of records `first`.. (1-based) cut short: their CRCs
    are valid, their images do not decode."""
    recs = [r.numpy() for r in tf.data.TFRecordDataset(shard)]
    with tf.io.TFRecordWriter(shard) as writer:
        for number, data in enumerate(recs, start=1):
            if number >= first:
                example = tf.train.Example.FromString(data)
                image = example.features.feature["image"].bytes_list.value
                image[0] = image[0][:len(image[0]) // 2]
                data = example.SerializeToString()
            writer.write(data)


def test_an_undecodable_record_is_one_line_before_or_during_the_run(synthetic_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    shard = data / "train-00000-of-00002.tfrecord"
    _break_images(str(shard), 2)  # every record from the 2nd on: training meets one at once
    (before_code, before), (during_code, during) = in_process("search", [
        [f"--data_dir={data}", f"--workdir={tmp_path / 'run1'}", *SEARCH],
        [f"--data_dir={data}", f"--workdir={tmp_path / 'run2'}", "--nocheck_images", *SEARCH]])
    named = re.escape(f"search: error: {shard}:record 2: image does not decode (")
    lines = before.strip().splitlines()
    assert before_code == 2 and len(lines) == 1 and re.match(named, lines[0]), before[-2000:]
    errors = [line for line in during.strip().splitlines() if "error" in line.lower()]
    assert during_code == 2 and len(errors) == 1, during[-3000:]
    assert re.match(named + r".*\); convert the dataset again; no checkpoint yet: the same "
                    "command starts over$", errors[0]), errors
    assert "Traceback" not in before + during and "function_node" not in before + during


def test_a_shard_gone_mid_run_is_one_line(tmp_path):
    """What a search meets when `flags.convert --overwrite` replaced its dataset with one of
    other shard names: TensorFlow's NotFoundError for the old shard."""
    data = str(tmp_path / "data")
    config = RunConfig(data_dir=data, workdir=str(tmp_path / "run"))
    saver = RunCheckpoint(config.workdir, config.to_dict())
    gone = os.path.join(data, "train-00001-of-00008.tfrecord")
    err = tf.errors.NotFoundError(None, None, f"{gone}; No such file or directory")
    named = run_module.corrupt_data_error(config, saver, err)
    assert str(named) == (f"{gone}: disappeared while the run read it (was the dataset "
                          "converted again with --overwrite?); no checkpoint yet: the same "
                          "command starts over")
    # A file the run reads that is not the dataset's is not the dataset's fault.
    other = tf.errors.NotFoundError(None, None, "/elsewhere/x; No such file or directory")
    assert run_module.corrupt_data_error(config, saver, other) is None
    assert isinstance(named, records.DatasetError)
