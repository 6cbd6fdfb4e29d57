"""`--strategy=multiworker`: two local worker processes on loopback (TF_CONFIG, 127.0.0.1
only), a whole deterministic run of a supernet search (random search, 4 candidates: the
same supernet training and reward evaluation as GNAS, fewer candidates), fine-tune, test,
export. Worker 1 is SIGKILLed midway; worker 0 stops with one line saying how to resume;
both are started again with the same command and finish the run from the last checkpoint.

What a two-worker run must give: both workers the same tree and the same metrics (every step
is synchronous); evaluation sharded by file and summed over the workers (every labelled test
pair counted exactly once, as one worker counts it); the run directory, checkpoints and the
export written by the chief only (the other worker's scratch directory is gone afterwards).

Why not the same tree as a one-worker run: with file sharding worker k trains on files k,
k + 2, ..., so a global batch of 16 is 8 examples from each worker's files, where one worker
draws its 16 from all files; batch-norm statistics are per replica (8 examples, not 16).
The training streams differ, hence the weights and, in general, the tree. The test-set
counts do not depend on the split, and are compared with one worker's exactly.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 600  # per run; the workers also stop by themselves when it ends


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(flag_args, scratch_dirs):
    """Starts one `flags.search` process per scratch dir, worker i with TMPDIR=scratch[i]."""
    addresses = [f"127.0.0.1:{p}" for p in free_ports(len(scratch_dirs))]
    procs = []
    for i, tmp in enumerate(scratch_dirs):
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}}
        env = {**os.environ, "PYTHONPATH": ROOT, "TF_CONFIG": json.dumps(tf_config),
               "TMPDIR": str(tmp), "TF_CPP_MIN_LOG_LEVEL": "2"}
        procs.append(subprocess.Popen(
            ["timeout", "-s", "KILL", str(TIMEOUT_S), sys.executable, "-m", "flags.search",
             *flag_args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True))  # a group: SIGKILL reaches the worker too
    return procs


def kill(proc):
    os.killpg(proc.pid, signal.SIGKILL)


def finish(procs):
    outputs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=TIMEOUT_S + 30)
            outputs.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                kill(p)
    return outputs


def summary(stdout):
    """The printed tree and test error (the lines after '== summary ==' up to 'run
    directory', which names the worker's own directory)."""
    lines = stdout.split("== summary ==", 1)[1].splitlines()
    # The search's wall time ("search 0m30s", `reporting.units.duration`) may differ by a
    # second between the workers.
    return [re.sub(r", search \S+$", "", line) for line in lines
            if not line.startswith(("run directory", "SavedModel"))]


@pytest.fixture(scope="module")
def two_workers(synthetic_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("multiworker")
    scratch = [base / "tmp0", base / "tmp1"]
    for d in scratch:
        d.mkdir()
    flag_args = ["--deterministic", "--strategy=multiworker", f"--data_dir={synthetic_dir}",
                 f"--workdir={base / 'run'}", f"--export_dir={base / 'export'}",
                 "--export_name=m", "--batch_size=16", "--eval_batch_size=64",
                 "--method=random", "--random_trials=4", "--train_steps=1",
                 "--val_batches=1", "--finetune_steps=1", "--compare=",
                 "--checkpoint_every=1"]
    procs = start_workers(flag_args, scratch)
    try:
        seen = []
        for line in procs[0].stderr:
            seen.append(line)
            if "trial 2 of 4" in line:
                kill(procs[1])  # trial 1 is checkpointed; trial 2 may be
                break
        else:
            raise AssertionError("".join(seen)[-4000:])
        survivor = finish(procs[:1])[0]
    finally:
        for p in procs:
            if p.poll() is None:
                kill(p)
    # Fresh scratch directories: a SIGKILLed worker cannot clean up its own.
    scratch = [base / "tmp0_resumed", base / "tmp1_resumed"]
    for d in scratch:
        d.mkdir()
    outputs = finish(start_workers(flag_args, scratch))
    for i, (code, _, err) in enumerate(outputs):
        assert code == 0, f"worker {i} exited {code}:\n{err[-4000:]}"
    return base, scratch, outputs, survivor


def test_a_killed_worker_stops_the_other_in_one_line_and_both_resume(two_workers):
    _, _, outputs, (code, _, err) = two_workers
    assert code == 1 and "Traceback" not in err, err[-3000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith("search: error: multi-worker run: worker "
                           "/job:worker/replica:0/task:1 stopped sending heartbeats"), line
    assert "start the same command on every worker to resume from it" in line
    for _, _, resumed in outputs:
        assert "resuming at phase search" in resumed
        assert "trial 1 of 4" not in resumed and "trial 4 of 4" in resumed


def test_workers_agree_on_tree_and_metrics(two_workers):
    _, _, outputs, _ = two_workers
    assert "2 replica(s)" in outputs[0][2]
    chief, other = summary(outputs[0][1]), summary(outputs[1][1])
    assert chief == other
    assert any("mean test error" in line for line in chief)


def test_chief_alone_writes_run_directory_checkpoints_and_export(two_workers):
    base, scratch, _, _ = two_workers
    run = base / "run"
    assert (run / "report.json").exists() and (run / "tree.json").exists()
    with open(run / "checkpoints" / "state.json") as f:
        state = json.load(f)
    assert state["phase"] == "done"
    assert os.path.exists(state["checkpoint"] + ".index")
    assert (base / "export" / "m" / "1" / "saved_model.pb").exists()
    # the other worker wrote its checkpoints and run files into its scratch dir, now gone
    assert os.listdir(scratch[1]) == [], os.listdir(scratch[1])


def test_sharded_evaluation_counts_every_test_pair_once(two_workers, synthetic_dir):
    base, _, _, _ = two_workers
    from gnas_keras.config import RunConfig
    from gnas_keras.training.data import Data
    data = Data.load(RunConfig(data_dir=synthetic_dir))
    labels = np.concatenate([y.numpy() for _, y in data.test])
    with open(base / "run" / "report.json") as f:
        report = json.load(f)
    with open(base / "run" / "checkpoints" / "state.json") as f:
        counts = np.asarray(json.load(f)["test"]["counts"])
    np.testing.assert_array_equal(counts, (labels >= 0).sum(axis=0))
    assert np.isfinite(report["mean_test_error"])
    predictions = np.load(base / "run" / "test_predictions.npz")
    assert predictions["probabilities"].shape == labels.shape


def test_file_shards_are_disjoint_and_cover_the_split(synthetic_dir):
    from gnas_keras_pipelines import input as data_input
    prep = data_input.preprocessing_for("synthetic")

    def labels(shard):
        ds = data_input.make_dataset(synthetic_dir, "test", 1000, False, prep, shard=shard)
        return np.concatenate([y.numpy() for _, y in ds])

    whole, first, second = labels((1, 0)), labels((2, 0)), labels((2, 1))
    assert len(first) + len(second) == len(whole) and len(first) and len(second)
    key = lambda a: sorted(map(bytes, a))  # noqa: E731
    assert key(np.concatenate([first, second])) == key(whole)
    with pytest.raises(ValueError, match="fewer shard files"):
        data_input.make_dataset(synthetic_dir, "test", 8, False, prep, shard=(3, 2))


def test_non_chief_checkpoint_reads_the_chiefs_and_writes_nothing(tmp_path):
    import tensorflow as tf
    from gnas_keras.checkpoint import RunCheckpoint
    chief = RunCheckpoint(str(tmp_path / "run"), {"a": 1})
    v = tf.Variable(1.0)
    chief.save({"phase": "search"}, {"v": v})
    before = sorted(os.listdir(tmp_path / "run" / "checkpoints"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    other = RunCheckpoint(str(tmp_path / "run"), {"a": 1}, scratch=str(scratch))
    assert other.restore_state()["phase"] == "search"
    other.save({"phase": "finetune"}, {"v": v})
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == before
    assert os.listdir(scratch) == []
    v.assign(5.0)
    chief.save({"phase": "finetune"}, {"v": v})
    v.assign(0.0)
    assert other.restore_objects({"v": v}) and float(v.numpy()) == 5.0  # the chief's newest
    other.clear()  # --restart on a non-chief: ignores the saved run, deletes nothing
    assert other.restore_state() is None
    assert (tmp_path / "run" / "checkpoints" / "state.json").exists()
