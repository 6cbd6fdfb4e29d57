"""Shared by the binaries: one clear line and exit code 2 for bad input, never a traceback."""

from __future__ import annotations

import os
import sys

# Quiet TensorFlow's C++ start-up chatter before it is imported anywhere.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
               FloatingPointError)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def run_main(main, argv) -> None:
    """Calls main(argv); user errors become one line on stderr and exit code 2."""
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # TF's INFO lines drown the progress
    try:
        main(argv)
    except USER_ERRORS as e:
        fail(str(e))
