"""Shared by the binaries: bad input is one clear line on stderr and exit code 2, never a
traceback or a usage dump."""

from __future__ import annotations

import os
import sys

# TensorFlow's C++ start-up chatter would bury that one line; users can still set it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from pipelines.convert_errors import ConversionError  # noqa: E402  (no TensorFlow import)

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
               FloatingPointError, ConversionError)


def fail(message: str) -> None:
    prog = os.path.basename(sys.argv[0]).removesuffix(".py") if sys.argv else "gnas"
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


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

    app.run(guarded, flags_parser=parse_flags)
