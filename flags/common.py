"""Shared by the binaries: bad input is one clear line on stderr and exit code 2, never a
traceback or a usage dump."""

from __future__ import annotations

import os
import sys

# TensorFlow's C++ start-up chatter would bury that one line; users can still set it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import contextlib  # noqa: E402
import importlib.abc  # noqa: E402
import importlib.util  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402

# A line of TensorFlow's C++ logging: severity letter, MMDD, time (before absl is initialised
# "00:00:<epoch seconds>"), thread, file:line]
_NATIVE_LOG_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ [\w.-]+:\d+\] ")
_NOT_YET_INITIALISED = "WARNING: All log messages before absl::InitializeLog() is called"
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}


def without_startup_noise(text: str, min_log_level: int) -> str:
    """`text` (what the process wrote to stderr while TensorFlow was imported) less the native
    log records below TF_CPP_MIN_LOG_LEVEL.

    TensorFlow 2.21 logs through absl before absl logging is initialised, and those records
    (oneDNN's "custom operations are on", cpu_feature_guard's instruction-set note, each
    preceded by absl's "before InitializeLog" warning) ignore TF_CPP_MIN_LOG_LEVEL. Which of
    them appear depends on the CPU. A record is a log line plus the lines up to the next
    record (cpu_feature_guard's note takes two); text before the first record is kept.
    """
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        match = _NATIVE_LOG_LINE.match(line)
        if match:
            dropping = _SEVERITY[match.group(1)] < min_log_level
        elif line.startswith(_NOT_YET_INITIALISED):
            dropping = _SEVERITY["W"] < min_log_level
        # any other line continues the record before it, and shares its fate
        if not dropping:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def stderr_filtered_by_log_level():
    """Routes file descriptor 2 (where native code writes) to a temporary file for the
    duration, then writes back what `without_startup_noise` keeps. On an exception everything
    captured is written back unfiltered, so nothing about a failure is lost."""
    try:
        level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        level = 0
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            text = text if failed else without_startup_noise(text, level)
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs the first ``import tensorflow`` (wherever a binary's code does it) inside
    `stderr_filtered_by_log_level`; binaries that never need TensorFlow (describe) stay
    free of it."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # the real finders locate it; this wraps the loading
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        real = spec.loader

        class Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return real.create_module(spec)

            def exec_module(self, module):
                with stderr_filtered_by_log_level():
                    real.exec_module(module)

        spec.loader = Loader()
        return spec


if "tensorflow" not in sys.modules:
    sys.meta_path.insert(0, _QuietTensorFlowImport())

from absl import app, flags, logging  # noqa: E402

from gnas_keras.training.evaluation import WorkerLost  # noqa: E402  (no TensorFlow import)
from gnas_keras_pipelines.convert_errors import ConversionError  # noqa: E402  (no TensorFlow import)

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
               PermissionError, FloatingPointError, ConversionError)


def interrupted(message: str) -> None:
    """Ctrl-C: one line (what was interrupted, where it resumes), exit status 130 as a shell
    reports SIGINT."""
    prog = os.path.basename(sys.argv[0]).removesuffix(".py") if sys.argv else "gnas"
    print(f"{prog}: {message or 'interrupted'}", file=sys.stderr, flush=True)
    sys.exit(130)


def fail(message: str, status: int = 2) -> None:
    prog = os.path.basename(sys.argv[0]).removesuffix(".py") if sys.argv else "gnas"
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


def define_synthetic_flags() -> None:
    """``--generate_synthetic`` and ``--synthetic_version``, for binaries that train."""
    flags.DEFINE_bool("generate_synthetic", True,
                      "Generate the synthetic set at --data_dir if it is missing, with "
                      "--dataset=synthetic or with the default --data_dir.")
    # 4 = pipelines.synthetic.GENERATOR_VERSION, written out: that module imports TensorFlow.
    flags.DEFINE_integer("synthetic_version", 4, "Generator version of that synthetic set "
                         "(4: groups invisible in the labels; 3: the earlier set with each "
                         "group's majority); a set of another version is regenerated.",
                         lower_bound=3, upper_bound=4)


def generate_synthetic_if_wanted(config, enabled: bool, version: int = 4) -> None:
    """Generates the synthetic set (generator `version`) at ``config.data_dir`` if it is
    missing or of another version, when the run asks for it (``--dataset=synthetic``) or uses
    the default ``--data_dir`` (data/synthetic)."""
    from gnas_keras.config import RunConfig

    if enabled and (config.dataset == "synthetic" or (
            not config.dataset and config.data_dir == RunConfig().data_dir)):
        from gnas_keras_pipelines import synthetic
        synthetic.ensure_generated(config.data_dir, version=version)


def parse_flags(argv):
    """absl's parser (``--flagfile`` included), with a bad flag reported by `fail`."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)


def run(main) -> None:
    """`absl.app.run(main)` where user errors from `main` are reported by `fail`."""

    def guarded(argv):
        logging.set_verbosity(logging.WARNING)  # TF's INFO lines drown the progress
        if len(argv) > 1:
            fail(f"unexpected arguments {' '.join(argv[1:])!r}")
        try:
            main(argv)
        except USER_ERRORS as err:
            fail(str(err))
        except WorkerLost as err:
            # Not the user's input, but still one line: a multi-worker run that lost a
            # worker says where it resumes; exit status 1.
            fail(str(err), status=1)
        except KeyboardInterrupt as err:
            interrupted(str(err))

    app.run(guarded, flags_parser=parse_flags)
