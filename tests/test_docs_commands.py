"""Every fenced shell command in README.md, docs/*.md and flagfiles/README.md is covered here:
a command that drifts from the code fails `make test`.

The documents are read in one order (README, docs/datasets.md, the other docs, the flagfile
notes), and every command of every ```sh / ```bash / unlabelled block is taken apart with
shlex (continuations joined, comments dropped, ``VAR=value`` prefixes kept aside). Then:

- the project's binaries (``gnas-<name>`` = ``python -m flags.<name>``, ``make search``'s
  recipe) parse their flags with the binary's own absl FLAGS, in-process, and a config-built
  binary validates its config (`RunConfig.validate`) without running; the paths they read
  must exist in the checkout or have been written by an earlier command (a user's own
  download, ``~/...``, ``$VAR/...`` or an absolute path, is the user's to give);
- the cheap ones run for real: the conversions of the README's layouts (CelebA, own folder)
  on the fixtures of tests/fixtures_datasets.py, and those reading what ``make search``
  writes on one tiny finished run (a module fixture: `gnas_keras.run.run` on the small
  synthetic set, written where ``make search`` writes: ``runs/synthetic_transfer``,
  ``saved_models/synthetic_transfer``); the ``saved_model_cli`` commands run with their own
  flags against that export;
- the rest (TF Serving, curl, tensorboard, cluster launchers, pip, make test) are checked
  for what they name: the flags they take, the files and model names they refer to.

A command no rule covers fails the test with its document and line.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import importlib
import importlib.util
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
from typing import Callable, Dict, List, Optional, Set, Tuple

import numpy as np
import pytest
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
SHELL_LANGUAGES = {"sh", "bash", "shell", "console", ""}
# Paths a search, conversion or export writes, by binary and flag (any other binary:
# --output_dir, if it has one).
OUTPUT_FLAGS = {"flags.search": ("workdir",), "flags.study": ("workdir",),
                "flags.convert": ("output_dir",), "flags.export": ("output_dir",)}
INPUT_FLAGS = {"flags.search": ("data_dir",), "flags.study": ("data_dir",),
               "flags.convert": ("source_dir", "labels"), "flags.export": ("saved_model",),
               "flags.evaluate": ("workdir",)}
MODEL_SERVER_FLAGS = {"port", "rest_api_port", "model_name", "model_base_path",
                      "model_config_file"}
# Variables a cluster launcher sets (docs/clusters.md), as they are in its first task; HOSTS
# as docs/clusters.md's Slurm script builds it from two nodes.
LAUNCHER_VARIABLES = {"SLURM_PROCID": "0", "JOB_COMPLETION_INDEX": "0",
                      "HOSTS": 'node1:12345","node2:12345'}
# What `make search` writes, as the tiny run of this module writes it.
TINY_WORKDIR, TINY_EXPORT = "runs/synthetic_transfer", "saved_models/synthetic_transfer"


def documents() -> List[str]:
    docs = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    datasets = os.path.join(ROOT, "docs", "datasets.md")
    ordered = [os.path.join(ROOT, "README.md")] + [datasets] * (datasets in docs) + [
        d for d in docs if d != datasets] + [os.path.join(ROOT, "flagfiles", "README.md")]
    return [d for d in ordered if os.path.exists(d)]


def fenced_blocks(text: str) -> List[Tuple[str, int, str]]:
    """(language, first line number, body) of every fenced block."""
    return [(m.group(1), text[:m.start()].count("\n") + 2, m.group(2)) for m in re.finditer(
        r"^```([\w+-]*)[^\n]*\n(.*?)^```", text, re.S | re.M)]


def shell_commands(block: str) -> List[Tuple[str, List[str]]]:
    """(text, tokens) of each command of a shell block: backslash continuations joined, a
    quote left open continues on the next line, comments dropped."""
    out, pending, joined = [], "", False
    for line in block.split("\n"):
        pending = pending + (" " if joined else "\n" if pending else "") + line
        joined = pending.endswith("\\")  # a continuation, even inside quotes (bash -c '...')
        if joined:
            pending = pending[:-1]
            continue
        try:
            tokens = shlex.split(pending, comments=True)
        except ValueError:  # a quote still open
            continue
        if tokens:
            out.append((pending.strip(), tokens))
        pending = ""
    assert not pending.strip(), f"unterminated command: {pending!r}"
    return out


def user_path(path: str) -> bool:
    """A path the user supplies (their download, their cluster's storage)."""
    return path.startswith(("~", "$", "/"))


class Walk:
    """The state of reading the documents in order: what earlier commands wrote."""

    def __init__(self, sandbox: str):
        self.sandbox = sandbox
        self.written: Set[str] = set()
        self.dataset_names: Dict[str, str] = {}  # converted folder -> dataset name
        self.server: Optional[Dict[str, str]] = None  # the last model server's flags
        self.ran: List[str] = []  # the folders real conversions wrote
        self.fixtures: Dict[str, Dict[str, str]] = {}  # fixture root -> flags pointing at it

    def write(self, path: str) -> None:
        self.written.add(os.path.normpath(path))

    def check_input(self, path: str, what: str) -> None:
        if not path or user_path(path):
            return
        path = os.path.normpath(path)
        if os.path.exists(os.path.join(ROOT, path)):
            return
        for w in self.written:
            if path == w or path.startswith(w + os.sep) or w.startswith(path + os.sep):
                return
        raise AssertionError(f"{what}={path}: neither in the checkout nor written by an "
                             "earlier command")


# Flags of these modules are set aside while a binary's are defined: two binaries define
# flags of the same name, and other test files import binaries at collection.
PROJECT_FLAG_MODULES = ("flags", "gnas_keras", "benchmarks", "pipelines", "docs_script_",
                        "tensorflow.python.tools.saved_model_cli")


@contextlib.contextmanager
def binary(module_name: str, path: str = ""):
    """The binary's module (from `path` if given), imported afresh so that its flags, and
    only its, are defined on FLAGS; afterwards its flags are removed and the flags set aside
    (every other binary's, with their values) are put back."""
    hidden = {}
    for name in list(FLAGS):
        module = FLAGS.find_module_defining_flag(name) or ""
        if module.startswith(PROJECT_FLAG_MODULES):
            hidden[name] = (FLAGS[name], module)
            delattr(FLAGS, name)
    before = set(FLAGS)
    sys.modules.pop(module_name, None)
    try:  # the flags set aside come back even when the import fails
        if path:
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
        yield module
    finally:
        FLAGS.unparse_flags()
        for name in set(FLAGS) - before:
            delattr(FLAGS, name)
        sys.modules.pop(module_name, None)
        for name, (flag, module) in hidden.items():
            FLAGS[name] = flag
            FLAGS.register_flag_by_module(module, flag)
        FLAGS.mark_as_parsed()


def parse(argv: List[str], cwd: str = ROOT) -> List[str]:
    """absl's parse of argv (``--flagfile`` relative to `cwd`); the unparsed arguments."""
    FLAGS.unparse_flags()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        return FLAGS(argv)
    finally:
        os.chdir(here)


def run_in(cwd: str, fn: Callable[[], object]) -> None:
    here = os.getcwd()
    os.chdir(cwd)
    try:
        fn()
    finally:
        os.chdir(here)


def project_binary(walk: Walk, name: str, args: List[str], env: Dict[str, str]) -> str:
    """``gnas-<name>`` / ``python -m flags.<name>``: parse, validate, and run it for real
    when it reads only what `make search` writes."""
    module_name = f"flags.{name}"
    with binary(module_name) as module:
        extra = parse([name] + args)
        assert extra == [name], f"unexpected arguments {extra[1:]}"
        if hasattr(module, "config_from_flags"):
            module.config_from_flags().validate()
        for flag in INPUT_FLAGS.get(module_name, ()):
            for value in str(getattr(FLAGS, flag) or "").split(","):
                if not (name in ("search", "study") and value == "data/synthetic"):
                    walk.check_input(value, f"--{flag}")  # the synthetic set is generated
        if "TF_CONFIG" in env:  # valid JSON once the launcher's variables are set
            config = re.sub(r"\$(\w+)", lambda m: LAUNCHER_VARIABLES[m.group(1)],
                            env["TF_CONFIG"])
            assert json.loads(config)["task"]["type"] in ("worker", "chief")
        outputs = [FLAGS[f].value for f in OUTPUT_FLAGS.get(module_name, ("output_dir",))
                   if f in FLAGS]  # another binary (a data generator): its --output_dir
        if name == "convert":
            walk.dataset_names[os.path.normpath(FLAGS.output_dir)] = FLAGS.name or FLAGS.dataset
        if name == "search":
            outputs.append(FLAGS.data_dir)
            if FLAGS.export_dir:
                dataset = FLAGS.dataset or walk.dataset_names.get(
                    os.path.normpath(FLAGS.data_dir), "synthetic")
                outputs.append(os.path.join(FLAGS.export_dir, FLAGS.export_name or
                                            f"{dataset}_{FLAGS.method}", "1"))
        for path in outputs:
            if path:
                walk.write(path)
        if name == "convert" and FLAGS.dataset in FIXTURE_LAYOUTS:
            return convert_fixture(walk, module, args, FLAGS.dataset)
        cheap = name in ("evaluate", "export") and any(
            a.split("=", 1)[-1].startswith((TINY_WORKDIR, TINY_EXPORT)) for a in args)
        if cheap:
            parse([name] + args, walk.sandbox)
            run_in(walk.sandbox, lambda: module.main([name]))
            return "ran"
    return "parsed"


def _fixture_celeba(root: str) -> Dict[str, str]:
    from tests.fixtures_datasets import make_celeba
    make_celeba(root)
    return {"source_dir": root}


def _fixture_folder(root: str) -> Dict[str, str]:
    from tests.fixtures_datasets import make_folder
    splits = ["train"] * 6 + ["validation", "validation", "test", "test"]
    rows = [f"p{i}.jpg,{i % 2},{(i // 2) % 2},{int(i % 3 == 0)},{split}"
            for i, split in enumerate(splits)]
    labels = make_folder(root, rows, header="image,Smiling,Eyeglasses,Hat,split")
    return {"source_dir": os.path.join(root, "images"), "labels": labels}


# Layouts whose conversion runs for real, on a fixture of tests/fixtures_datasets.py in the
# command's place (the README's walk-through and own data); the others parse only.
FIXTURE_LAYOUTS = {"celeba": _fixture_celeba, "folder": _fixture_folder}


def convert_fixture(walk: Walk, module, args: List[str], dataset: str) -> str:
    """The conversion, run with its own flags on a fixture of its layout: --source_dir (and
    --labels) point at the fixture, --output_dir into the sandbox."""
    root = os.path.join(walk.sandbox, "fixtures", dataset)
    if root not in walk.fixtures:
        walk.fixtures[root] = FIXTURE_LAYOUTS[dataset](root)
    swap = dict(walk.fixtures[root])
    swap["output_dir"] = os.path.join(walk.sandbox, "converted", f"{len(walk.ran)}")
    walk.ran.append(swap["output_dir"])
    argv = [a for a in args if a.lstrip("-").split("=")[0] not in swap]
    parse(["convert"] + argv + [f"--{k}={v}" for k, v in swap.items()])
    run_in(walk.sandbox, lambda: module.main(["convert"]))
    assert os.path.exists(os.path.join(swap["output_dir"], "metadata.json"))
    return "ran"


def make(walk: Walk, args: List[str], env: Dict[str, str]) -> str:
    """``make <target> [ARGS=...]``: the target exists; a recipe that runs a binary is
    checked as that binary's command (with ARGS appended)."""
    targets = [a for a in args if "=" not in a]
    extra = [a.split("=", 1)[1] for a in args if a.startswith("ARGS=")]
    makefile = open(os.path.join(ROOT, "Makefile")).read()
    for target in targets:
        match = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", makefile, re.M)
        assert match, f"make {target}: no such target in the Makefile"
        # the binary as `gnas-<name>` (the installed console script) or `-m flags.<name>`
        recipe = re.search(r"(?:-m flags\.|/gnas-)(\w+) (.*?) \$\(ARGS\)", match.group(1))
        if recipe:
            project_binary(walk, recipe.group(1), shlex.split(recipe.group(2)) +
                           shlex.split(" ".join(extra)), env)
    return "parsed"


def saved_model_cli(walk: Walk, args: List[str], env: Dict[str, str]) -> str:
    """Parse with saved_model_cli's own flags; then the same flags, with --dir pointed at the
    tiny run's export (and an image.npy of its input shape), run for real."""
    command, rest = args[0], args[1:]
    assert command in ("show", "run"), f"saved_model_cli {command}: not checked here"
    with binary("tensorflow.python.tools.saved_model_cli") as module:
        assert parse(["saved_model_cli", command] + rest)[1:] == [command]
        walk.check_input(FLAGS.dir, "--dir")
        for spec in filter(None, (FLAGS.inputs or "").split(";")):
            walk.check_input(spec.split("=", 1)[1].split("[")[0], "--inputs")
        export = os.path.join(walk.sandbox, TINY_EXPORT, "1")
        swapped = [f"--dir={export}" if a.startswith("--dir") else a for a in rest]
        if "--dir" in rest:
            i = rest.index("--dir")
            swapped = rest[:i] + [f"--dir={export}"] + rest[i + 2:]
        sandbox = os.path.join(walk.sandbox, "saved_model_cli")
        os.makedirs(sandbox, exist_ok=True)
        from gnas_keras.export import saved_model as export_lib
        height, width = export_lib.image_size(export)
        np.save(os.path.join(sandbox, "image.npy"), np.full((1, height, width, 3), 128.0,
                                                            np.float32))
        parse(["saved_model_cli", command] + swapped, sandbox)
        run_in(sandbox, getattr(module, command))
    return "ran"


class _Parsed(Exception):
    """Raised by `repository_module` right after an argparse parser read its arguments."""


def repository_module(walk: Walk, name: str, args: List[str], env: Dict[str, str],
                      path: str = "") -> str:
    """``python -m <module of this repository>`` (benchmarks, converters) or ``python
    <script of this repository>``: its arguments parsed by its own parser (absl flags
    defined at import, or the argparse parser its main builds, stopped right after
    parsing), and the data folder it reads checked."""
    if name.startswith("flags."):
        return project_binary(walk, name[len("flags."):], args, env)
    path = path or os.path.join(*name.split(".")) + ".py"
    assert os.path.exists(os.path.join(ROOT, path)), f"{path}: no such file in the repository"
    before = set(FLAGS)
    with binary(name, os.path.join(ROOT, path)) as module:
        if set(FLAGS) - before:
            assert parse([name] + args)[1:] == [], "unexpected arguments"
            read = {"data_dir": FLAGS["data_dir"].value} if "data_dir" in FLAGS else {}
        else:
            parsed, original, argv = {}, argparse.ArgumentParser.parse_args, sys.argv

            def parse_and_stop(parser, arguments=None, namespace=None):
                parsed["args"] = original(parser, arguments, namespace)
                raise _Parsed

            argparse.ArgumentParser.parse_args = parse_and_stop
            sys.argv = [name] + args
            try:
                module.main(args) if inspect.signature(module.main).parameters else module.main()
            except _Parsed:
                pass
            except SystemExit as err:
                raise AssertionError(f"its parser refused the arguments (exit {err.code})")
            finally:
                argparse.ArgumentParser.parse_args, sys.argv = original, argv
            assert "args" in parsed, f"python -m {name}: no argparse or absl flags found"
            read = vars(parsed["args"])
        for value in str(read.get("data_dir") or "").split(","):
            walk.check_input(value, "--data_dir")
    return "parsed"


def script(walk: Walk, path: str, args: List[str]) -> str:
    """A shell script of the repository: it exists and bash reads it without a syntax error."""
    assert os.path.exists(os.path.join(ROOT, path)), f"{path}: no such script"
    result = subprocess.run(["bash", "-n", os.path.join(ROOT, path)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    return "checked"


def apt_get(walk: Walk, args: List[str], env: Dict[str, str]) -> str:
    """``apt-get install PACKAGE...``: every package is one the repository's code uses (its
    name appears in a Python file outside tests/), not a stray install."""
    assert args[0] == "install", f"apt-get {args[0]}: not checked here"
    code = "\n".join(open(f, encoding="utf-8").read() for f in glob.glob(
        os.path.join(ROOT, "**", "*.py"), recursive=True)
        if "/." not in f and not f.startswith(os.path.join(ROOT, "tests")))
    for package in (a for a in args[1:] if not a.startswith("-")):
        assert re.search(rf"\b{re.escape(package)}\b", code), \
            f"apt-get install {package}: no code of the repository uses it"
    return "checked"


def sudo(walk: Walk, args: List[str], env: Dict[str, str]) -> str:
    return cover(walk, " ".join(args), list(args))


def python_c(walk: Walk, args: List[str], env: Dict[str, str]) -> str:
    """``python -m MODULE ...``: `repository_module`; ``python -c CODE``: run for real in the
    sandbox, the files it makes counting as written."""
    if args[0] == "-m":
        return repository_module(walk, args[1], args[2:], env)
    if args[0].endswith(".py"):
        name = "docs_script_" + re.sub(r"\W", "_", args[0])
        return repository_module(walk, name, args[1:], env, path=args[0])
    assert args[0] == "-c", f"python {args[0]}: not checked here"
    before = set(os.listdir(walk.sandbox))
    run_in(walk.sandbox, lambda: exec(args[1], {}))
    for name in set(os.listdir(walk.sandbox)) - before:
        walk.write(name)
    return "ran"


def model_server(walk: Walk, args: List[str], env: Dict[str, str]) -> str:
    """TF Serving (not installable here): its flags exist, its base path holds versions."""
    given = dict(a[2:].split("=", 1) for a in args)
    assert set(given) <= MODEL_SERVER_FLAGS, f"unknown flags {set(given) - MODEL_SERVER_FLAGS}"
    walk.check_input(given["model_base_path"].replace("$PWD/", ""), "--model_base_path")
    walk.server = given
    return "checked"


def curl(walk: Walk, args: List[str], env: Dict[str, str]) -> str:
    """A REST request: its body was written earlier, its URL is the last server's."""
    assert walk.server, "curl before a model server"
    data = args[args.index("-d") + 1]
    assert data.startswith("@"), "curl -d: a body file expected"
    walk.check_input(data[1:], "-d")
    url = (f"http://localhost:{walk.server['rest_api_port']}/v1/models/"
           f"{walk.server['model_name']}:predict")
    assert args[-1] == url, f"{args[-1]} is not the model server's {url}"
    return "checked"


def tensorboard(walk: Walk, args: List[str], env: Dict[str, str]) -> str:
    logdir = args[args.index("--logdir") + 1] if "--logdir" in args else args[0].split("=")[1]
    walk.check_input(logdir, "--logdir")
    events = glob.glob(os.path.join(walk.sandbox, logdir, "**", "events.out.tfevents.*"),
                       recursive=True)
    assert events, f"--logdir={logdir}: no event files under the tiny run's {logdir}"
    return "checked"


def pip(walk: Walk, args: List[str], env: Dict[str, str]) -> str:
    assert args == ["install", "."], f"pip {' '.join(args)}: not checked here"
    return "test_pip_install_declares_the_console_scripts"


def source(walk: Walk, args: List[str], env: Dict[str, str]) -> str:
    makefile = open(os.path.join(ROOT, "Makefile")).read()
    venv = re.search(r"^VENV := (\S+)", makefile, re.M).group(1)
    assert args == [f"{venv}/bin/activate"], f"source {args}: the Makefile's venv is {venv}"
    return "checked"


def srun(walk: Walk, args: List[str], env: Dict[str, str]) -> str:
    """Slurm: ``srun bash -c 'COMMANDS'``: each inner command covered by the same rules."""
    assert args[:2] == ["bash", "-c"], f"srun {args[:2]}: not checked here"
    for text, tokens in shell_commands(args[2]):
        cover(walk, text, tokens)
    return "checked"


HANDLERS = {"make": make, "saved_model_cli": saved_model_cli, "python": python_c,
            "tensorflow_model_server": model_server, "curl": curl,
            "tensorboard": tensorboard, "pip": pip, "source": source, "srun": srun,
            "apt-get": apt_get, "sudo": sudo}


def cover(walk: Walk, text: str, tokens: List[str]) -> str:
    """How `tokens` is covered; raises AssertionError if it is not."""
    if re.fullmatch(r"\w+=\$\(.*\)", text, re.S):
        return "variable"  # HOSTS=$(scontrol ...): a launcher's setup, used by srun below
    env = {}
    while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):
        key, value = tokens.pop(0).split("=", 1)
        env[key] = value
    assert tokens, "only variable assignments"
    if tokens[0] == "time":
        tokens = tokens[1:]
    program, args = os.path.basename(tokens[0]), tokens[1:]
    if program.startswith("gnas-"):
        return project_binary(walk, program[len("gnas-"):], args, env)
    if tokens[0].endswith(".sh"):
        return script(walk, tokens[0], args)
    assert program in HANDLERS, f"no test covers the program {program!r}"
    return HANDLERS[program](walk, args, env)


def python_written_files(text: str) -> List[str]:
    """Files the document's Python snippets write (``open("x", "w")``)."""
    return re.findall(r"open\(\"([^\"]+)\", \"w\"\)", text)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, synthetic_dir):
    """One tiny finished run of `make search`'s method (task transfer) where `make search`
    writes its outputs, in a sandbox."""
    from gnas_keras.config import CandidateConfig, RunConfig
    from gnas_keras.methods.transfer import TransferConfig
    from gnas_keras.run import run

    sandbox = str(tmp_path_factory.mktemp("docs"))
    config = RunConfig(data_dir=synthetic_dir, workdir=os.path.join(sandbox, TINY_WORKDIR),
                       export_dir=os.path.join(sandbox, "saved_models"),
                       export_name="synthetic_transfer", batch_size=32, eval_batch_size=64,
                       finetune_steps=2, compare=(), method="transfer",
                       candidates=CandidateConfig(val_batches=1))
    config.methods["transfer"] = TransferConfig(transfer_steps=2, transfer_chunk=1,
                                                transfer_neighbours=5)
    report = run(config, out=lambda line: None)
    return sandbox, report


def test_every_fenced_shell_command_is_covered(tiny_run):
    sandbox, _ = tiny_run
    walk = Walk(sandbox)
    uncovered, how = [], {}
    for path in documents():
        text = open(path, encoding="utf-8").read()
        for name in python_written_files(text):
            walk.write(name)
        for language, line, body in fenced_blocks(text):
            if language not in SHELL_LANGUAGES:
                continue
            for command, tokens in shell_commands(body):
                where = f"{os.path.relpath(path, ROOT)}:{line}: {command.splitlines()[0]}"
                try:
                    how[where] = cover(walk, command, list(tokens))
                except Exception as err:  # noqa: BLE001  (any failure is the command's)
                    uncovered.append(f"{where}\n    {type(err).__name__}: {err}")
    assert not uncovered, "commands not covered:\n" + "\n".join(uncovered)
    # The README's quick-start commands on make search's outputs ran for real.
    assert "ran" in {v for k, v in how.items() if "gnas-evaluate --workdir=runs/synth" in k}
    assert "ran" in {v for k, v in how.items() if "gnas-export --saved_model=saved_models/s" in k}
    assert "ran" in {v for k, v in how.items() if "gnas-convert --dataset=celeba" in k}
    assert "ran" in {v for k, v in how.items() if "gnas-convert --dataset=folder" in k}
    assert os.path.exists(os.path.join(sandbox, TINY_WORKDIR, "evaluation.md"))
    assert len(how) >= 40


def test_the_fixed_commands_of_issue_29_fail_as_they_were_written(tiny_run):
    """The two commands issue 29 found broken are caught by the rules above."""
    sandbox, _ = tiny_run
    walk = Walk(sandbox)
    make(walk, ["search"], {})
    with pytest.raises(AssertionError, match="synthetic_gnas_plus/1: neither"):
        cover(walk, "", ["gnas-export", "--saved_model=saved_models/synthetic_gnas_plus/1"])
    with pytest.raises(RuntimeError, match="is not a valid python literal"):
        cover(walk, "", ["saved_model_cli", "run", "--dir", "saved_models/synthetic_transfer/1",
                         "--tag_set", "serve", "--signature_def", "serving_default",
                         "--input_exprs", "image=np.full((1,32,32,3),128.0)"])
    # A benchmark's flags are parsed by its own parser (argparse here, absl in others).
    assert cover(walk, "", ["python", "-m", "benchmarks.label_tree",
                            "--data_dir=data/synthetic"]) == "parsed"
    with pytest.raises(AssertionError, match="refused the arguments"):
        cover(walk, "", ["python", "-m", "benchmarks.label_tree", "--data_dirr=x"])
    assert cover(walk, "", ["python", "-m", "benchmarks.train_step", "--space=tiny"]) == "parsed"
    # A script of the repository, by path, parsed the same way.
    assert cover(walk, "", ["python", "benchmarks/label_tree.py",
                            "--data_dir=data/synthetic"]) == "parsed"
    assert cover(walk, "", ["sudo", "apt-get", "install", "-y", "git"]) == "checked"
    with pytest.raises(AssertionError, match="no code of the repository uses it"):
        cover(walk, "", ["apt-get", "install", "cowsay"])
    with pytest.raises(AssertionError, match="no test covers the program 'rm'"):
        cover(walk, "rm -rf runs", ["rm", "-rf", "runs"])


def test_the_tiny_runs_model_card_states_provenance_and_the_jpeg_error(tiny_run):
    """`make search`'s method measures its tree once, from no start tree: the card,
    report.json and the terminal say so (GNAS's kept and changed trees:
    tests/test_model_card.py)."""
    _, report = tiny_run
    card = open(os.path.join(report["export"], "model_card.md")).read()
    sentence = ("Found by the search of `transfer`, which records no start tree to compare "
                "the result with.")
    assert f"Tree provenance: {sentence}" in card and report["provenance"] == sentence
    assert re.search(r"on the test images as stored \(PNG\); on the same test images "
                     r"re-encoded as JPEG quality 95: \d+\.\d\d %", card)
    assert re.search(r"\| \d+\.\d\d - \d+\.\d\d \| 128 \|", card)  # the small set's 128 tests


def test_pip_install_declares_the_console_scripts():
    """``pip install .`` installs the ``gnas-*`` commands the documents use."""
    path = os.path.join(ROOT, "pyproject.toml")
    if not os.path.exists(path):
        pytest.skip("no pyproject.toml in this checkout yet (issue 27 adds it)")
    import tomllib
    scripts = tomllib.load(open(path, "rb"))["project"]["scripts"]
    used = set()  # commands in fenced blocks and in inline code
    for doc in documents():
        used |= set(re.findall(r"(?:^|`)(gnas-[a-z]+)(?=[ `\n])", open(doc).read(), re.M))
    assert used <= set(scripts), f"not declared: {sorted(used - set(scripts))}"
    for name in used:
        module = scripts[name].split(":")[0]  # flags.<name> or an installed alias of it
        assert module.split(".")[-1] == name[len("gnas-"):], scripts[name]


def github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_links_in_the_readme_and_docs_resolve():
    broken = []
    for doc in documents():
        text = open(doc, encoding="utf-8").read()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"\w+:", target):
                continue
            file, _, anchor = target.partition("#")
            path = os.path.normpath(os.path.join(os.path.dirname(doc), file)) if file else doc
            if not os.path.exists(path):
                broken.append(f"{os.path.relpath(doc, ROOT)}: {target}")
            elif anchor and path.endswith(".md"):
                headings = re.findall(r"^#+ (.*)$", open(path, encoding="utf-8").read(), re.M)
                if anchor not in {github_anchor(h) for h in headings}:
                    broken.append(f"{os.path.relpath(doc, ROOT)}: {target} (no such heading)")
        assert "../shared" not in text, f"{doc}: links outside the repository"
    assert not broken, "\n".join(broken)


def test_the_readme_is_a_guide():
    from gnas_keras.methods import REGISTRY
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert len(text.splitlines()) <= 350
    missing = [m for m in REGISTRY if f"`{m}`" not in text]
    assert not missing, f"methods the README does not name: {missing}"
