"""Issue 15, run side: every failure is one named line (exit 2) before work starts, a run owns
its workdir, an export's version belongs to its run, --restart keeps the old outputs, a NaN
config reruns, outputs are group-readable, Ctrl-C says where the run resumes."""

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from gnas_keras import checkpoint, io, workdir

from gnas_keras.space import cost

from gnas_keras.reporting import evaluation_report
from gnas_keras.space.search_space import get_space, scientific

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT}

# Every case runs the binary's entry point in ONE subprocess (one TensorFlow import).
IN_PROCESS = """
import contextlib, io, json, sys
from gnas_keras_flags import common
name, cases = sys.argv[1], json.loads(sys.argv[2])
module = __import__("gnas_keras_flags." + name, fromlist=["main"])
results = []
for argv in cases:
    module.FLAGS.unparse_flags()
    sys.argv = [name, *argv]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            common.run(module.main)
            code = 0
        except SystemExit as e:
            code = e.code
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


def in_process(binary, cases):
    result = subprocess.run([sys.executable, "-c", IN_PROCESS, binary, json.dumps(cases)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_search_failures_are_one_named_line_before_any_work(synthetic_dir, tmp_path):
    garbled = tmp_path / "garbled"
    shutil.copytree(synthetic_dir, garbled)
    (garbled / "metadata.json").write_text('{"name": "synthetic",\n  "source": oops}\n')
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "run.lock").write_text(json.dumps({"pid": os.getpid(), "started": "then",
                                               "host": socket.gethostname()}))
    bad_state = tmp_path / "bad_state" / "checkpoints"
    bad_state.mkdir(parents=True)
    (bad_state / "state.json").write_text("{\"phase\": ")
    cases = [
        ([f"--data_dir={garbled}"],
         f"search: error: {garbled}/metadata.json:2: not valid JSON (Expecting value, "
         "column 13)"),
        (["--crop_height=2", "--crop_width=2"],
         "search: error: space tiny: image 2x2 is too small: conv2 gets 1x1 and its 2x2 "
         "max-pool needs at least 2x2"),
        ([f"--workdir={a_file}/run"],
         f"search: error: workdir: {a_file}/run is not writable (Not a directory)"),
        ([f"--export_dir={a_file}/export"],
         f"search: error: export_dir: {a_file}/export is not writable (Not a directory)"),
        ([f"--workdir={busy}"], f"search: error: {busy}: in use by pid {os.getpid()} on this "
                                "host since then"),
        ([f"--workdir={bad_state.parent}"],
         f"search: error: {bad_state}/state.json:1: not a readable run state (Expecting "
         "value); pass --restart"),
    ]
    argvs = []
    for i, (args, _) in enumerate(cases):
        defaults = {"--data_dir": synthetic_dir, "--workdir": tmp_path / f"run{i}",
                    "--export_dir": ""}
        given = {a.split("=")[0] for a in args}
        argvs.append([f"{k}={v}" for k, v in defaults.items() if k not in given] + args)
    for (args, message), (code, stderr) in zip(cases, in_process("search", argvs)):
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith(message), (args, lines)
    assert (busy / "run.lock").exists()  # the live owner's lock stays
    for i in range(len(cases)):
        assert not os.path.exists(tmp_path / f"run{i}" / "checkpoints")


def test_evaluate_names_a_garbled_or_incomplete_report(tmp_path):
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "report.json").write_text('{"method": "gnas",\n  oops}')
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "report.json").write_text(json.dumps({"method": "gnas"}))
    outcomes = in_process("evaluate", [[f"--workdir={tmp_path / 'garbled'}"],
                                       [f"--workdir={tmp_path / 'partial'}"]])
    assert [code for code, _ in outcomes] == [2, 2]
    # the progress line "evaluating <run>", then the error
    assert [len(err.strip().splitlines()) for _, err in outcomes] == [2, 2]
    assert outcomes[0][1].strip().splitlines()[-1] == (
        f"evaluate: error: {tmp_path}/garbled/report.json:2: not valid JSON (Expecting "
        "property name enclosed in double quotes, column 3)")
    assert outcomes[1][1].strip().splitlines()[-1] == (
        f"evaluate: error: {tmp_path}/partial/report.json: key 'dataset' is missing (not a "
        "complete run report)")


def test_describe_counts_trees_beyond_float_range():
    # 10,000 attributes: 4 ** 10004 trees, far beyond a float (and 10x faster than 100,000)
    described = cost.describe(get_space("tiny"), 10000, 32, 32).to_dict()
    json.dumps(described)  # no OverflowError, no int -> str limit
    trees = get_space("tiny").num_trees(10000)
    assert trees > 10 ** 4000 and described["possible_trees"] is None
    assert described["possible_trees_scientific"] == scientific(trees)
    assert described["possible_trees_scientific"].endswith(f"e+{math.floor(math.log10(trees))}")
    assert scientific(123456) == "1.23e+05" and scientific(10 ** 400) == "1.00e+400"
    assert scientific(999 * 10 ** 500) == "9.99e+502" and scientific(9999 * 10 ** 500) == \
        "1.00e+504"


def test_workdir_lock_refuses_a_live_owner_and_takes_over_a_stale_one(tmp_path):
    with workdir.WorkdirLock(str(tmp_path)):
        owner = json.load(open(tmp_path / "run.lock"))
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    assert not (tmp_path / "run.lock").exists()  # released
    (tmp_path / "run.lock").write_text(json.dumps({"pid": os.getppid(), "started": "then",
                                                   "host": socket.gethostname()}))
    with pytest.raises(ValueError, match=f"in use by pid {os.getppid()} on this host since "
                                         "then"):
        with workdir.WorkdirLock(str(tmp_path)):
            pass
    assert json.load(open(tmp_path / "run.lock"))["pid"] == os.getppid()  # left alone
    os.remove(tmp_path / "run.lock")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / "run.lock").write_text(json.dumps({"pid": int(dead),
                                                   "host": socket.gethostname()}))
    said = []
    with workdir.WorkdirLock(str(tmp_path), said.append):
        assert json.load(open(tmp_path / "run.lock"))["pid"] == os.getpid()
    assert said == [f"taking over the stale lock {tmp_path}/run.lock (pid {dead} no longer "
                    "exists)"]
    (tmp_path / "run.lock").write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(ValueError, match="in use by pid 1 on host 'elsewhere'.*delete"):
        with workdir.WorkdirLock(str(tmp_path)):
            pass


def test_restart_moves_old_outputs_aside_and_evaluate_skips_them(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "state.json").write_text("{}")
    for name in ("report.json", "tree.json"):
        (tmp_path / name).write_text("old")
    (tmp_path / "notes.txt").write_text("the user's")
    aside = workdir.move_aside(str(tmp_path))
    assert os.path.dirname(aside) == str(tmp_path / ".replaced")
    assert sorted(os.listdir(aside)) == ["checkpoints", "report.json", "tree.json"]
    assert sorted(os.listdir(tmp_path)) == [".replaced", "notes.txt"]
    assert workdir.move_aside(str(tmp_path)) is None  # nothing left to move
    with pytest.raises(FileNotFoundError, match="no run directory"):
        evaluation_report.find_runs(str(tmp_path))  # the old report is not a current run


def test_nan_setting_reruns_as_the_same_configuration():
    saved = json.loads(json.dumps({"learning_rate": float("nan"), "compare": ["a"]}))
    assert checkpoint.config_differences(saved, {"learning_rate": float("nan"),
                                                 "compare": ("a",)}) == {}
    assert checkpoint.config_differences(saved, {"learning_rate": 0.1, "compare": ("a",)}) \
        .keys() == {"learning_rate"}


def test_outputs_are_readable_by_the_group(tmp_path):
    old = os.umask(0o022)
    try:
        io.write_json_atomic(str(tmp_path / "report.json"), {"a": 1})
        workdir.move_aside(str(tmp_path))
    finally:
        os.umask(old)
    aside = tmp_path / ".replaced" / os.listdir(tmp_path / ".replaced")[0]
    assert os.stat(aside / "report.json").st_mode & 0o777 == 0o644
    assert os.stat(aside).st_mode & 0o777 == 0o755


def test_ctrl_c_is_one_line_saying_where_the_run_resumes(synthetic_dir, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "flags.search", f"--data_dir={synthetic_dir}",
         f"--workdir={tmp_path}", "--export_dir=", "--batch_size=16", "--train_steps=2",
         "--val_batches=1", "--max_rounds=2", "--checkpoint_every=1"],
        cwd=ROOT, env=ENV, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "candidate 2 of 4" in line:
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read().strip().splitlines()
    proc.wait(timeout=120)
    assert proc.returncode == 130, "".join(seen)[-2000:] + "\n".join(rest)
    # a candidate (or a round) may finish first
    progress = [l for l in rest if l.startswith(("round ", "search "))]
    assert len(rest) - len(progress) == 1, rest
    assert rest[-1].startswith(f"search: interrupted; the same command resumes at phase "
                               f"search from {tmp_path}/checkpoints/ckpt-"), rest
    assert not (tmp_path / "run.lock").exists()


def _flip_a_byte_inside_record(path, index):
    """Flips one byte in the middle of record `index`'s data: the length headers still walk
    (so `check_dataset` passes), the record's CRC does not."""
    with open(path, "r+b") as f:
        position = 0
        for _ in range(index):
            f.seek(position)
            position += 12 + int.from_bytes(f.read(8), "little") + 4
        f.seek(position)
        length = int.from_bytes(f.read(8), "little")
        f.seek(position + 12 + length // 2)
        byte = f.read(1)
        f.seek(position + 12 + length // 2)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_a_byte_flipped_inside_a_shard_is_one_line_naming_the_shard(synthetic_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    shard = data / "train-00001-of-00002.tfrecord"
    _flip_a_byte_inside_record(shard, 40)
    [(code, err)] = in_process("search", [[
        f"--data_dir={data}", f"--workdir={tmp_path / 'run'}", "--export_dir=",
        "--batch_size=16", "--train_steps=2", "--val_batches=1", "--max_rounds=1",
        "--warmup_steps=30", "--nocheck_images"]])  # met mid-run, not by the full check
    errors = [line for line in err.strip().splitlines() if "error" in line.lower()]
    assert code == 2 and len(errors) == 1, err[-3000:]
    assert re.fullmatch(re.escape(f"search: error: {shard}: record 41 is corrupted (") +
                        r"corrupted record at byte \d+, its checksum fails\); convert the "
                        "dataset again; no checkpoint yet: the same command starts over",
                        errors[0]), errors
    assert "Traceback" not in err and "IteratorGetNext" not in err
