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
from typing import Optional  # noqa: E402

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


def os_error_line(err: OSError) -> str:
    """An operating-system error (a full disk, a read-only file system, no permission, a file
    where a folder belongs, ...) as one line: the path, what went wrong in words and the
    errno name (ENOSPC, EROFS, EACCES, ENOTDIR, ...), not Python's ``[Errno 28] ...`` form.
    An error raised with a message of its own (no errno) keeps that message."""
    if err.errno is None or not err.strerror:
        return str(err)
    import errno as errno_names

    code = errno_names.errorcode.get(err.errno, str(err.errno))
    path = err.filename if err.filename is not None else ""
    what = err.strerror
    if err.errno == errno_names.EEXIST and path and os.path.isfile(path):
        what = "is a file, where a folder is needed"
    elif err.errno == errno_names.ENOSPC:
        what = "no space left on the device"
    line = f"{path}: {what} ({code})" if path else f"{what} ({code})"
    if err.filename2 is not None:
        line += f" (and {err.filename2})"
    return line


# The operating-system errors a binary meets reading and writing files (full disk, read-only
# or vanished file system, no permission, a file where a folder belongs, a file deleted while
# it was read: a dataset converted again under a running search).
_WRITE_ERRNOS = ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "ENOTDIR", "EEXIST", "EIO",
                 "ENOENT")


def tensorflow_os_error_line(err: BaseException) -> Optional[str]:
    """TensorFlow's error for an operating-system error (ENOSPC arrives as
    ``ResourceExhaustedError("<file>; No space left on device [Op:...]")``, EROFS as
    ``FailedPreconditionError``) as `os_error_line` would say it; None for anything else."""
    tf = sys.modules.get("tensorflow")
    if tf is None or not isinstance(err, tf.errors.OpError):
        return None
    import errno as errno_names

    message = (err.message or "").strip().splitlines()
    text = message[0].split(" [Op:")[0] if message else ""
    for name in _WRITE_ERRNOS:
        code = getattr(errno_names, name, None)
        strerror = os.strerror(code) if code is not None else None
        if strerror and text.endswith(strerror):
            path = text[:-len(strerror)].rstrip("; :")
            return os_error_line(OSError(code, strerror, path.split("}} ")[-1] or None))
    return None


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
                         "group's majority; 5: held out, groups crossed over the visual "
                         "factors); a set of another version is regenerated.",
                         lower_bound=3, upper_bound=5)


def generate_synthetic_if_wanted(config, enabled: bool, version: int = 4) -> None:
    """Generates the synthetic set (generator `version`) at ``config.data_dir`` if it is
    missing or of another version, when the run asks for it (``--dataset=synthetic``) or uses
    the default ``--data_dir`` (data/synthetic)."""
    from gnas_keras.config import RunConfig

    if enabled and (config.dataset == "synthetic" or (
            not config.dataset and config.data_dir == RunConfig().data_dir)):
        from gnas_keras_pipelines import synthetic
        synthetic.ensure_generated(config.data_dir, version=version)


HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort")


def _own_module(module: str) -> bool:
    """Flags this project defines: the binary's own (absl names a ``python -m`` binary's
    module by its path) and the config sections (`dataclass_flags`: ``gnas_keras...``)."""
    return module.startswith("gnas_keras") or module == (sys.argv[0] if sys.argv else "")


def binary_help(doc: str = "") -> str:
    """``--help``: the binary's docstring `doc`, then its own flags, one group per config
    section. absl's own short help lists only flags defined in the main module, and ours are
    derived from the config dataclasses elsewhere; ``--helpfull`` still lists absl's too."""
    parts = [doc.strip()]
    for module in flags.FLAGS.flags_by_module_dict():
        if _own_module(module):
            parts.append(flags.FLAGS.module_help(module))
    parts.append("Try --helpfull to get a list of all flags.")
    return "\n\n".join(p for p in parts if p)


