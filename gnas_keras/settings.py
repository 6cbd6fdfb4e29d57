"""How a setting is written (`setting`: default, help, choices in one place), and the
settings every layer of the library shares: batch-norm defaults and the candidate budget.

A leaf module (nothing of the project imported), so that method modules, models and the run
config can all use it without an import circle.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Tuple

# Batch norm as the paper's PyTorch code had it, in Keras' convention (running = momentum *
# running + (1 - momentum) * batch): PyTorch's default momentum=0.1 is Keras' 0.9, and its
# eps 1e-5 (Keras' own defaults are 0.99 / 1e-3). The models take their defaults from here.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def setting(default: Any, help: str, choices: Optional[Tuple[str, ...]] = None,
            **kwargs) -> Any:
    """A dataclass field with its help text (and allowed values): the one place a setting
    is written."""
    metadata = {"help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if isinstance(default, (list, tuple, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default),
                                 metadata=metadata, **kwargs)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def check_choices(section: Any) -> None:
    """Raises ValueError naming the field of dataclass `section` whose value is not one of the
    choices its `setting` declares: the one place declared choices are checked (the flags
    check them too, but a config can also be built in code)."""
    for field in dataclasses.fields(section):
        choices = field.metadata.get("choices")
        value = getattr(section, field.name)
        if choices is not None and value not in choices:
            raise ValueError(f"{field.name}: {value!r} is not one of {tuple(choices)}")


@dataclasses.dataclass
class CandidateConfig:
    """How a candidate tree is scored on the shared supernet weights; used by every method
    that searches on a supernet (GNAS, random search), so that equal settings give them
    equal compute."""

    train_steps: int = setting(400, "K: training batches per candidate (paper: 400 / 2000; "
                                    "0 = weights frozen during the search, Fig. 4).")
    val_batches: int = setting(5, "V: validation batches per candidate (paper: 1 / 5 / 20).")
    warmup_steps: int = setting(0, "Steps on uniformly random trees before the search (not "
                                   "in the paper's Alg. 1; every edge starts equally trained).")
    warmup_resample: int = setting(20, "Warm-up: a new random tree every this many steps.")
    fixed_val_batches: bool = setting(False, "Evaluate every candidate on the same V "
                                             "validation batches (default: V random ones).")

    def validate(self) -> None:
        if self.val_batches <= 0:
            raise ValueError(f"val_batches: must be > 0, got {self.val_batches}")
        for name in ("train_steps", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.warmup_resample <= 0:
            raise ValueError(f"warmup_resample: must be > 0, got {self.warmup_resample}")


def require_positive(section: Any, *names: str) -> None:
    """Raises ValueError naming the first field of `names` in `section` whose value is not
    > 0."""
    for name in names:
        value = getattr(section, name)
        if not value > 0:
            raise ValueError(f"{name}: must be > 0, got {value}")
