"""Atomic file writes: a reader sees the old file or the complete new one, never a part; the
file gets the mode of an ordinary write (the umask decides, usually group-readable)."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it; set back at once
    os.umask(mask)
    return mask


def readable_by_group(path: str) -> None:
    """Gives `path` the mode a plain `open` / `mkdir` would (0666 / 0777 less the umask):
    `tempfile` creates 0600 files and 0700 folders, which a renamed output would keep, so a
    teammate could not read reports, checkpoints or exports."""
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_umask())


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Writes `data` to a temporary file beside `path` (the directory is created), fsyncs
    it, then renames it over."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        readable_by_group(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text_atomic(path: str, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, sort_keys=False) + "\n")
