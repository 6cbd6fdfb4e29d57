"""The GPU benchmark (`benchmarks/gpu.py`) runs where only JAX is installed: here on CPU with
TensorFlow unimportable, tiny shapes; its output is the documented format."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--presets=tiny", "--height=32", "--width=32", "--num_attributes=4",
        "--batch_size=4", "--serve_batch=2", "--steps=1", "--repeats=1"]


def run_gpu_benchmark(*argv):
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT,
           # compile fast: this test checks what is printed, not how fast
           "XLA_FLAGS": "--xla_backend_optimization_level=0"}
    return subprocess.run([sys.executable, os.path.join(ROOT, "tests", "without_tensorflow.py"),
                           "-m", "benchmarks.gpu", *argv], capture_output=True, text=True,
                          timeout=600, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("gpu") / "gpu.json")
    result = run_gpu_benchmark(*TINY, f"--json={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out) as f:
        return result.stdout.splitlines(), json.load(f)


def test_prints_the_documented_lines_and_a_row_per_precision(tiny_run):
    lines, _ = tiny_run
    assert lines[0].startswith("device: cpu")
    assert lines[1].startswith("machine: ") and "Keras 3" in lines[1] and "on jax" in lines[1]
    assert lines[2].startswith("settings: 4 attributes, 32x32, train batch 4, serve batch 2")
    assert lines[3].split() == ["precision", "preset", "per-block", "grouped", "tree",
                                "inference", "faster", "search(days)", "vs", "paper"]
    rows = [line.split() for line in lines[4:6]]
    assert [r[:2] for r in rows] == [["float32", "tiny"], ["mixed", "tiny"]]
    for r in rows:
        assert all(float(x) > 0 for x in r[2:6]) and r[6] in ("per-block", "grouped")
        assert float(r[7]) > 0 and r[8].endswith("x")
    assert lines[6].startswith("projection: 150 rounds x candidates per round at N=40 x 2000")


def test_json_rows_and_the_projection(tiny_run):
    _, written = tiny_run
    assert written["device"].startswith("cpu") and written["settings"]["batch_size"] == 4
    for row in written["rows"]:
        faster = row[row["faster"].replace("-", "_")]
        assert faster == max(row["per_block"], row["grouped"])
        # 150 rounds x candidates x 2,000 steps x 64 images at the faster images/s
        days = 150 * row["candidates"] * 2000 * 64 / faster / 86400
        assert row["search_days"] == pytest.approx(days)
        assert row["vs_paper"] == pytest.approx(days / 2)


def test_bad_flags_exit_2_naming_the_flag():
    result = run_gpu_benchmark("--presets=tiny,nope")
    assert result.returncode == 2
    assert "--presets: unknown preset 'nope'" in result.stderr.splitlines()[-1]


def test_a_worker_times_its_variants_on_request(monkeypatch):
    """`benchmarks.train_step`'s JAX side: a `benchmarks.gpu --worker` process built from
    this (TensorFlow) process answers each variant name with its seconds."""
    from benchmarks.measure import Worker
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
    monkeypatch.setenv("PYTHONPATH", ROOT)
    worker = Worker("benchmarks.gpu", [*TINY, "--variants=per-block,tree"])
    try:
        assert worker.variants == ["per-block", "tree"]
        assert "on jax" in worker.machine and worker.device.startswith("cpu")
        seconds = [worker.seconds(name) for name in ("tree", "per-block", "tree")]
        assert all(0 < s < 60 for s in seconds)
    finally:
        worker.close()
