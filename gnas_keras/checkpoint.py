"""A run's checkpoints: weights and optimizer slots, plus where the run is.

``<workdir>/checkpoints/`` holds TensorFlow checkpoints of the supernet and its optimizer
(`tf.train.CheckpointManager`: weights, momentum, iteration count, learning rate and routing
variables) and ``state.json``: the run's configuration, its phase, the search position and
whatever each phase has finished. `save` writes the TensorFlow checkpoint first and then
replaces ``state.json`` atomically; ``state.json`` names its checkpoint, and the manager keeps
the previous one, so a kill at any moment leaves a state and weights that belong together.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Dict, Iterable, Optional

import tensorflow as tf

from gnas_keras.io import write_json_atomic

STATE_FILE = "state.json"
# Fields that may change between a run and its resumption without changing its results.
OPERATIONAL_FIELDS = ("workdir", "export_dir", "export_name", "checkpoint_every", "on_nan",
                      "restart")


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
        elif (list(a) if isinstance(a, (list, tuple)) else a) != \
                (list(b) if isinstance(b, (list, tuple)) else b):
            diffs[key] = (a, b)
    return diffs


class RunCheckpoint:
    """Saves and restores one run's state in ``<workdir>/checkpoints``."""

    def __init__(self, workdir: str, model, config: Dict, max_to_keep: int = 2):
        """model: a compiled `Supernet`; config: `RunConfig.to_dict()`."""
        self.directory = os.path.join(workdir, "checkpoints")
        self.config = config
        self.model = model
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        self.max_to_keep = max_to_keep
        self.latest: Optional[str] = None  # the weights that belong to the current state
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=max_to_keep)

    @property
    def state_path(self) -> str:
        return os.path.join(self.directory, STATE_FILE)

    def exists(self) -> bool:
        return os.path.exists(self.state_path)

    def clear(self) -> None:
        """Forgets the saved run (``--restart``)."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self.latest = None
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=self.max_to_keep)

    def read_state(self) -> Optional[Dict]:
        if not self.exists():
            return None
        with open(self.state_path) as f:
            return json.load(f)

    def check_config(self, state: Dict) -> None:
        """Refuses to resume a run made with a different configuration."""
        diffs = config_differences(state["config"], self.config)
        if diffs:
            listed = ", ".join(f"--{k} (was {a!r}, now {b!r})" for k, (a, b) in diffs.items())
            raise ValueError(
                f"{os.path.dirname(self.directory)}: holds a run with a different "
                f"configuration: {listed}; pass --restart to start over, or use another "
                "--workdir")

    def restore(self) -> Optional[Dict]:
        """Loads the weights named by ``state.json`` and returns the state (None if new)."""
        state = self.read_state()
        if state is None:
            return None
        self.check_config(state)
        if state.get("checkpoint"):
            self.checkpoint.restore(state["checkpoint"]).assert_existing_objects_matched()
        self.latest = state.get("checkpoint")
        return state

    def save(self, state: Dict, weights: bool = True) -> None:
        """Writes the weights (unless `weights` is False: the last ones saved still belong to
        the state), then ``state.json`` naming them."""
        if weights:
            self.latest = self.manager.save()
        write_json_atomic(self.state_path, dict(state, config=self.config,
                                                checkpoint=self.latest))
