"""Which folders a converter may create or replace (no TensorFlow import: the binaries check
``--output_dir`` before loading anything).

A converter writes a new dataset into a temporary sibling of its output folder and renames it
into place. An existing output folder is replaced only when all of these hold:

- ``overwrite`` was asked for;
- it is a folder holding a converted dataset (its ``metadata.json``) and nothing else: only
  ``metadata.json`` and ``<split>-NNNNN-of-NNNNN.tfrecord`` shards, the files this project
  writes; any other entry (``notes.txt``, ``sub/``) is named and nothing is replaced;
- it is not the source folder, nor a folder that contains the source folder;
- it was named explicitly: never an empty path, ``.``, the current folder or one above it.

An empty folder (made beforehand) is used as if it did not exist. A symbolic link is resolved:
its target is the folder checked and replaced, and the link is left as it is.

All but the first are checked even without ``overwrite`` so that the error never suggests a
flag that would destroy the user's data.

`OutputLock` makes two converts into one output folder exclusive: the second stops with one
line instead of deleting the first one's temporary folder.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
from typing import List, Optional, Sequence

from gnas_keras_pipelines.convert_errors import ConversionError

METADATA_FILE = "metadata.json"  # = records.METADATA_FILE (records imports TensorFlow)
# The files of a converted dataset (`records.DatasetWriter` writes nothing else).
DATASET_FILE = re.compile(r"(metadata\.json|(train|validation|test)-\d{5}-of-\d{5}\.tfrecord)\Z")


def foreign_entries(folder: str) -> List[str]:
    """The entries of `folder` that a converted dataset does not have (sorted; folders with a
    trailing ``/``)."""
    out = []
    for entry in os.scandir(folder):
        if not (DATASET_FILE.match(entry.name) and entry.is_file(follow_symlinks=False)):
            out.append(entry.name + ("/" if entry.is_dir(follow_symlinks=False) else ""))
    return sorted(out)


def _contains(outer: str, inner: str) -> bool:
    """Whether real path `inner` is `outer` or lies below it."""
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def check_output_dir(output_dir: str, overwrite: bool = False,
                     protected: Sequence[Optional[str]] = ()) -> str:
    """Validates `output_dir` for a converter; returns its absolute path.

    Args:
      output_dir: the folder to create (or replace).
      overwrite: whether an existing converted dataset there may be replaced.
      protected: folders that must survive (the source folder); `output_dir` may be inside
        them but must be neither one of them nor above one of them.
    Raises:
      ConversionError (kind ``unsafe_output``) naming `output_dir` and the reason.
    """
    if output_dir is None or not str(output_dir).strip():
        raise ConversionError("--output_dir", None, "is empty; name a new folder for the "
                              "converted dataset", kind="unsafe_output")
    # A link is resolved: its target is what gets checked, written and replaced.
    absolute = real = os.path.realpath(os.path.abspath(os.path.expanduser(output_dir)))
    here = os.path.realpath(os.getcwd())
    if _contains(real, here):
        raise ConversionError(output_dir, None, "is the current folder or one above it; name a "
                              "new folder for the converted dataset", kind="unsafe_output")
    for keep in protected:
        if keep and _contains(real, os.path.realpath(os.path.expanduser(keep))):
            what = "the source folder" if real == os.path.realpath(keep) else \
                f"a folder that contains the source folder {keep}"
            raise ConversionError(output_dir, None, f"is {what}; name a new folder for the "
                                  "converted dataset", kind="unsafe_output")
    ancestor = os.path.dirname(absolute)
    while not os.path.isdir(ancestor):
        if os.path.lexists(ancestor):
            raise ConversionError(output_dir, None, f"{ancestor} is a file, not a folder; "
                                  "name a folder for the converted dataset",
                                  kind="unsafe_output")
        ancestor = os.path.dirname(ancestor)
    if os.path.lexists(absolute):
        if not os.path.isdir(absolute):
            raise ConversionError(output_dir, None, "exists and is not a folder; name a new "
                                  "folder for the converted dataset", kind="unsafe_output")
        if not os.listdir(absolute):
            return absolute  # an empty folder made beforehand: nothing to lose
        if not os.path.isfile(os.path.join(absolute, METADATA_FILE)):
            raise ConversionError(output_dir, None, "exists and holds no converted dataset "
                                  f"(no {METADATA_FILE}); it is never replaced, name a new "
                                  "folder", kind="unsafe_output")
        foreign = foreign_entries(absolute)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more"
                                              if len(foreign) > 5 else "")
            raise ConversionError(output_dir, None, f"holds a converted dataset and also "
                                  f"{shown}, which are not the dataset's; it is never "
                                  "replaced: move them away or name a new folder",
                                  kind="unsafe_output")
        if not overwrite:
            raise ConversionError(output_dir, None, "already holds a converted dataset; pass "
                                  "--overwrite to replace it", kind="output_exists")
    return absolute


class OutputLock:
    """An exclusive lock on converting into `output_dir` (absolute, links resolved): the file
    ``.<name>.lock`` beside it, locked with ``flock`` and removed on release.

    Held from before the temporary folder is made until the dataset is renamed into place, so
    a second convert into the same folder stops at once with one line, and never removes the
    first one's temporary folder as a leftover. A lock of a process that died is released by
    the kernel; its file is reused.
    """

    def __init__(self, output_dir: str, shown: str):
        parent, base = os.path.split(output_dir)
        self.path = os.path.join(parent, f".{base}.lock")
        self.shown = shown  # the --output_dir the user gave, for messages
        self._fd: Optional[int] = None

    def acquire(self) -> "OutputLock":
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP):
                    break  # a file system without locks: convert unlocked, as before
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise
                raise ConversionError(self.shown, None, "another convert is writing this "
                                      f"folder (process {holder or '?'}, lock {self.path}); "
                                      "wait for it to finish or name another folder",
                                      kind="output_busy") from None
            # The holder before us may have removed the file after we opened it: then our
            # lock is on a file nobody else sees; start again on the current one.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # while still locked: a waiter re-checks the file (above)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None


class DatasetReadLock:
    """Marks converted datasets as being read, for as long as a run reads them: a shared
    ``flock`` on each folder's ``metadata.json``. A convert does not replace a dataset while
    any run holds it (`no_readers`): without this, ``--overwrite`` swapped the files under a
    running search, which then died on a shard that was gone or, with the same shard names,
    read another dataset without a word. Folders it cannot open (``gs://``) go unmarked.
    """

    def __init__(self, data_dirs: Sequence[str]):
        self.data_dirs = list(data_dirs)
        self._fds: List[int] = []

    def __enter__(self) -> "DatasetReadLock":
        for data_dir in self.data_dirs:
            path = os.path.join(data_dir, METADATA_FILE)
            while True:
                try:
                    fd = os.open(path, os.O_RDONLY)
                except OSError:
                    break
                # Waits only while a convert swaps the folder (milliseconds); then the lock
                # is on the replaced file, and the current one is locked instead.
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH)
                except OSError:  # a file system without locks: the folder goes unmarked
                    os.close(fd)
                    break
                try:
                    current = os.path.samestat(os.fstat(fd), os.stat(path))
                except OSError:
                    current = False
                if current:
                    self._fds.append(fd)
                    break
                os.close(fd)
        return self

    def __exit__(self, *exc) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


class no_readers:  # noqa: N801 - used as a `with` statement, like a function
    """Holds the exclusive lock on `output_dir`'s ``metadata.json`` (if it has one), so no run
    starts reading the dataset meanwhile; a `ConversionError` if a run reads it now (see
    `DatasetReadLock`)."""

    def __init__(self, output_dir: str, shown: str):
        self.path = os.path.join(output_dir, METADATA_FILE)
        self.shown = shown
        self._fd: Optional[int] = None

    def __enter__(self) -> "no_readers":
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return self
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(self._fd)
            self._fd = None
            if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP):
                return self  # a file system without locks: no run can have marked it
            if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise ConversionError(self.shown, None, "holds a dataset that a running search "
                                  "reads; it is not replaced: wait for the search to end or "
                                  "name another folder", kind="output_busy") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
