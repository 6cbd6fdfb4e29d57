"""Issue 30, search side: names from the data stay under --export_dir (case 6), the validation
reads are bounded by the split and Ctrl-C ends a binary blocked inside TensorFlow (case 8),
bad settings and attribute names that cannot be exported fail before any training, naming the
flag or file (case 15), a full disk is one line (case 11)."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from gnas_keras.config import RunConfig
from tests.test_run_safety import ENV, ROOT, in_process


def dataset_copy(synthetic_dir, path, **metadata):
    """A copy of the synthetic set at `path` with `metadata` keys of metadata.json replaced
    (names only: the records do not hold them)."""
    shutil.copytree(synthetic_dir, path)
    with open(path / "metadata.json") as f:
        meta = json.load(f)
    meta.update(metadata)
    (path / "metadata.json").write_text(json.dumps(meta))
    return meta


def test_names_from_the_data_and_bad_settings_fail_before_any_work(synthetic_dir, tmp_path):
    escaping = tmp_path / "escaping"
    dataset_copy(synthetic_dir, escaping, name="../../g/x")
    clash = tmp_path / "clash"
    with open(os.path.join(synthetic_dir, "metadata.json")) as f:
        names = json.load(f)["attribute_names"]
    dataset_copy(synthetic_dir, clash, attribute_names=["smile", "smile_present", *names[2:]])
    exports = tmp_path / "exports" / "base"
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "synthetic_gnas").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    rule = ("a model name is letters, digits, '_', '.', '-' and '+', starting with a letter "
            "or digit, at most 200 characters")
    cases = [
        ([f"--data_dir={escaping}"],
         f"search: error: {escaping}/metadata.json: dataset name '../../g/x' cannot name an "
         f"export ({rule}); pass --export_name"),
        (["--export_name=../x"], f"search: error: export_name: '../x' cannot name an export "
                                 f"({rule})"),
        (["--export_name=.hidden"], "search: error: export_name: '.hidden' cannot name"),
        ([f"--export_dir={linked}"],
         f"search: error: export_dir: {linked}/synthetic_gnas resolves to "
         f"{tmp_path}/elsewhere, outside {linked}"),
        ([f"--data_dir={clash}"],
         f"search: error: {clash}/metadata.json attribute_names: attribute 'smile_present' "
         "clashes with the decision output of attribute 'smile' in the export; rename one of "
         "them"),
        (["--seed=-1"], "search: error: seed: must be >= 0, got -1"),
        ([f"--workdir={a_file}"], f"search: error: workdir: {a_file} is not writable "
                                  f"({a_file} is a file, where a folder is needed)"),
        ([f"--export_dir={a_file}/x/y"], f"search: error: export_dir: {a_file}/x/y is not "
                                         "writable (Not a directory)"),
        (["--learning_rate=nan"], "search: error: learning_rate: must be a finite number, "
                                  "got nan"),
        (["--momentum=nan"], "search: error: momentum: must be a finite number, got nan"),
        (["--weight_decay=inf"], "search: error: weight_decay: must be a finite number, "
                                 "got inf"),
    ]
    argvs = []
    for i, (args, _) in enumerate(cases):
        defaults = {"--data_dir": synthetic_dir, "--workdir": tmp_path / f"run{i}",
                    "--export_dir": exports}
        given = {a.split("=")[0] for a in args}
        argvs.append([f"{k}={v}" for k, v in defaults.items() if k not in given] + args)
    for (args, message), (code, stderr) in zip(cases, in_process("search", argvs)):
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith(message), (args, lines)
    assert not (tmp_path / "g").exists() and not (tmp_path / "elsewhere").exists()
    assert a_file.read_text() == "not a folder"
    assert not (tmp_path / "exports" / "x").exists()
    for i in range(len(cases)):
        assert not (tmp_path / f"run{i}" / "checkpoints").exists()


def test_validation_reads_are_bounded_by_the_split(synthetic_dir):
    from gnas_keras.config import CandidateConfig
    from gnas_keras.training.data import Data

    config = RunConfig(data_dir=synthetic_dir, eval_batch_size=100000,
                       candidates=CandidateConfig(val_batches=100000))
    data = Data.load(config)
    assert data.meta.split_sizes["validation"] == 128
    assert (data.config.eval_batch_size, data.config.candidates.val_batches) == (128, 1)
    assert data.notes == [
        "eval_batch_size: 100000 is more than the validation split's 128 examples; using 128",
        "val_batches: 100000 batches of 128 would read the 128 validation examples 100000 "
        "times per candidate; using 1 (one pass)"]
    assert config.eval_batch_size == 100000  # the caller's config is not changed
    fits = Data.load(RunConfig(data_dir=synthetic_dir, eval_batch_size=48,
                               candidates=CandidateConfig(val_batches=3)))
    assert (fits.config.eval_batch_size, fits.config.candidates.val_batches, fits.notes) == (
        48, 3, [])
    over = Data.load(RunConfig(data_dir=synthetic_dir, eval_batch_size=48,
                               candidates=CandidateConfig(val_batches=4)))
    assert over.config.candidates.val_batches == 3 and over.notes == [
        "val_batches: 4 batches of 48 would read the 128 validation examples 2 times per "
        "candidate; using 3 (one pass)"]
    batches = list(data.rewards(0).take(2).as_numpy_iterator())
    assert [len(labels) for _, labels in batches] == [128, 128]


# A binary whose main thread blocks inside TensorFlow (a dequeue from an empty queue) as a
# reward stream filling a huge batch did: Python's SIGINT handler cannot run.
BLOCKED = """
import sys
from gnas_keras_flags import common
common.CTRL_C_GRACE_SECONDS = float(sys.argv.pop(1))

