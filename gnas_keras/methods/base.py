"""The contract between the run and a search method (see `gnas_keras.methods`).

A method is a `Method`: its name, its config dataclass (fields become flags), and
``search(context) -> SearchResult``. The run (`gnas_keras.run`) builds the
`SearchContext` (data, space, a seeded generator, the supernet and its `Loop` when the method
searches on shared weights, progress events, checkpointing), and after the search fine-tunes,
tests, compares and exports the `SearchResult.architecture` without knowing the method.

Resuming. A method keeps its whole position in a typed state with ``to_dict()`` and a
``from_dict`` classmethod, and an ``evaluations`` count (candidates evaluated so far). It
calls ``context.checkpoint(state, boundary)`` at its boundaries; the run writes the weights
(supernet and optimizer, plus `Method.trackables`, e.g. a controller's weights) and then the
state. After a restart ``context.saved_state`` holds the last saved ``to_dict()`` (None for a
new search) and the weights are already restored: continuing from there must give exactly
what an uninterrupted search gives (data streams are seeded by position,
`evaluation.segment_seed`).
"""

from __future__ import annotations

import dataclasses
import enum
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional

import numpy as np

from gnas_keras.space.architecture import Architecture
from gnas_keras.training.evaluation import Evaluation, Stream, check_finite
from gnas_keras.space.tree import Routing, random_routing

# `RunConfig` in annotations is gnas_keras.config.RunConfig, not imported: the config imports
# the method registry, and a method needs no more of it than its fields.
if TYPE_CHECKING:  # TensorFlow only when a run starts
    from gnas_keras.settings import CandidateConfig
    from gnas_keras.models.base import AttributeModel
    from gnas_keras.models.supernet import Supernet
    from gnas_keras.space.search_space import SearchSpace
    from gnas_keras.training.loop import Loop


class SearchLogger:
    """Progress events of a search; the default ignores them (`gnas_keras.reporting.reporter` writes
    them to the terminal and TensorBoard)."""

    def warmup(self, step: int, steps: int, evaluation: Evaluation, elapsed: float) -> None:
        pass

    def candidate(self, round_: int, max_rounds: int, layer: str, candidate: int,
                  num_candidates: int, evaluation: Evaluation, elapsed: float, eta: float,
                  done: int, train_loss: float = float("nan"), total: int = 0) -> None:
        """A GNAS candidate parent evaluated; `train_loss`: the mean loss of its training
        segment (NaN when candidates do not train); `total`: the search's candidate
        evaluations if it runs every round (0: unknown)."""

    def trial(self, trial: int, trials: int, evaluation: Evaluation, best_error: float,
              elapsed: float, eta: float, train_loss: float = float("nan")) -> None:
        """A trial of a sampling method (random search) evaluated."""

    def round(self, result) -> None:
        """A GNAS round finished (`gnas_keras.methods.gnas.RoundResult`)."""

    def architecture(self, step: int, architecture: Architecture, title: str) -> None:
        """The current architecture of a method that changes it (e.g. grows it)."""

    def progress(self, line: str) -> None:
        """A method's own progress line (e.g. GALM's phases)."""


@dataclasses.dataclass
class SearchContext:
    """What the run hands a method.

    Attributes:
      config: the whole run config; the method's own section is ``method_config``.
      method_config: ``config.methods[name]`` (None for a method without settings).
      space, num_attributes, attribute_names: the search space and the data's attributes.
      planted_groups: group index per attribute for a dataset with a planted grouping.
      rng: seeded by the run seed; a method stores ``rng.bit_generator.state`` in its state.
      supernet, loop: for methods that search on shared weights (`Method.uses_supernet`):
        the compiled supernet and its `training.Loop` on the training stream.
      val_data: ``val_data(*position)`` -> an endless iterator of reward batches (every
        method; distributed only for a supernet's loop).
      logger: progress events.
      saved_state: the method state's ``to_dict()`` from the last checkpoint, or None.
      checkpoint: ``checkpoint(state, boundary)`` (see the module docstring).
      train_data: ``train_data(seed)`` -> an endless training dataset (for a method that
        trains its own models, e.g. tree networks, with `training.Loop`).
      training_labels: ``training_labels()`` -> every training label, int [examples, N]
        (1, 0, -1 unknown), identical on every worker.
      strategy: the distribution strategy to build models under.
      image_shape: (height, width, 3).
      trackables: what `Method.trackables` returned for this context, already restored
        from the last checkpoint on a resumed run (the search uses these very objects).
      built: what `Method.build` returned for this context (None for a method without a
        build step); `Method.trackables` and the search both read it.
    """

    config: "RunConfig"
    method_config: Any
    space: "SearchSpace"
    num_attributes: int
    attribute_names: List[str]
    planted_groups: Optional[List[int]]
    rng: np.random.Generator
    logger: SearchLogger
    saved_state: Optional[Dict]
    checkpoint: Callable[[Any, str], None]
    train_data: Callable[[int], Any]
    strategy: Any
    image_shape: tuple
    supernet: Optional["Supernet"] = None
    loop: Optional["Loop"] = None
    val_data: Optional[Callable[..., Iterator]] = None
    trackables: Dict[str, Any] = dataclasses.field(default_factory=dict)
    training_labels: Optional[Callable[[], np.ndarray]] = None
    built: Any = None


