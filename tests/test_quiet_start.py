"""Binaries start quietly on any CPU: TensorFlow's start-up log lines never reach the terminal
before the binary's own first line (issue: oneDNN / cpu_feature_guard lines on Intel CPUs)."""

import os
import subprocess
import sys

import pytest

from gnas_keras_flags.common import without_startup_noise

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What TensorFlow 2.21 printed at import on a 2-core Intel Xeon with AVX-512 (from the issue),
# with a Python warning before it that must survive.
INTEL_IMPORT = (
    "lib.py:3: DeprecationWarning: kept\n"
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1795701871.111255    4556 port.cc:153] oneDNN custom operations are on. ...\n"
    "I0000 00:00:1795701871.190060    4556 cpu_feature_guard.cc:227] This TensorFlow binary "
    "is optimized to use available CPU instructions in performance-critical operations.\n"
    "To enable the following instructions: AVX512F AVX512_VNNI AMX_TILE, in other operations, "
    "rebuild TensorFlow with the appropriate compiler flags.\n"
    "E0000 00:00:1795701871.190060    4556 cuda_executor.cc:1] an error that matters\n")


def test_filter_applies_the_log_level_to_native_records():
    assert without_startup_noise(INTEL_IMPORT, 2) == (
        "lib.py:3: DeprecationWarning: kept\n"
        "E0000 00:00:1795701871.190060    4556 cuda_executor.cc:1] an error that matters\n")
    assert without_startup_noise(INTEL_IMPORT, 3) == "lib.py:3: DeprecationWarning: kept\n"
    assert without_startup_noise(INTEL_IMPORT, 0) == INTEL_IMPORT
    level_1 = without_startup_noise(INTEL_IMPORT, 1)
    assert "InitializeLog" in level_1 and "port.cc" not in level_1
    assert "To enable" not in level_1  # the continuation line goes with its record


def _noisy_env(**extra):
    """The environment in which TensorFlow prints its start-up lines on x86 CPUs from AMD
    and Intel alike (oneDNN forced on); the binary must quiet them itself."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return {**env, "PYTHONPATH": ROOT, "TF_ENABLE_ONEDNN_OPTS": "1", **extra}


def test_native_writes_during_the_import_are_filtered_and_restored():
    # Writes straight to file descriptor 2, as TensorFlow's C++ logging does.
    script = (
        "import os, sys\n"
        "from gnas_keras_flags.common import stderr_filtered_by_log_level\n"
        "with stderr_filtered_by_log_level():\n"
        "    os.write(2, b'kept inside\\n')\n"
        "    os.write(2, b'I0000 00:00:1.5    7 port.cc:153] noise\\n')\n"
        "    os.write(2, b'E0000 00:00:1.5    7 port.cc:9] an error, kept\\n')\n"
        "os.write(2, b'I0000 00:00:1.5    7 later.cc:1] after the import, shown\\n')\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=_noisy_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "kept inside" in lines and "E0000 00:00:1.5    7 port.cc:9] an error, kept" in lines
    assert not any("noise" in line for line in lines)
    assert lines[-1] == "I0000 00:00:1.5    7 later.cc:1] after the import, shown"


@pytest.mark.parametrize("binary, bad_flag", [
    ("search", "--space=no_such_space"), ("convert", "--dataset=imagenet"),
    ("evaluate", "--latency_repeats=x"), ("describe", "--space=no_such_space"),
    ("study", "--space=no_such_space")])
def test_a_bad_flag_is_exactly_one_line_whatever_the_cpu_prints(binary, bad_flag):
    result = subprocess.run([sys.executable, "-m", f"flags.{binary}", bad_flag], cwd=ROOT,
                            env=_noisy_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{binary}: error: flag "), result.stderr


# A bad value found after TensorFlow is imported (the run reads the data directory).
MISSING_DATA = ["--dataset=celeba", "--data_dir=/nonexistent/celeba"]


def test_an_error_after_tensorflows_import_is_exactly_one_line():
    result = subprocess.run([sys.executable, "-m", "flags.search", *MISSING_DATA], cwd=ROOT,
                            env=_noisy_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "search: error: /nonexistent/celeba/metadata.json: no converted dataset here "
        "(metadata.json is missing); run `python -m flags.convert` first or point --data_dir "
        "at a converted dataset"], \
        result.stderr


def test_an_explicit_log_level_0_still_shows_tensorflows_lines():
    result = subprocess.run([sys.executable, "-m", "flags.search", *MISSING_DATA], cwd=ROOT,
                            env=_noisy_env(TF_CPP_MIN_LOG_LEVEL="0"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("search: error: /nonexistent/celeba")
    assert "oneDNN custom operations are on" in result.stderr  # the user asked for them
