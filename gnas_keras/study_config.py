"""The efficiency study's settings (`flags.study`), apart from the study itself so that the
binary defines its flags without importing TensorFlow."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from gnas_keras.config import RunConfig
from gnas_keras.settings import setting

SETTINGS = ("random_init", "trained")
METHODS = ("gnas", "random")


# The run settings flags.study takes from `RunConfig` (the rest are the study's own).
RUN_FIELDS = ("dataset", "data_dir", "space", "batch_size", "learning_rate", "momentum",
              "weight_decay", "dropout", "bn_momentum", "bn_epsilon", "seed")


@dataclasses.dataclass
class StudyConfig:
    """The study's budget; every field is a flag of ``flags.study``.

    `run` supplies `RUN_FIELDS` (dataset, data, space, training batch size, optimizer and
    batch-norm settings, seed); its ``workdir`` and ``eval_batch_size`` are the study's
    `workdir` and `val_batch_size`, and it exports nothing.
    """

    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    workdir: str = setting("runs/study", "Output directory of the study.")
    val_batch_size: int = setting(64, "Examples in one validation / test batch of the study "
                                      "(the paper's mini-batch).")
    val_batches: Tuple[int, ...] = setting((1, 5, 20), "V of GNAS-V and Random-V: validation "
                                                       "batches per evaluation.")
    max_rounds: int = setting(6, "GNAS round cap (weights frozen).")
    patience: int = setting(2, "GNAS stops after this many unchanged rounds.")
    random_trials: int = setting(0, "Random search trials (0 = GNAS's budget: max_rounds x "
                                    "evaluations per round).")
    heldout_batches: int = setting(4, "Validation batches kept apart to score every curve.")
    settings: Tuple[str, ...] = setting(SETTINGS, f"Subset of {list(SETTINGS)}.")
    supernet_steps: int = setting(300, "Steps of supernet training on random trees for the "
                                       "'trained' setting.")
    supernet_resample: int = setting(20, "New random tree every this many supernet steps.")
    scratch_steps: int = setting(600, "Fig. 5: training steps from scratch per tree "
                                      "(0 = skip).")
    scratch_chunk: int = setting(100, "Fig. 5: test every this many steps.")
    scratch_val_batches: int = setting(5, "Fig. 5: train the trees of GNAS-V and Random-V "
                                          "with this V.")

    def __post_init__(self):
        self.run = dataclasses.replace(self.run, workdir=self.workdir, export_dir="",
                                       eval_batch_size=self.val_batch_size)

    def validate(self) -> None:
        """Raises ValueError naming the offending field."""
        self.run.validate()
        if not self.val_batches or min(self.val_batches) < 1:
            raise ValueError(f"val_batches: need values >= 1, got {list(self.val_batches)}")
        for name in ("max_rounds", "patience", "heldout_batches", "supernet_resample",
                     "scratch_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        for name in ("random_trials", "supernet_steps", "scratch_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if not self.settings or any(s not in SETTINGS for s in self.settings):
            raise ValueError(f"settings: must be a subset of {SETTINGS}, got "
                             f"{list(self.settings)}")
        if self.scratch_steps and self.scratch_val_batches not in self.val_batches:
            raise ValueError(f"scratch_val_batches: {self.scratch_val_batches} is not one of "
                             f"val_batches {list(self.val_batches)}")