def main(argv):
    import tensorflow as tf
    queue = tf.queue.FIFOQueue(1, tf.int32)
    print("blocking", flush=True)
    queue.dequeue()

common.run(main)
"""


def test_ctrl_c_ends_a_binary_blocked_inside_tensorflow():
    runs = {}
    for grace, signals in ((2, 1), (600, 2)):
        runs[signals] = subprocess.Popen(
            [sys.executable, "-c", BLOCKED, str(grace)], cwd=ROOT, env=ENV, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for signals, proc in runs.items():
        assert proc.stdout.readline().strip() == "blocking", proc.stderr.read()[-2000:]
        time.sleep(0.5)
        start = time.time()
        for _ in range(signals):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.2)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and time.time() - start < 30
        lines = err.strip().splitlines()
        assert len(lines) == 1, err[-2000:]
        expected = ("interrupted twice, stopped at once" if signals == 2 else
                    "interrupted; TensorFlow did not give control back within 2 s, stopped "
                    "at once")
        assert lines[0] == (f"-c: {expected}; what was completely written is kept (a search "
                            "resumes from its last checkpoint with the same command)")


def test_a_full_disk_during_a_checkpoint_keeps_the_last_complete_one(tmp_path, monkeypatch):
    import tensorflow as tf

    from gnas_keras import checkpoint

    saver = checkpoint.RunCheckpoint(str(tmp_path), {"seed": 0})
    weights = tf.Variable([1.0, 2.0])
    saver.save({"phase": "search"}, {"weights": weights})
    first = saver.latest
    state = (tmp_path / "checkpoints" / "state.json").read_text()
    real_write = tf.train.Checkpoint.write

    def full_disk(self, path, *args, **kwargs):
        with open(path + ".index", "wb") as f:  # a part written before the disk filled
            f.write(b"partial")
        raise tf.errors.ResourceExhaustedError(
            None, None, f"{path}_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; No "
                        "space left on device")

    weights.assign([3.0, 4.0])
    monkeypatch.setattr(tf.train.Checkpoint, "write", full_disk)
    kept = (f"the last complete checkpoint {first} and state.json are kept, and the same "
            "command resumes from them")
    with pytest.raises(OSError) as raised:
        saver.save({"phase": "search", "evaluations": 9}, {"weights": weights})
    assert str(raised.value) == (f"{tmp_path}/checkpoints: could not write a checkpoint (No "
                                 f"space left on device); {kept}")
    monkeypatch.setattr(tf.train.Checkpoint, "write", real_write)

    def no_room(path, value):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(checkpoint, "write_json_atomic", no_room)
    with pytest.raises(OSError, match=r"could not write a checkpoint \(No space left on "
                                      r"device\); the last complete checkpoint"):
        saver.save({"phase": "search", "evaluations": 9}, {"weights": weights})
    # state.json and the weights it names are untouched; nothing of the failed saves is left
    assert (tmp_path / "checkpoints" / "state.json").read_text() == state
    assert sorted(os.listdir(tmp_path / "checkpoints")) == sorted(
        ["state.json", "ckpt-1.index", "ckpt-1.data-00000-of-00001"])
    restored = checkpoint.RunCheckpoint(str(tmp_path), {"seed": 0})
    restored.restore_state()
    target = tf.Variable([0.0, 0.0])
    assert restored.restore_objects({"weights": target})
    assert target.numpy().tolist() == [1.0, 2.0]


@pytest.mark.parametrize("error, line", [
    ("ResourceExhaustedError", "/r/run/tensorboard/events.out: no space left on the device "
                               "(ENOSPC)"),
    ("FailedPreconditionError", "/r/run/tensorboard/events.out: Read-only file system "
                                "(EROFS)"),
    ("PermissionDeniedError", "/r/run/tensorboard/events.out: Permission denied (EACCES)"),
    ("NotFoundError", "/r/run/tensorboard/events.out: No such file or directory (ENOENT)"),
])
def test_tensorflows_os_errors_are_one_line_with_the_errno_name(error, line):
    import tensorflow as tf

    from gnas_keras_flags import common

    strerror = line.split(": ", 1)[1].rsplit(" (", 1)[0]
    strerror = "No space left on device" if "no space" in strerror else strerror
    err = getattr(tf.errors, error)(None, None, f"/r/run/tensorboard/events.out; {strerror} "
                                                "[Op:WriteSummary]")
    assert common.tensorflow_os_error_line(err) == line
    assert common.tensorflow_os_error_line(tf.errors.InvalidArgumentError(
        None, None, "shapes differ")) is None
    assert common.os_error_line(OSError(errno.ENOTDIR, "Not a directory", "/a/file/x")) == \
        "/a/file/x: Not a directory (ENOTDIR)"


def test_a_full_disk_while_saving_predictions_leaves_no_partial_file(tmp_path, monkeypatch):
    import numpy as np

    from gnas_keras import run

    def full_disk(path, **arrays):
        with open(path, "wb") as f:
            f.write(b"PK partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(np, "savez", full_disk)
    target = tmp_path / "test_predictions.npz"
    with pytest.raises(OSError, match="No space left on device"):
        run.save_predictions(str(target), np.zeros((2, 1)), np.zeros((2, 1)), ["a"])
    assert os.listdir(tmp_path) == []


# The search binary with a disk that fills at its third checkpoint write.
FULL_DISK_SEARCH = """
import sys
from gnas_keras_flags import common, search  # first: quiets TensorFlow's start-up lines
import tensorflow as tf