@dataclasses.dataclass
class SearchResult:
    """What a method found.

    Attributes:
      architecture: the network.
      model: the trained model the fine-tune continues from (the supernet on the found tree,
        or a grown tree network); None = fine-tune a fresh `TreeNetwork` of `architecture`.
      report: method-specific, JSON-ready entries for report.json (e.g. GNAS's ``rounds``).
    """

    architecture: Architecture
    model: Optional["AttributeModel"] = None
    report: Dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered method (`gnas_keras.methods.REGISTRY`).

    Attributes:
      name: the ``--method`` value.
      search: ``search(context) -> SearchResult``.
      config_type: a dataclass of the method's own settings, or None; its fields (with
        ``metadata["help"]``) become flags, grouped under the method in ``--helpfull``.
      uses_supernet: the run builds a supernet, its `Loop` and reward streams for the search
        (and checkpoints them with the state).
      fixed: a fixed tree, usable in ``--compare`` (trained from scratch beside the found one).
      build: ``build(context) -> anything``, the method's own objects (models, a
        controller, bookkeeping) made once before the search starts; the run stores the
        result in ``context.built`` before it calls `trackables`, so that both `trackables`
        and `search` receive the same objects. The default builds nothing (None).
      trackables: ``trackables(context) -> {name: tf.Module / Keras object}``, extra objects
        checkpointed with every state (e.g. an RL controller and its optimizer); created
        before the search starts (from ``context.built`` or anew), so that a resumed run
        restores them, and handed to the search as ``context.trackables``. A trackable's
        attributes may be reassigned during the search (a grown model): every checkpoint
        saves what they hold then.
      summary: one line for ``--helpfull`` and the README.
      round_layers: ``round_layers(space, num_attributes, method_config)``: the searched
        layers one round evaluates (None: all of the space's; GNAS's ``search_only`` names
        fewer), for the run's start-up line.
    """

    name: str
    search: Callable[[SearchContext], SearchResult]
    config_type: Optional[type] = None
    uses_supernet: bool = True
    fixed: bool = False
    build: Callable[[SearchContext], Any] = lambda context: None
    trackables: Callable[[SearchContext], Dict[str, Any]] = lambda context: {}
    summary: str = ""
    round_layers: Callable[[Any, int, Any], Optional[List[int]]] = (
        lambda space, num_attributes, method_config: None)


def warmup_chunk(loop: "Loop", candidates: "CandidateConfig", rng: np.random.Generator,
                 done: int, logger: SearchLogger, start: float,
                 routing: Optional[Routing] = None) -> int:
    """Trains one warm-up chunk (up to ``warmup_resample`` steps) of `loop`'s supernet on a
    new uniformly random tree (or on `routing`, a search's chosen initial tree), from warm-up
    step `done`; returns the steps done after it. Shared by GNAS and random search, so both
    start from equally trained weights."""
    model = loop.model
    model.set_routing(routing or random_routing(model.space, model.num_attributes, rng))
    loop.restart(Stream.WARMUP, done)
    steps = min(candidates.warmup_resample, candidates.warmup_steps - done)
    evaluation = loop.train(steps)
    check_finite(evaluation, f"warm-up step {done}")
    logger.warmup(done + steps, candidates.warmup_steps, evaluation, time.time() - start)
    return done + steps


class Boundary(enum.StrEnum):
    """Where a method hands its state to ``checkpoint(state, boundary)``: after a warm-up
    chunk, a candidate (or trial), a layer, a round. The run writes a checkpoint at every
    boundary but a candidate, and at every ``checkpoint_every``-th candidate."""

    WARMUP = "warmup"
    CANDIDATE = "candidate"
    LAYER = "layer"
    ROUND = "round"


def resume(state, rng: np.random.Generator, checkpoint: Optional[Callable[[Any, str], None]]
           ) -> "tuple[float, Callable[[str], None]]":
    """Continues a method state: sets `rng` to the state's ``rng_state`` and returns the
    search's start time (earlier by the state's ``elapsed`` seconds) and ``save(boundary)``,
    which records the generator state and elapsed time in `state` and calls `checkpoint`."""
    rng.bit_generator.state = state.rng_state
    start = time.time() - state.elapsed

    def save(boundary: str) -> None:
        state.rng_state = rng.bit_generator.state
        state.elapsed = time.time() - start
        if checkpoint:
            checkpoint(state, boundary)

    return start, save
