"""Destructive operations of the converters (issue 30, part 1 and part 5 for convert):
`--overwrite` replaces only a folder holding nothing but a converted dataset, through a link
it replaces the link's target, two converts into one folder cannot interleave, and an
operating-system error (read-only file system, full disk, a file where a folder belongs) is
one line naming the output folder, with nothing left behind."""

import errno
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from gnas_keras_pipelines import folder, records
from gnas_keras_pipelines import output_dir as output_dirs
from tests import fixtures_datasets as fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tree(path):
    """Every entry below `path` (folders, files with their bytes, links with their target)."""
    out = {}
    for parent, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(parent, name)
            rel = os.path.relpath(full, path)
            if os.path.islink(full):
                out[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                out[rel] = ("dir",)
            else:
                with open(full, "rb") as f:
                    out[rel] = ("file", f.read())
    return out


@pytest.fixture
def src(tmp_path):
    """A folder source: ``src/images`` and ``src/labels.csv`` (8 images)."""
    fx.make_folder(str(tmp_path / "src"), [f"{i}.jpg,{i % 2},1,0" for i in range(8)])
    return tmp_path / "src"


def _convert(src, out, **kwargs):
    kwargs.setdefault("num_shards", 1)
    return folder.convert(str(src / "images"), str(out), name="mine",
                          labels=str(src / "labels.csv"), **kwargs)


def _run(*args):
    """The binary; pass --label_values so nothing but an error is printed."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", "flags.convert", *args], cwd=ROOT,
                          env=dict(env, PYTHONPATH=ROOT), capture_output=True, text=True,
                          timeout=120)


def _one_line(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convert: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# ----------------------------------------------------------------------------- case 2

@pytest.mark.parametrize("overwrite", [True, False])
def test_overwrite_never_deletes_the_users_own_files(src, tmp_path, overwrite):
    out = tmp_path / "out"
    _convert(src, out)
    fx.write_text(str(out / "notes.txt"), "mine\n")
    fx.write_text(str(out / "sub" / "draft.tex"), "\\section{}\n")
    before = _tree(tmp_path)
    err = fx.conversion_error(lambda: _convert(src, out, overwrite=overwrite),
                              "out: holds a converted dataset and also notes.txt, sub/, which "
                              "are not the dataset's; it is never replaced")
    assert "--overwrite" not in str(err)  # never suggests the flag that would delete them
    assert _tree(tmp_path) == before


def test_binary_names_the_foreign_entries_in_one_line(src, tmp_path):
    out = tmp_path / "out"
    _convert(src, out)
    fx.write_text(str(out / "notes.txt"), "mine\n")
    before = _tree(tmp_path)
    _one_line(_run("--dataset=folder", "--name=mine", "--label_values=1/0/-1",
                   f"--source_dir={src / 'images'}",
                   f"--labels={src / 'labels.csv'}", f"--output_dir={out}", "--overwrite"),
              f"{out}: holds a converted dataset and also notes.txt")
    assert _tree(tmp_path) == before


def test_a_dataset_of_only_its_own_files_is_replaced(src, tmp_path):
    out = tmp_path / "out"
    _convert(src, out, num_shards=2)
    assert output_dirs.foreign_entries(str(out)) == []
    meta = _convert(src, out, overwrite=True, seed=5)
    assert records.check_dataset(str(out)) == meta and meta.extra["split_seed"] == 5
    assert sorted(os.listdir(tmp_path)) == ["out", "src"]


# ----------------------------------------------------------------------------- case 3

def test_overwrite_through_a_link_replaces_the_target(src, tmp_path):
    target, link = tmp_path / "disk" / "faces", tmp_path / "faces"
    _convert(src, target)
    os.symlink(target, link)
    meta = _convert(src, link, overwrite=True, seed=7)
    assert os.path.islink(link) and os.readlink(link) == str(target)
    assert records.check_dataset(str(target)) == meta and meta.extra["split_seed"] == 7
    # No hidden .faces.old-* or .tmp-* left beside the link or the target, no lock file.
    assert sorted(os.listdir(tmp_path)) == ["disk", "faces", "src"]
    assert os.listdir(tmp_path / "disk") == ["faces"]


def test_a_link_to_a_folder_of_own_files_is_refused(src, tmp_path):
    target, link = tmp_path / "results", tmp_path / "faces"
    fx.write_text(str(target / "paper.tex"), "x\n")
    os.symlink(target, link)
    before = _tree(tmp_path)
    fx.conversion_error(lambda: _convert(src, link, overwrite=True),
                        "faces: exists and holds no converted dataset")
    assert _tree(tmp_path) == before


# ----------------------------------------------------------------------------- case 5

def test_a_second_convert_into_the_same_folder_stops_and_spares_the_first(src, tmp_path):
    out = tmp_path / "out"
    first = records.DatasetWriter(str(out), {"train": 1}, overwrite=True)
    fx.conversion_error(lambda: _convert(src, out, overwrite=True),
                        "out: another convert is writing this folder (process "
                        f"{os.getpid()}, lock {tmp_path / '.out.lock'})")
    assert os.path.isdir(first.tmp_dir)  # its live temporary folder is not a "leftover"
    with first:
        first.add("train", fx.write_jpeg(str(tmp_path / "x.jpg")), [1], "x")
        first.finish(records.Metadata("one", "test", ["a"], {}, 12, 10))
    assert records.read_metadata(str(out)).name == "one"
    assert sorted(os.listdir(tmp_path)) == ["out", "src", "x.jpg"]  # lock file removed


def test_a_dataset_finished_meanwhile_by_another_process_is_not_replaced(src, tmp_path):
    out = tmp_path / "out"
    fx.write_tiny(str(tmp_path / "other"), "other", ["a"], {"train": [[1]]})
    writer = records.DatasetWriter(str(out), {"train": 1})  # out does not exist yet
    shutil.copytree(tmp_path / "other", out)  # e.g. a copy the user made meanwhile
    before = _tree(out)
    with pytest.raises(records.ConversionError, match="already holds a converted dataset"):
        with writer:
            writer.add("train", fx.write_jpeg(str(tmp_path / "x.jpg")), [1], "x")
            writer.finish(records.Metadata("mine", "test", ["a"], {}, 12, 10))
    assert _tree(out) == before
    assert sorted(os.listdir(tmp_path)) == ["other", "out", "src", "x.jpg"]


def test_leftovers_of_a_killed_convert_are_cleaned(src, tmp_path):
    out = tmp_path / "out"
    os.makedirs(tmp_path / ".out.tmp-killed")
    fx.write_text(str(tmp_path / ".out.tmp-killed" / "train-00000-of-00001.tfrecord"), "x")
    fx.write_text(str(tmp_path / ".out.lock"), "12345\n")  # its lock died with it
    _convert(src, out)
    assert sorted(os.listdir(tmp_path)) == ["out", "src"]


# ----------------------------------------------------------------------------- case 11

@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC, errno.ENOTDIR])
def test_os_errors_are_one_line_and_leave_nothing(src, tmp_path, monkeypatch, code):
    real_mkdtemp = records.tempfile.mkdtemp

    def failing(*args, **kwargs):
        raise OSError(code, os.strerror(code), kwargs.get("dir"))

    monkeypatch.setattr(records.tempfile, "mkdtemp", failing)
    fx.conversion_error(lambda: _convert(src, tmp_path / "out"),
                        f"out: cannot write the converted dataset ({os.strerror(code)}); "
                        "nothing was written")
    monkeypatch.setattr(records.tempfile, "mkdtemp", real_mkdtemp)
    assert sorted(os.listdir(tmp_path)) == ["src"]


class _FullDisk:
    """A TFRecordWriter on a disk that fills after `room` records; its close fails again as
    the real one's final flush does."""

    room = 3

    def __init__(self, path):
        self.path = path
        open(path, "wb").close()

    def write(self, record):
        _FullDisk.room -= 1
        if _FullDisk.room < 0:
            raise tf.errors.ResourceExhaustedError(
                None, None, f"{self.path}; No space left on device")

    def close(self):
        if _FullDisk.room < 0:
            raise tf.errors.ResourceExhaustedError(
                None, None, f"{self.path}; No space left on device")


def test_full_disk_is_one_line_and_keeps_the_old_dataset(src, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _convert(src, out)
    before = _tree(out)
    monkeypatch.setattr(records.tf.io, "TFRecordWriter", _FullDisk)
    _FullDisk.room = 3
    fx.conversion_error(lambda: _convert(src, out, overwrite=True, num_shards=2),
                        "out: cannot write the converted dataset (No space left on device)")
    assert _tree(out) == before
    assert sorted(os.listdir(tmp_path)) == ["out", "src"]  # no .out.tmp-*, no lock


def test_a_file_where_a_folder_belongs_is_one_line(src, tmp_path, monkeypatch):
    fx.write_text(str(tmp_path / "data"), "a file\n")
    _one_line(_run("--dataset=folder", "--name=mine", "--label_values=1/0/-1",
                   f"--source_dir={src / 'images'}",
                   f"--labels={src / 'labels.csv'}", f"--output_dir={tmp_path / 'data' / 'x'}"),
              f"{tmp_path / 'data' / 'x'}: {tmp_path / 'data'} is a file, not a folder")
    assert sorted(os.listdir(tmp_path)) == ["data", "src"]
    # Should it appear after the check (a race): the writer's one line, nothing left.
    monkeypatch.setattr(output_dirs, "check_output_dir", lambda path, *a: str(path))
    fx.conversion_error(lambda: _convert(src, tmp_path / "data" / "x"),
                        "x: cannot write the converted dataset (")
    assert sorted(os.listdir(tmp_path)) == ["data", "src"]


def _mount_tmpfs(path, options):
    os.makedirs(path, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")


@pytest.mark.parametrize("options, reason", [("size=64k", "No space left on device"),
                                             ("size=64k,ro", "Read-only file system")])
def test_real_full_or_read_only_disk(src, tmp_path, options, reason):
    """The real thing where a tmpfs can be mounted (root): 64 KiB fill up with 40 images."""
    fx.make_folder(str(src), [f"{i}.jpg,1,0,1" for i in range(40)], size=(64, 64))
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, options)
    try:
        fx.conversion_error(lambda: _convert(src, disk / "out"),
                            f"out: cannot write the converted dataset ({reason})")
        assert os.listdir(disk) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# ----------------------------------------------------------------------------- case 10

def test_a_dataset_a_search_reads_is_not_replaced(src, tmp_path):
    out = tmp_path / "out"
    _convert(src, out)
    before = _tree(tmp_path)
    with output_dirs.DatasetReadLock([str(out)]):  # what `gnas_keras.run.run` holds
        fx.conversion_error(lambda: _convert(src, out, overwrite=True),
                            "out: holds a dataset that a running search reads; it is not "
                            "replaced")
        assert _tree(tmp_path) == before
    # A search that starts while the convert runs is refused just before the swap.
    writer = records.DatasetWriter(str(out), {"train": 1}, overwrite=True)
    with output_dirs.DatasetReadLock([str(out)]):
        with pytest.raises(records.ConversionError, match="a running search reads"):
            with writer:
                writer.add("train", fx.write_jpeg(str(tmp_path / "x.jpg")), [1], "x")
                writer.finish(records.Metadata("other", "test", ["a"], {}, 12, 10))
    os.remove(tmp_path / "x.jpg")
    assert _tree(tmp_path) == before
    assert _convert(src, out, overwrite=True, seed=3).extra["split_seed"] == 3
