"""`flags.convert --overwrite` replaces only a converted dataset, atomically; nothing else it
is pointed at is ever deleted; converted datasets are readable by the user's group."""

import os
import stat
import subprocess
import sys

import pytest

from gnas_keras_pipelines import celeba, records
from tests import fixtures_datasets as fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "flags.convert", "--dataset=celeba", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _tree(path):
    """Every file below `path` with its bytes."""
    out = {}
    for folder, _, files in os.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = f.read()
    return out


def _refused(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("convert: error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def data(tmp_path):
    """``data/celeba`` holds the download; ``data/notes.txt`` is the user's."""
    fx.make_celeba(str(tmp_path / "data" / "celeba"))
    fx.write_text(str(tmp_path / "data" / "notes.txt"), "mine\n")
    return tmp_path / "data"


def test_source_dir_as_output_is_refused(data):
    before = _tree(data)
    _refused(_run(f"--source_dir={data / 'celeba'}", f"--output_dir={data / 'celeba'}",
                  "--overwrite"), "is the source folder")
    assert _tree(data) == before


def test_parent_of_source_is_refused(data):
    before = _tree(data)
    _refused(_run(f"--source_dir={data / 'celeba'}", f"--output_dir={data}", "--overwrite"),
             "contains the source folder")
    # An ancestor further up, given relative to the working folder, too.
    _refused(_run(f"--source_dir={data / 'celeba'}", "--output_dir=..", "--overwrite",
                  cwd=str(data / "celeba")), "current folder or one above it")
    assert _tree(data) == before


@pytest.mark.parametrize("output", ["", "."])
def test_empty_or_current_output_dir_is_refused(data, output):
    before = _tree(data)
    _refused(_run("--source_dir=celeba", f"--output_dir={output}", "--overwrite",
                  cwd=str(data)), "--output_dir: is empty" if not output else
             "current folder")
    assert _tree(data) == before


def test_non_dataset_folder_is_refused(data, tmp_path):
    fx.write_text(str(tmp_path / "results" / "paper.tex"), "\\begin{document}\n")
    before = _tree(tmp_path)
    _refused(_run(f"--source_dir={data / 'celeba'}", f"--output_dir={tmp_path / 'results'}",
                  "--overwrite"), "results: exists and holds no converted dataset",
             "never replaced")
    assert _tree(tmp_path) == before


def test_existing_dataset_without_overwrite_names_the_flag(data, tmp_path):
    out = tmp_path / "out"
    celeba.convert(str(data / "celeba"), str(out), num_shards=1)
    _refused(_run(f"--source_dir={data / 'celeba'}", f"--output_dir={out}"),
             "already holds a converted dataset; pass --overwrite")


def test_overwrite_replaces_a_dataset_atomically(data, tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    celeba.convert(str(data / "celeba"), out, num_shards=1)
    old = _tree(out)
    # The new copy fails to move in: the old one is back in place, nothing else is left.
    real_rename = os.rename

    def failing_rename(src, dst):
        if ".tmp-" in os.path.basename(src):
            raise OSError("simulated failure")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_rename)
    fx.conversion_error(lambda: celeba.convert(str(data / "celeba"), out, num_shards=2,
                                               overwrite=True),
                        "out: cannot write the converted dataset (simulated failure)")
    monkeypatch.setattr(os, "rename", real_rename)
    assert _tree(out) == old
    assert sorted(os.listdir(tmp_path)) == ["data", "out"]
    # And a run that succeeds replaces it, leaving no old copy behind.
    meta = celeba.convert(str(data / "celeba"), out, num_shards=2, overwrite=True)
    assert meta.extra["num_shards"] == 2 and _tree(out) != old
    assert sorted(os.listdir(tmp_path)) == ["data", "out"]


def test_output_is_readable_by_the_group(data, tmp_path):
    old = os.umask(0o022)
    try:
        celeba.convert(str(data / "celeba"), str(tmp_path / "out"), num_shards=1)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "out").st_mode) == 0o755
    for name in os.listdir(tmp_path / "out"):
        assert stat.S_IMODE(os.stat(tmp_path / "out" / name).st_mode) == 0o644, name
    records.check_dataset(str(tmp_path / "out"))


def test_an_empty_folder_made_beforehand_is_used(data, tmp_path):
    os.makedirs(tmp_path / "out")
    meta = celeba.convert(str(data / "celeba"), str(tmp_path / "out"), num_shards=1)
    assert records.check_dataset(str(tmp_path / "out")) == meta
