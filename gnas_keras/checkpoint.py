"""A run's checkpoints: weights and optimizer slots, plus where the run is.

``<workdir>/checkpoints/`` holds TensorFlow checkpoints of the objects the run names (the
model and its optimizer: weights, momentum, iteration count, learning rate and routing
variables; a method's extra trackables) and ``state.json``: the run's configuration, its
phase, the search position and whatever each phase has finished. `save` writes the
TensorFlow checkpoint first and then replaces ``state.json`` atomically; ``state.json`` names
its checkpoint, and the previous one is kept, so a kill at any moment leaves a state and
weights that belong together. The objects may differ from phase to phase (a supernet while
searching, a tree network while fine-tuning): `restore` reads into the objects given.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from typing import Dict, Iterable, Optional

import tensorflow as tf

from gnas_keras.io import write_json_atomic

STATE_FILE = "state.json"
# Fields that may change between a run and its resumption without changing its results.
OPERATIONAL_FIELDS = ("workdir", "export_dir", "export_name", "export_fused",
                      "export_max_pixels", "checkpoint_every", "on_nan", "restart",
                      "check_images")


def _same(a, b) -> bool:
    """Equal config values; NaN equals NaN (``--learning_rate=nan`` rerun is the same run)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(_same, a, b))
    return a == b


def config_differences(saved: Dict, current: Dict,
                       ignore: Iterable[str] = OPERATIONAL_FIELDS) -> Dict:
    """{flag: (saved value, current value)} for every differing field, nested ones
    (``gnas.train_steps``) reported by their flag name (``train_steps``)."""
    diffs = {}
    for key in sorted(set(saved) | set(current)):
        if key in ignore:
            continue
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs.update(config_differences(a, b, ignore))
        elif not _same(a, b):
            diffs[key] = (a, b)
    return diffs


def checkpoint_failure(directory: str, err: Exception, kept: Optional[str]) -> str:
    """One line for a checkpoint that could not be written (`err`, an OSError or TensorFlow's
    error for one: ENOSPC is ResourceExhaustedError "No space left on device")."""
    reason = getattr(err, "strerror", None) or getattr(err, "message", None) or str(err)
    reason = reason.strip().splitlines()[0] if reason.strip() else type(err).__name__
    reason = reason.split("; ")[-1].split(" [Op:")[0]  # TF: "<file>; <strerror> [Op:...]"
    keeps = (f"the last complete checkpoint {kept} and {STATE_FILE} are kept, and the same "
             "command resumes from them" if kept else
             "no checkpoint yet: the same command starts over")
    return f"{directory}: could not write a checkpoint ({reason}); {keeps}"


