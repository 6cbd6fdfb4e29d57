"""A run's directories: checked writable before any work, owned by one process at a time, and
moved aside (never deleted) when a run starts over.

- `check_writable`: creates the directory if needed and writes a probe file into it, so that
  an unwritable ``--workdir`` or ``--export_dir`` fails in one line before the search instead
  of with a `PermissionError` hours later.
- `WorkdirLock`: ``<workdir>/run.lock`` holds the owner's pid, host and start time. A second
  run on the same workdir is refused while the owner lives; a lock left by a process that
  no longer exists on this host (killed, machine restarted) is stale and taken over. A lock
  from another host cannot be checked from here: it is refused with the file to delete.
- `move_aside`: ``--restart`` moves the previous run's outputs into
  ``<workdir>/.replaced/<UTC time>/`` before it starts, so a restart that then fails leaves
  no old report that looks current, and nothing is lost.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Callable, Optional, Sequence

from gnas_keras.io import readable_by_group

LOCK_FILE = "run.lock"
REPLACED_DIR = ".replaced"
# What a run writes into its workdir (see `gnas_keras.run`).
RUN_OUTPUTS = ("checkpoints", "tensorboard", "report.json", "tree.json",
               "test_predictions.npz", "tree.svg", "tree.png")
EVENTS_PREFIX = "events.out.tfevents."  # `gnas_keras.reporting.reporter.event_dir`


def check_writable(path: str, flag: str) -> None:
    """Creates `path` if missing and checks a file can be written there.

    Raises:
      ValueError: ``<flag>: <path> is not writable (<reason>)``.
    """
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-check-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        if isinstance(err, FileExistsError) and os.path.isfile(err.filename or path):
            reason = f"{err.filename or path} is a file, where a folder is needed"
        raise ValueError(f"{flag}: {path} is not writable ({reason})") from None


def _alive(pid: int) -> bool:
    if pid == os.getpid():  # a pid reused after a restart of the machine or container
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


class WorkdirLock:
    """``with WorkdirLock(workdir, out): ...`` owns `workdir` for the block.

    Raises (on entry):
      ValueError: the workdir is in use by a live process (or one on another host), naming
        the owner and the lock file.
    """

    def __init__(self, workdir: str, out: Callable[[str], None] = lambda line: None):
        self.path = os.path.join(workdir, LOCK_FILE)
        self.out = out
        self.owner = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def _read(self) -> Optional[dict]:
        try:
            with open(self.path) as f:
                owner = json.load(f)
            return owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) \
                else None
        except (OSError, ValueError):
            return None

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(self.owner, f)
        return True

    def __enter__(self) -> "WorkdirLock":
        for _ in range(2):
            if self._create():
                return self
            owner = self._read()
            if owner is None:
                reason = "unreadable"
            elif owner.get("host") != self.owner["host"]:
                raise ValueError(
                    f"{os.path.dirname(self.path)}: in use by pid {owner['pid']} on host "
                    f"{owner.get('host')!r} since {owner.get('started')}; if that run is gone, "
                    f"delete {self.path}")
            elif _alive(owner["pid"]):
                raise ValueError(
                    f"{os.path.dirname(self.path)}: in use by pid {owner['pid']} on this host "
                    f"since {owner.get('started')} ({self.path}); wait for it or use another "
                    "--workdir")
            else:
                reason = f"pid {owner['pid']} no longer exists"
            self.out(f"taking over the stale lock {self.path} ({reason})")
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
        raise ValueError(f"{self.path}: another run took this workdir just now")

    def __exit__(self, *exc) -> None:
        if self._read() == self.owner:
            os.remove(self.path)


def move_aside(workdir: str, names: Sequence[str] = RUN_OUTPUTS) -> Optional[str]:
    """Moves the outputs `names` that exist in `workdir` into a new
    ``<workdir>/.replaced/<UTC time>/``; returns that folder (None if nothing was there)."""
    present = [n for n in names if os.path.lexists(os.path.join(workdir, n))]
    if os.path.isdir(workdir):  # TensorBoard events, written into the workdir itself
        present += sorted(f for f in os.listdir(workdir) if f.startswith(EVENTS_PREFIX))
    if not present:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target, k = os.path.join(workdir, REPLACED_DIR, stamp), 1
    while os.path.exists(target):
        k += 1
        target = os.path.join(workdir, REPLACED_DIR, f"{stamp}-{k}")
    os.makedirs(target)
    readable_by_group(os.path.join(workdir, REPLACED_DIR))
    readable_by_group(target)
    for name in present:
        os.rename(os.path.join(workdir, name), os.path.join(target, name))
    return target