real, writes = tf.train.Checkpoint.write, []

def write(self, path, *args, **kwargs):
    writes.append(path)
    if len(writes) == 3:
        raise tf.errors.ResourceExhaustedError(None, None, path + "_temp/part-00000; No space "
                                               "left on device")
    return real(self, path, *args, **kwargs)

tf.train.Checkpoint.write = write
sys.argv = ["search", *sys.argv[1:]]
common.run(search.main)
"""


def test_a_full_disk_during_a_search_is_one_line_and_keeps_the_last_checkpoint(synthetic_dir,
                                                                               tmp_path):
    args = [f"--data_dir={synthetic_dir}", f"--workdir={tmp_path}", "--export_dir=",
            "--batch_size=16", "--eval_batch_size=64", "--train_steps=1", "--val_batches=1",
            "--max_rounds=1", "--checkpoint_every=1", "--finetune_steps=2"]
    result = subprocess.run([sys.executable, "-c", FULL_DISK_SEARCH, *args], cwd=ROOT,
                            env=ENV, capture_output=True, text=True, timeout=600)
    errors = [l for l in result.stderr.splitlines() if l.startswith("search:")]
    state = json.load(open(tmp_path / "checkpoints" / "state.json"))
    kept = state["checkpoint"]
    assert result.returncode == 2 and errors == [
        f"search: error: {tmp_path}/checkpoints: could not write a checkpoint (No space left "
        f"on device); the last complete checkpoint {kept} and state.json are kept, and the "
        "same command resumes from them"], result.stderr[-3000:]
    assert "Traceback" not in result.stderr and kept.endswith("ckpt-2")
    assert sorted(f for f in os.listdir(tmp_path / "checkpoints") if "ckpt-3" in f) == []
    assert not (tmp_path / "run.lock").exists()
    import tensorflow as tf
    assert tf.train.load_checkpoint(kept).get_variable_to_shape_map()  # complete, readable
