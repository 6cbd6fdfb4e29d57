"""One config object for a run: the binaries build it from flags, the library reads only it."""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

from gnas_keras.gnas import GnasConfig

METHODS = ("gnas", "random", "shared", "independent", "random_tree", "planted_tree")
SEARCHES = ("gnas", "random")
STRATEGIES = ("default", "mirrored", "multiworker")
ON_NAN = ("stop", "rollback")


@dataclasses.dataclass
class RunConfig:
    """Everything a search run needs.

    Attributes:
      dataset: a key of `pipelines.input.PREPROCESSING` (``synthetic``, ``celeba``, ...).
      data_dir: a converted dataset (TFRecords + metadata.json).
      workdir: the run directory (TensorBoard events, tree.json, report.json).
      export_dir, export_name: the SavedModel goes to ``export_dir/export_name/<version>/``;
        an empty export_dir skips the export.
      method: ``gnas`` and ``random`` (random search, `random_search`) search; ``shared``
        (one trunk), ``independent`` (least sharing), ``random_tree`` (one random tree) and
        ``planted_tree`` (the tree of a dataset's planted grouping: synthetic only) train a
        fixed tree with the same loop.
      random_trials: trials of random search (0 = GNAS's budget, max_rounds x evaluations
        per round).
      space: a preset of `gnas_keras.space`.
      num_attributes: expected attribute count (0 = take it from the data); a flagfile for a
        40-attribute dataset pointed at other data fails early instead of training.
      batch_size: global batch size (all replicas together).
      learning_rate, momentum, weight_decay, dropout: SGD with Nesterov momentum; the paper's
        0.1 / 0.9 / 1e-4, dropout 0.75 for LFWA and Market-1501, none otherwise.
      crop_height, crop_width, flip: override the dataset's preprocessing (0 / None = keep).
      finetune_steps: steps on train+validation for the chosen tree after the search.
      finetune_lr: 0 = continue with the learning rate the search ended at.
      compare: fixed trees also trained from scratch with `compare_steps` steps each, with the
        found tree under the same budget, for an architecture-only comparison (e.g.
        ``("random_tree", "shared")``); empty = none.
      strategy: ``default`` (one device), ``mirrored`` (all local GPUs/CPUs) or
        ``multiworker`` (TF_CONFIG).
      seed: seeds weights, routing draws and data order.
      deterministic: TensorFlow op determinism, so that a run (also one interrupted and
        resumed) gives bit-identical trees and metrics on the same machine.
      checkpoint_every: also checkpoint after every this many GNAS candidate evaluations (0 =
        only at layer and round boundaries, after warm-up chunks and fine-tune chunks).
      on_nan: ``stop`` or ``rollback`` (see `gnas_keras.run.run`).
      restart: forget the workdir's checkpoints and start over.
    """

    dataset: str = "synthetic"
    data_dir: str = "data/synthetic"
    workdir: str = "runs/synthetic_gnas"
    export_dir: str = "saved_models"
    export_name: str = ""
    method: str = "gnas"
    space: str = "tiny"
    num_attributes: int = 0
    batch_size: int = 64
    eval_batch_size: int = 256
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    dropout: float = 0.0
    crop_height: int = 0
    crop_width: int = 0
    flip: Optional[bool] = None
    gnas: GnasConfig = dataclasses.field(default_factory=GnasConfig)
    finetune_steps: int = 1000
    finetune_lr: float = 0.0
    compare: Tuple[str, ...] = ()
    compare_steps: int = 1000
    random_trials: int = 0
    strategy: str = "default"
    seed: int = 0
    deterministic: bool = False
    checkpoint_every: int = 10
    on_nan: str = "stop"
    restart: bool = False

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raises ValueError naming the offending field (the binaries add the flag name)."""
        if self.method not in METHODS:
            raise ValueError(f"method: {self.method!r} is not one of {METHODS}")
        if self.on_nan not in ON_NAN:
            raise ValueError(f"on_nan: {self.on_nan!r} is not one of {ON_NAN}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy: {self.strategy!r} is not one of {STRATEGIES}")
        fixed = tuple(m for m in METHODS if m not in SEARCHES)
        for m in self.compare:
            if m not in fixed:
                raise ValueError(f"compare: {m!r} is not one of {fixed}")
        positive = {"batch_size": self.batch_size, "eval_batch_size": self.eval_batch_size,
                    "val_batches": self.gnas.val_batches,
                    "max_rounds": self.gnas.max_rounds, "patience": self.gnas.patience,
                    "learning_rate": self.learning_rate}
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name}: must be > 0, got {value}")
        nonneg = {"train_steps": self.gnas.train_steps, "random_trials": self.random_trials,
                  "finetune_steps": self.finetune_steps, "compare_steps": self.compare_steps,
                  "warmup_steps": self.gnas.warmup_steps, "weight_decay": self.weight_decay,
                  "finetune_lr": self.finetune_lr, "crop_height": self.crop_height,
                  "crop_width": self.crop_width, "checkpoint_every": self.checkpoint_every,
                  "num_attributes": self.num_attributes}
        for name, value in nonneg.items():
            if value < 0:
                raise ValueError(f"{name}: must be >= 0, got {value}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.gnas.lr_decay <= 1.0:
            raise ValueError(f"lr_decay: must be in (0, 1], got {self.gnas.lr_decay}")
