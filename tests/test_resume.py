"""A search killed with SIGKILL at several points and resumed ends exactly like an
uninterrupted one (deterministic mode); bad resumptions are refused; NaN handling keeps the
last good checkpoint."""

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def args(data_dir, workdir, export_dir, *extra):
    return ["--deterministic", f"--data_dir={data_dir}", f"--workdir={workdir}",
            f"--export_dir={export_dir}", "--export_name=m", "--batch_size=16",
            "--eval_batch_size=64", "--train_steps=2", "--val_batches=1", "--max_rounds=1",
            "--patience=2", "--warmup_steps=2", "--warmup_resample=1", "--finetune_steps=4",
            "--checkpoint_every=1", *extra]


def command(*flag_args):
    return [sys.executable, "-m", "flags.search", *flag_args]


ENV = {**os.environ, "PYTHONPATH": ROOT}


def run_to_end(flag_args):
    result = subprocess.run(command(*flag_args), cwd=ROOT, env=ENV, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def run_and_kill(flag_args, trigger: str):
    """Starts a search and SIGKILLs it right after a stderr line containing `trigger`;
    returns the stderr it printed up to there."""
    proc = subprocess.Popen(command(*flag_args), cwd=ROOT, env=ENV, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if trigger in line:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    return "".join(seen)


def report(workdir):
    with open(os.path.join(workdir, "report.json")) as f:
        r = json.load(f)
    return {k: r[k] for k in ("tree", "test_error", "mean_test_error", "parameters")}, \
        [x["mean_val_error"] for x in r["rounds"] + r["trials"]]


def exported_probabilities(export_dir):
    """The export's serving_default output on a fixed batch, {attribute: [8]}."""
    import tensorflow as tf
    model = tf.saved_model.load(str(export_dir / "m" / "1"))
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)), tf.float32)
    return {k: v.numpy() for k, v in model.signatures["serving_default"](image=images).items()}


@pytest.fixture(scope="module")
def uninterrupted(synthetic_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("uninterrupted")
    run_to_end(args(synthetic_dir, base / "run", base / "export"))
    # A pristine copy of the finished run for tests that change it.
    shutil.copytree(base / "run", base / "finished_run")
    return report(base / "run"), exported_probabilities(base / "export"), base / "finished_run"


def test_killed_twice_and_resumed_search_ends_like_an_uninterrupted_one(
        uninterrupted, synthetic_dir, tmp_path):
    """SIGKILL mid-candidate (conv3 candidate 3 is training), resume; SIGKILL again during
    the export, resume: the end is the uninterrupted run's."""
    flag_args = args(synthetic_dir, tmp_path / "run", tmp_path / "export")
    run_and_kill(flag_args, "round 1 of 1, conv3 candidate 2 of 4")
    assert not os.path.exists(tmp_path / "run" / "report.json")
    run_and_kill(flag_args, "exporting to")
    assert not os.path.exists(tmp_path / "run" / "report.json")
    resumed = run_to_end(flag_args)
    assert "resuming at phase export" in resumed.stderr
    expected_report, expected_probabilities, _ = uninterrupted
    assert report(tmp_path / "run") == expected_report
    # Exactly one complete export version, no temporary leftovers beside it, and it holds the
    # same weights as the uninterrupted run's export.
    assert sorted(os.listdir(tmp_path / "export" / "m")) == ["1"]
    probabilities = exported_probabilities(tmp_path / "export")
    assert probabilities.keys() == expected_probabilities.keys()
    for name, p in probabilities.items():
        np.testing.assert_allclose(p, expected_probabilities[name], atol=1e-6)


RANDOM = ("--method=random", "--random_trials=4")


def searched(workdir):
    """A run stopped once its search is checkpointed (killed on the "tree:" line that opens
    the fine-tune): the search's report, the architecture and every checkpointed weight
    ({name: array}). The fine-tune, test and export after a resumed search are the run's,
    the same for every method: tested above with GNAS."""
    import tensorflow as tf
    with open(os.path.join(workdir, "checkpoints", "state.json")) as f:
        state = json.load(f)
    assert state["phase"] == "finetune" and state["finetune_done"] == 0
    reader = tf.train.load_checkpoint(state["checkpoint"])
    weights = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
               if not name.startswith(("save_counter", "_CHECKPOINTABLE_OBJECT_GRAPH"))}
    return state["search_report"], state["architecture"], weights