def parse_flags(argv, doc: str = ""):
    """absl's parser (``--flagfile`` included), with a bad flag reported by `fail` and
    ``--help`` answered by `binary_help` (exit 0)."""
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        print(binary_help(doc), flush=True)
        sys.exit(0)
    if "--helpfull" in argv[1:]:  # absl's, but exit 0 like --help
        print(f"{doc.strip()}\n\n{flags.FLAGS.get_help()}", flush=True)
        sys.exit(0)
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)


# A Ctrl-C that TensorFlow keeps from Python this long (or a second one) ends the process.
# Long enough for the clean-up a handled Ctrl-C does (a convert removes its temporary folder).
CTRL_C_GRACE_SECONDS = 30.0


class CtrlCWatchdog:
    """Makes Ctrl-C end a binary even while TensorFlow blocks the main thread.

    Python runs its SIGINT handler (KeyboardInterrupt, `gnas_keras.run`'s resumable stop)
    only when the main thread comes back to the interpreter; inside a long TensorFlow call
    (an iterator filling a huge batch, a blocked queue) Ctrl-C was ignored, twice. The C-level
    handler still writes the signal number to `signal.set_wakeup_fd`; a daemon thread reads
    it, and when a second Ctrl-C comes, or the first is not acted on within `grace` seconds,
    prints one line and exits at once with status 130. Files are written through temporary
    names and renames (`gnas_keras.io`, checkpoints before the state that names them), so
    what is complete stays and nothing half-written takes its place."""

    def __init__(self, grace: Optional[float] = None):
        self.grace = CTRL_C_GRACE_SECONDS if grace is None else grace
        self.seen = 0

    def start(self) -> None:
        import signal
        import socket
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        try:
            signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except ValueError:  # not the main thread of the main interpreter
            return
        self._sockets = (reader, writer)  # kept open for the life of the process
        threading.Thread(target=self._watch, args=(reader,), daemon=True,
                         name="ctrl-c-watchdog").start()

    def _watch(self, reader) -> None:
        import signal

        while True:
            data = reader.recv(64)
            if not data:
                return
            for _ in range(data.count(bytes([signal.SIGINT]))):
                self.seen += 1
                if self.seen == 1:
                    import threading
                    timer = threading.Timer(self.grace, self._stop, args=(
                        f"interrupted; TensorFlow did not give control back within "
                        f"{self.grace:.0f} s, stopped at once",))
                    timer.daemon = True
                    timer.start()
                else:
                    self._stop("interrupted twice, stopped at once")

    @staticmethod
    def _stop(message: str) -> None:
        prog = os.path.basename(sys.argv[0]).removesuffix(".py") if sys.argv else "gnas"
        os.write(2, f"\n{prog}: {message}; what was completely written is kept (a search "
                    "resumes from its last checkpoint with the same command)\n".encode())
        os._exit(130)


def run(main) -> None:
    """`absl.app.run(main)` where user errors from `main` are reported by `fail`, and Ctrl-C
    always ends the process (`CtrlCWatchdog`)."""

    def guarded(argv):
        CtrlCWatchdog().start()
        logging.set_verbosity(logging.WARNING)  # TF's INFO lines drown the progress
        if len(argv) > 1:
            fail(f"unexpected arguments {' '.join(argv[1:])!r}")
        try:
            main(argv)
        except OSError as err:  # before USER_ERRORS: FileNotFoundError & co. are OSErrors
            fail(os_error_line(err))
        except USER_ERRORS as err:
            fail(str(err))
        except WorkerLost as err:
            # Not the user's input, but still one line: a multi-worker run that lost a
            # worker says where it resumes; exit status 1.
            fail(str(err), status=1)
        except KeyboardInterrupt as err:
            interrupted(str(err))
        except Exception as err:  # noqa: BLE001  (re-raised unless an OS error)
            line = tensorflow_os_error_line(err)
            if line is None:
                raise
            fail(line)

    doc = getattr(sys.modules.get(main.__module__), "__doc__", None) or ""
    app.run(guarded, flags_parser=lambda argv: parse_flags(argv, doc))
