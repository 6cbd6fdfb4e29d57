"""The project installs as a package (pyproject.toml): console scripts that run outside the
checkout, a `--help` that shows each binary's own flags, and no TensorFlow before flags parse."""

import os
import pathlib
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINARIES = ("search", "convert", "export", "evaluate", "describe", "study")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_pyproject_lists_every_package_folder():
    tool = _pyproject()["tool"]["setuptools"]
    folders = {name: path for name, path in tool["package-dir"].items()}
    listed = set(tool["packages"])
    found = set()
    for top, installed in (("gnas_keras", "gnas_keras"), ("flags", "gnas_keras_flags"),
                           ("pipelines", "gnas_keras_pipelines")):
        assert top == "gnas_keras" or folders[installed] == top
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((installed, *rel)))
    assert found == listed


def test_every_binary_has_a_console_script():
    scripts = _pyproject()["project"]["scripts"]
    assert scripts == {f"gnas-{b}": f"gnas_keras_flags.{b}:cli" for b in BINARIES}


def _script(name):
    path = pathlib.Path(sys.executable).parent / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in this environment (make installs it)")
    return str(path)


def test_console_script_help_outside_the_checkout_shows_the_binarys_own_flags(tmp_path):
    result = subprocess.run([_script("gnas-search"), "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Search (or train a fixed tree)" in result.stdout  # the binary's docstring
    for flag in ("--train_steps", "--batch_size", "--method", "generate_synthetic",
                 "--reward"):
        assert flag in result.stdout
    assert "--test_tmpdir" not in result.stdout


@pytest.mark.parametrize("binary", ["search", "study"])
def test_helpfull_lists_no_flags_of_tensorflow_or_the_test_runner(binary):
    result = subprocess.run([sys.executable, "-m", f"flags.{binary}", "--helpfull"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "--seed" in result.stdout and "--data_dir" in result.stdout
    for foreign in ("--test_tmpdir", "--hbm_oom_exit", "tensorflow.python"):
        assert foreign not in result.stdout