def without_times(value):
    """`value` without its "elapsed" entries (wall time differs between runs)."""
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if k != "elapsed"}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def assert_same_search(a, b):
    (report_a, architecture_a, weights_a), (report_b, architecture_b, weights_b) = a, b
    assert architecture_a == architecture_b
    assert without_times(report_a) == without_times(report_b)
    assert weights_a.keys() == weights_b.keys()
    for name, value in weights_a.items():
        np.testing.assert_allclose(weights_b[name], value, atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def uninterrupted_random(synthetic_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("uninterrupted_random")
    run_and_kill(args(synthetic_dir, base / "run", "", *RANDOM), "tree:")
    return searched(base / "run")


def test_killed_and_resumed_random_search_ends_like_an_uninterrupted_one(
        uninterrupted_random, synthetic_dir, tmp_path):
    """Random search through the real run: killed after its second of four trials (mid
    third trial), resumed by the same command, it ends its search with the identical tree,
    trials (each one's validation error) and weights."""
    flag_args = args(synthetic_dir, tmp_path / "run", "", *RANDOM)
    run_and_kill(flag_args, "trial 2 of 4")
    resumed = run_and_kill(flag_args, "tree:")
    assert "resuming at phase search" in resumed
    assert "trial 1 of 4" not in resumed  # trials 1 and 2 are not redone
    assert len(uninterrupted_random[0]["trials"]) == 4
    assert_same_search(searched(tmp_path / "run"), uninterrupted_random)


def test_a_different_configuration_is_refused_and_restart_starts_over(
        uninterrupted, synthetic_dir, tmp_path):
    # A copy of the uninterrupted run, finished with these settings (its export directory is
    # an operational setting, not part of the configuration).
    shutil.copytree(uninterrupted[2], tmp_path / "run")
    flag_args = args(synthetic_dir, tmp_path / "run", "")
    changed = subprocess.run(command(*flag_args, "--train_steps=3", "--learning_rate=0.05"),
                             cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert changed.returncode == 2
    line = changed.stderr.strip().splitlines()[-1]
    assert "different configuration" in line and "--train_steps (was 2, now 3)" in line \
        and "--learning_rate (was 0.1, now 0.05)" in line and "--restart" in line
    # --restart starts over with the new configuration (killed once its first checkpoint,
    # after candidate 1, is written: the rest is an ordinary run).
    again = run_and_kill([*flag_args, "--train_steps=3", "--restart"],
                         "round 1 of 1, fc1 candidate 2 of 4")
    assert "resuming" not in again
    with open(tmp_path / "run" / "checkpoints" / "state.json") as f:
        state = json.load(f)
    assert state["config"]["candidates"]["train_steps"] == 3
    assert state["search"]["evaluations"] >= 1
    assert not os.path.exists(tmp_path / "run" / "report.json")  # moved to .replaced


def test_nan_stops_keeps_the_last_good_checkpoint_and_records_where(
        synthetic_dir, tmp_path, monkeypatch):
    from gnas_keras import run as run_module
    from gnas_keras.config import CandidateConfig, RunConfig
    from gnas_keras.training.evaluation import Evaluation, NumericalError
    from gnas_keras.methods.gnas import GnasConfig
    from gnas_keras.training.loop import Loop

    config = RunConfig(data_dir=synthetic_dir, workdir=str(tmp_path / "run"), export_dir="",
                       batch_size=16, eval_batch_size=64, finetune_steps=2,
                       checkpoint_every=1, deterministic=True,
                       candidates=CandidateConfig(train_steps=1, val_batches=1),
                       methods={"gnas": GnasConfig(max_rounds=1, search_only="fc1")})
    real_train, calls = Loop.train, []

    def train(self, steps):  # the 4th training segment (fc1 candidate 4) diverges
        calls.append(steps)
        result = real_train(self, steps)
        return Evaluation(float("nan"), result.accuracy) if len(calls) == 4 else result

    monkeypatch.setattr(Loop, "train", train)
    with pytest.raises(NumericalError, match="round 1 layer fc1 candidate 3.*is kept"):
        run_module.run(config, out=lambda line: None)
    state = json.load(open(tmp_path / "run" / "checkpoints" / "state.json"))
    assert state["numerical_errors"][0]["where"] == "round 1 layer fc1 candidate 3"
    assert state["search"]["evaluations"] == 3  # the last good checkpoint: 3 candidates
    assert os.path.exists(state["checkpoint"] + ".index")

    # Resuming with the fault gone continues from that checkpoint and finishes.
    monkeypatch.setattr(Loop, "train", real_train)
    report = run_module.run(config, out=lambda line: None)
    assert np.isfinite(report["mean_test_error"])
    assert report["numerical_errors"][0]["where"] == "round 1 layer fc1 candidate 3"


def test_rollback_halves_the_learning_rate_and_continues(synthetic_dir, tmp_path,
                                                         monkeypatch):
    from gnas_keras import run as run_module
    from gnas_keras.config import CandidateConfig, RunConfig
    from gnas_keras.training.evaluation import Evaluation
    from gnas_keras.methods.gnas import GnasConfig
    from gnas_keras.training.loop import Loop

    config = RunConfig(data_dir=synthetic_dir, workdir=str(tmp_path / "run"), export_dir="",
                       batch_size=16, eval_batch_size=64, finetune_steps=2, on_nan="rollback",
                       checkpoint_every=1,
                       candidates=CandidateConfig(train_steps=1, val_batches=1),
                       methods={"gnas": GnasConfig(max_rounds=1, search_only="fc1")})
    real_train, calls, seen = Loop.train, [], {}

    def weights(loop):
        return [v.numpy().copy() for v in loop.model.weights + loop.model.optimizer.variables
                if "iteration" not in v.path and "learning_rate" not in v.path]

    def train(self, steps, on_step=None):
        # Candidate 3 (call 3) diverges; the checkpoint before it (after candidate 2) holds
        # the weights it started from. Its redo (call 4) must start from exactly those.
        calls.append(steps)
        if len(calls) in (3, 4):
            seen[len(calls)] = (weights(self), self.learning_rate)
        result = real_train(self, steps, on_step)
        return Evaluation(float("inf"), result.accuracy) if len(calls) == 3 else result

    monkeypatch.setattr(Loop, "train", train)
    lines = []
    report = run_module.run(config, out=lines.append)
    (before, lr_before), (after, lr_after) = seen[3], seen[4]
    assert lr_before == pytest.approx(0.1) and lr_after == pytest.approx(0.05)
    assert len(before) == len(after)
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)
    assert any("rolled back" in line and "learning rate 0.05" in line for line in lines)
    assert len(report["numerical_errors"]) == 1 and np.isfinite(report["mean_test_error"])


def test_rollback_reaches_a_method_with_its_own_holder_and_schedule(synthetic_dir, tmp_path,
                                                                     monkeypatch):
    """Branching checkpoints its network in a `tf.Module` holder (no top-level "optimizer")
    and sets its learning rate from the config every chunk: the halving must reach both."""
    from gnas_keras import run as run_module
    from gnas_keras.config import RunConfig
    from gnas_keras.training.evaluation import Evaluation
    from gnas_keras.methods.branching import BranchingConfig
    from gnas_keras.training.loop import Loop

    config = RunConfig(data_dir=synthetic_dir, workdir=str(tmp_path / "run"), export_dir="",
                       method="branching", batch_size=16, eval_batch_size=64, finetune_steps=2,
                       on_nan="rollback", compare=(),
                       methods={"branching": BranchingConfig(
                           thin_layout="small", omega=4, iterations_per_round=2,
                           branch_unit_cost=0.0, max_widening_rounds=2)})
    real_train, rates = Loop.train, []

    def train(self, steps, *args, **kwargs):
        rates.append(self.learning_rate)
        result = real_train(self, steps, *args, **kwargs)
        # The second round's training (call 2) diverges; the first round was checkpointed.
        return Evaluation(float("nan"), result.accuracy) if len(rates) == 2 else result

    monkeypatch.setattr(Loop, "train", train)
    lines = []
    report = run_module.run(config, out=lines.append)
    assert rates[0] == pytest.approx(0.1) and rates[1] == pytest.approx(0.1)
    assert rates[2] == pytest.approx(0.05)   # the redone round 2, at the halved rate
    assert any("rolled back" in line and "learning rate 0.05" in line for line in lines)
    assert len(report["numerical_errors"]) == 1 and np.isfinite(report["mean_test_error"])


BRANCHING = ("--method=branching", "--thin_layout=small", "--omega=4",
             "--iterations_per_round=3", "--branch_unit_cost=0.0", "--max_widening_rounds=2")


def test_branching_killed_between_widening_rounds_ends_like_an_uninterrupted_one(
        synthetic_dir, tmp_path):
    """Adaptive branching through the real run: killed right after widening round 1 was
    checkpointed (while round 2 trains the grown network), the same command resumes with
    the grown network and ends its search with the identical tree, candidate losses and
    weights (both runs stop once the search is checkpointed, see `searched`)."""
    run_and_kill(args(synthetic_dir, tmp_path / "whole", "", *BRANCHING), "tree:")
    expected = searched(tmp_path / "whole")
    assert len(expected[0]["widening_rounds"]) == 2  # the network grew in both rounds

    flag_args = args(synthetic_dir, tmp_path / "run", "", *BRANCHING)
    run_and_kill(flag_args, "widening round 1/2")
    resumed = run_and_kill(flag_args, "tree:")
    assert "resuming at phase search" in resumed
    assert "widening round 1/2" not in resumed  # round 1 is not redone
    assert "widening round 2/2" in resumed
    assert_same_search(searched(tmp_path / "run"), expected)