class RunCheckpoint:
    """Saves and restores one run's state in ``<workdir>/checkpoints``."""

    def __init__(self, workdir: str, config: Dict, max_to_keep: int = 2,
                 scratch: Optional[str] = None):
        """config: `RunConfig.to_dict()`. scratch: set on a non-chief worker of a
        multi-worker run: it reads the chief's checkpoints in `workdir` but writes nothing
        there; its `save` writes the weights into `scratch` and deletes them (every worker
        must take part in writing a checkpoint of distributed variables)."""
        self.directory = os.path.join(workdir, "checkpoints")
        self.config = config
        self.max_to_keep = max_to_keep
        self.scratch = scratch
        self._saved = False  # scratch: saved at least once (the chief's state.json moved on)
        self._cleared = False  # scratch: --restart (the chief clears; we ignore its state)
        self.latest: Optional[str] = None  # the weights that belong to the current state

    @property
    def state_path(self) -> str:
        return os.path.join(self.directory, STATE_FILE)

    def exists(self) -> bool:
        return os.path.exists(self.state_path)

    def clear(self) -> None:
        """Forgets the saved run (``--restart``); a non-chief worker only ignores it."""
        if self.scratch is not None:
            self._cleared, self.latest = True, None
            return
        shutil.rmtree(self.directory, ignore_errors=True)
        self.latest = None

    def read_state(self) -> Optional[Dict]:
        """The saved state, or None. Raises ValueError naming the file when it is not a
        state this project wrote (garbled, or not a JSON object with a config)."""
        if not self.exists():
            return None
        try:
            with open(self.state_path, encoding="utf-8") as f:
                state = json.load(f)
        except (ValueError, OSError) as err:  # JSONDecodeError, UnicodeDecodeError
            reason = getattr(err, "msg", None) or getattr(err, "strerror", None) or str(err)
            line = f":{err.lineno}" if hasattr(err, "lineno") else ""
            raise ValueError(f"{self.state_path}{line}: not a readable run state ({reason}); "
                             "pass --restart to start over (the old outputs are kept aside)"
                             ) from None
        if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
            raise ValueError(f"{self.state_path}: not a run state (no 'config' object); pass "
                             "--restart to start over")
        return state

    def check_config(self, state: Dict) -> None:
        """Refuses to resume a run made with a different configuration."""
        diffs = config_differences(state["config"], self.config)
        if diffs:
            listed = ", ".join(f"--{k} (was {a!r}, now {b!r})" for k, (a, b) in diffs.items())
            raise ValueError(
                f"{os.path.dirname(self.directory)}: holds a run with a different "
                f"configuration: {listed}; pass --restart to start over, or use another "
                "--workdir")

    def restore_state(self) -> Optional[Dict]:
        """The saved state (None if new), after checking its configuration."""
        state = None if self._cleared else self.read_state()
        if state is None:
            return None
        self.check_config(state)
        self.latest = state.get("checkpoint")
        return state

    def restore_objects(self, objects: Dict) -> bool:
        """Loads the weights named by ``state.json`` into `objects` (the same names and
        structure they were saved with); False when the state names none."""
        if self.scratch is not None and self._saved:
            # the chief's newest: it finished writing it before the collective steps that
            # brought this worker here
            self.latest = (self.read_state() or {}).get("checkpoint")
        if not self.latest:
            return False
        tf.train.Checkpoint(**objects).read(self.latest).assert_existing_objects_matched()
        return True

    def _next_path(self) -> str:
        numbers = [int(f[5:].split(".")[0]) for f in os.listdir(self.directory)
                   if f.startswith("ckpt-") and f[5:].split(".")[0].isdigit()] \
            if os.path.isdir(self.directory) else []
        return os.path.join(self.directory, f"ckpt-{max(numbers, default=0) + 1}")

    def _prune(self) -> None:
        prefixes = sorted({int(f[5:].split(".")[0]) for f in os.listdir(self.directory)
                           if f.startswith("ckpt-") and f[5:].split(".")[0].isdigit()})
        for number in prefixes[:-self.max_to_keep]:
            for f in os.listdir(self.directory):
                if f.startswith(f"ckpt-{number}."):
                    os.remove(os.path.join(self.directory, f))

    def save(self, state: Dict, objects: Optional[Dict] = None) -> None:
        """Writes the weights of `objects` (None: the last ones saved still belong to the
        state), then ``state.json`` naming them. A non-chief worker (`scratch`) writes
        the weights to its scratch directory and deletes them, and no state."""
        if self.scratch is not None:
            if objects is not None:
                path = tf.train.Checkpoint(**objects).write(os.path.join(self.scratch, "ckpt"))
                for f in tf.io.gfile.glob(path + "*"):
                    os.remove(f)
                self._saved = True
            return
        previous, path = self.latest, None
        try:
            if objects is not None:
                os.makedirs(self.directory, exist_ok=True)
                path = self._next_path()
                self.latest = tf.train.Checkpoint(**objects).write(path)
            write_json_atomic(self.state_path, dict(state, config=self.config,
                                                    checkpoint=self.latest))
        except (OSError, tf.errors.OpError) as err:
            # A full disk, a read-only or vanished file system: the new weights are removed
            # (they may be cut short), state.json still names the last complete checkpoint.
            self.latest = previous
            if path:
                for f in tf.io.gfile.glob(path + "*"):
                    tf.io.gfile.remove(f)
            raise OSError(checkpoint_failure(self.directory, err, previous)) from None
        if objects is not None:
            self._prune()
