"""The efficiency study (the paper's Fig. 4) and from-scratch test curves (Fig. 5).

Fig. 4: validation mean error of the current tree against wall time, for GNAS-V and Random-V
(V = validation batches per evaluation, e.g. 1, 5, 20), with the weights frozen during the
search (``train_steps=0``) in two settings:

- ``random_init``: the supernet's random initial weights;
- ``trained``: weights inherited from a supernet trained first on uniformly random trees
  (`gnas.warmup_chunk`, ``supernet_steps`` steps), then frozen.

The searches are the library's own (`gnas.search`, `random_search.search`) on one shared
`training.Loop`. The validation split is cut in two: the first ``heldout_batches`` batches
are a FIXED held-out set, the rest is the stream the searches draw their V batches per
evaluation from (shuffled per evaluation, like a run's reward stream). A curve is a step
function: at each time the current tree changes (GNAS: the start tree at its first
evaluation, then the tree after every layer update; Random: whenever the best tree so far
changes), its error on the held-out set, so that all curves measure the same thing. The
held-out evaluations run after each search, outside its clock (weights are frozen, so the
result is the same as during the search).

The ratio the paper quotes (GNAS reaches in < 400 s what random search reaches in one hour):
for each setting and V, the time GNAS-V needs to reach Random-V's held-out error at the end of
Random-V's full budget, divided by that budget (None when GNAS never gets there).

Fig. 5: the final GNAS-V tree and the best Random-V tree (V = ``scratch_val_batches``, from
the last setting) each trained from scratch on train+validation, test error after every
``scratch_chunk`` steps.

Outputs in ``workdir``: ``efficiency.png`` (Fig. 4), ``scratch.png`` (Fig. 5), ``study.json``
(raw curves, ratios, trees) and ``tensorboard/`` (the two plots as images, the curves as
scalars: efficiency curves with step = milliseconds since the search started, scratch curves
with step = training steps).
"""

from __future__ import annotations

import dataclasses
import io as _io
import os
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from gnas_keras.space.architecture import Architecture
from gnas_keras.settings import CandidateConfig
from gnas_keras.training.data import Data
from gnas_keras.training.evaluation import Stream, segment_seed
from gnas_keras.io import write_bytes_atomic, write_json_atomic
from gnas_keras.methods import gnas, random_search
from gnas_keras.methods.base import SearchLogger
from gnas_keras.methods.gnas import GnasConfig
from gnas_keras.reporting.reporter import format_duration, terminal
from gnas_keras.space.search_space import get_space
from gnas_keras.training.loop import Loop, new_supernet, train_from_scratch
from gnas_keras.study_config import METHODS, SETTINGS, StudyConfig  # noqa: F401
from gnas_keras.space.tree import Routing


@dataclasses.dataclass
class Curve:
    """One search's current tree over time.

    times: seconds since the search started at which the current tree became what it is [T];
    errors: held-out mean error of that tree [T]; search_errors: the error the search itself
    measured for it on V batches of its stream [T] (None for GNAS's start tree); budget: the
    search's total seconds; trees: the trees' parents [T].
    """

    setting: str
    method: str
    val_batches: int
    times: List[float]
    errors: List[float]
    search_errors: List[Optional[float]]
    budget: float
    trees: List[list]

    @property
    def label(self) -> str:
        return f"{'GNAS' if self.method == 'gnas' else 'Random'}-{self.val_batches}"

    @property
    def final_error(self) -> float:
        return self.errors[-1]

    def time_to_reach(self, target: float) -> Optional[float]:
        """First time the held-out error is <= target (seconds), None if never."""
        for t, e in zip(self.times, self.errors):
            if e <= target + 1e-12:
                return t
        return None


def search_points(method: str, loop: Loop, val_data: Callable[..., Iterator],
                  config: StudyConfig, val_batches: int
                  ) -> Tuple[List[Tuple[float, Routing, Optional[float]]], float]:
    """Runs one frozen-weight search; returns its (time, current tree, search error) points
    and its total time in seconds. Every search starts from the same seed.

    GNAS's points come from its `checkpoint` hook, which sees the tree after every candidate,
    layer and round: the start tree at its first evaluation, then every change.
    """
    rng = np.random.default_rng(config.run.seed)
    candidates = CandidateConfig(train_steps=0, val_batches=val_batches)
    points: List[Tuple[float, Routing, Optional[float]]] = []
    if method == "gnas":
        def record(state: gnas.SearchState, boundary: str) -> None:
            error = state.results[-1].validation.mean_error if boundary == "round" else None
            if points and points[-1][1] == state.routing:
                if error is not None:
                    points[-1] = (points[-1][0], state.routing, error)
            else:
                points.append((state.elapsed, state.routing, error))

        rounds = gnas.search(loop, val_data, candidates,
                             GnasConfig(max_rounds=config.max_rounds, patience=config.patience),
                             rng, None, None, record)
        return points, max(rounds[-1].elapsed, points[-1][0])
    trials = random_search.search(loop, val_data, candidates, trial_budget(config, loop.model),
                                  rng, SearchLogger())
    for t in trials:
        if not points or t.best_routing != points[-1][1]:
            points.append((t.elapsed, t.best_routing, t.best_error))
    return points, trials[-1].elapsed


def train_supernet(loop: Loop, val_data: Callable[..., Iterator], config: StudyConfig) -> None:
    """The ``trained`` setting: `supernet_steps` steps on uniformly random trees, a new tree
    every `supernet_resample` steps. This is GNAS's own warm-up (`CandidateConfig.warmup_steps`),
    followed by one frozen round of one-batch evaluations that leaves the weights as they are."""
    gnas.search(loop, val_data, CandidateConfig(
        train_steps=0, val_batches=1, warmup_steps=config.supernet_steps,
        warmup_resample=config.supernet_resample), GnasConfig(max_rounds=1),
        np.random.default_rng(config.run.seed + 1))


def trial_budget(config: StudyConfig, supernet) -> int:
    """Random search's trials: `random_trials`, or GNAS's maximum number of evaluations."""
    return config.random_trials or config.max_rounds * supernet.space.evaluations_per_round(
        supernet.num_attributes)


def heldout_curve(setting: str, method: str, val_batches: int, points, budget: float,
                  loop: Loop, heldout: tf.data.Dataset, heldout_batches: int,
                  cache: Dict[Routing, float]) -> Curve:
    """Evaluates every tree of `points` on the fixed held-out batches (cached per tree)."""
    errors = []
    for _, routing, _ in points:
        if routing not in cache:
            loop.model.set_routing(routing)
            cache[routing] = loop.evaluate(loop.iterator(heldout), heldout_batches).mean_error
        errors.append(cache[routing])
    return Curve(setting, method, val_batches, [p[0] for p in points], errors,
                 [p[2] for p in points], budget, [list(map(list, p[1].parents)) for p in points])


def ratios(curves: List[Curve]) -> List[Dict]:
    """Per setting and V: time for GNAS-V to reach Random-V's final held-out error, over
    Random-V's budget (see the module docstring)."""
    out = []
    for c in curves:
        if c.method != "gnas":
            continue
        rand = next((r for r in curves if r.method == "random" and r.setting == c.setting
                     and r.val_batches == c.val_batches), None)
        if rand is None:
            continue
        t = c.time_to_reach(rand.final_error)
        out.append({"setting": c.setting, "val_batches": c.val_batches,
                    "random_final_error": rand.final_error, "random_budget_seconds": rand.budget,
                    "gnas_final_error": c.final_error, "gnas_budget_seconds": c.budget,
                    "gnas_seconds_to_random_final_error": t,
                    "ratio": None if t is None else t / rand.budget})
    return out


def scratch_curve(routing: Routing, data: Data, config: StudyConfig, label: str,
                  out: Callable[[str], None]) -> Dict:
    """Trains `routing` from scratch on train+validation (`training.train_from_scratch`);
    test mean error at step 0 and after every `scratch_chunk` steps. Returns
    {"steps": [...], "errors": [...]}."""
    architecture = Architecture.from_space(get_space(config.run.space), routing)
    result = train_from_scratch(architecture, data, config.scratch_steps, config.run,
                                config.run.seed + 2, out, label=f"from scratch: {label}",
                                test_every=config.scratch_chunk)
    return {"steps": [s for s, _ in result.curve], "errors": [e for _, e in result.curve]}


COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def plot_efficiency(curves: List[Curve], dataset: str) -> bytes:
    """Fig. 4 as PNG bytes: one panel per setting, held-out mean error against search time
    (log x), GNAS solid, Random dashed, one colour per V."""
    settings = [s for s in SETTINGS if any(c.setting == s for c in curves)]
    from matplotlib.ticker import NullFormatter

    fig = _figure(5.2 * len(settings), 4.0)
    vs = sorted({c.val_batches for c in curves})
    for i, setting in enumerate(settings):
        ax = fig.add_subplot(1, len(settings), i + 1)
        for c in (c for c in curves if c.setting == setting):
            times = c.times + [max(c.budget, c.times[-1])]
            errors = c.errors + [c.errors[-1]]
            ax.step(times, errors, where="post", color=COLOURS[vs.index(c.val_batches) % 6],
                    linestyle="-" if c.method == "gnas" else "--", label=c.label)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("search time (s, log scale)")
        ax.set_ylabel("held-out validation mean error")
        title = "weights frozen at random init" if setting == "random_init" else \
            "weights from a trained supernet, frozen"
        ax.set_title(f"{dataset}: {title}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def plot_scratch(scratch: Dict[str, Dict], dataset: str) -> bytes:
    """Fig. 5 as PNG bytes: test mean error against training steps, GNAS solid, Random
    dashed."""
    fig = _figure(5.2, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    for name, curve in scratch.items():
        ax.plot(curve["steps"], curve["errors"], "-o" if name.startswith("GNAS") else "--s",
                color=COLOURS[0] if name.startswith("GNAS") else COLOURS[1], label=name,
                markersize=3)
    ax.set_xlabel("training steps from scratch")
    ax.set_ylabel("test mean error")
    ax.set_title(f"{dataset}: found trees trained from scratch", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _write_pictures(workdir: str, curves: List[Curve], scratch: Dict[str, Dict],
                    dataset: str) -> Optional[bytes]:
    """``efficiency.png``, ``scratch.png`` (when there are scratch curves) and the same
    curves and pictures in ``tensorboard/``; returns the scratch picture (None without)."""
    efficiency_png = plot_efficiency(curves, dataset)
    write_bytes_atomic(os.path.join(workdir, "efficiency.png"), efficiency_png)
    scratch_png = plot_scratch(scratch, dataset) if scratch else None
    if scratch_png:
        write_bytes_atomic(os.path.join(workdir, "scratch.png"), scratch_png)
    writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
    with writer.as_default():
        tf.summary.image("study/efficiency", tf.image.decode_png(efficiency_png, 4)[None], 0)
        if scratch_png:
            tf.summary.image("study/scratch", tf.image.decode_png(scratch_png, 4)[None], 0)
        for c in curves:
            for t, e in zip(c.times, c.errors):
                tf.summary.scalar(f"efficiency/{c.setting}/{c.label}", e,
                                  step=int(round(1000 * t)))
        for name, curve in scratch.items():
            for s, e in zip(curve["steps"], curve["errors"]):
                tf.summary.scalar(f"scratch/{name}", e, step=s)
    writer.close()
    return scratch_png


def _validation_batches(config: StudyConfig, data: Data) -> int:
    """Batches in the validation split; raises ValueError when the held-out ones leave none
    for the searches."""
    size = config.run.eval_batch_size
    batches = -(-data.meta.split_sizes["validation"] // size)
    if config.heldout_batches >= batches:
        raise ValueError(f"heldout_batches: {config.heldout_batches} leaves no search stream: "
                         f"the validation split has {batches} batches of {size}")
    return batches


def _print_ratios(found: List[Dict], out: Callable[[str], None]) -> None:
    """One line per setting and V: when GNAS reached random search's final error."""
    for r in found:
        reached = "never" if r["ratio"] is None else \
            f"{r['gnas_seconds_to_random_final_error']:.1f} s = {r['ratio']:.3f} of it"
        out(f"{r['setting']}: Random-{r['val_batches']} ends at {r['random_final_error']:.4f} "
            f"after {r['random_budget_seconds']:.1f} s; GNAS-{r['val_batches']} gets there: "
            f"{reached}")


def run_study(config: StudyConfig, out: Callable[[str], None] = terminal) -> Dict:
    """Runs the study (see the module docstring); returns study.json's content."""
    config.validate()
    data = Data.load(config.run)
    config = dataclasses.replace(config, run=config.run.for_data(data.meta.name,
                                                                 data.image_shape))
    run_config = config.run
    n = data.meta.num_attributes
    space = get_space(run_config.space)
    space.validate(n)
    validation_batches = _validation_batches(config, data)
    workdir = run_config.workdir
    os.makedirs(workdir, exist_ok=True)
    validation = data.validation
    heldout = validation.take(config.heldout_batches).cache()
    rest = validation.skip(config.heldout_batches).cache()
    trials = config.random_trials or config.max_rounds * space.evaluations_per_round(n)
    image_shape = data.image_shape
    out(f"efficiency study on {data.meta.name}, space {space.name}: V in "
        f"{list(config.val_batches)}, GNAS <= {config.max_rounds} rounds of "
        f"{space.evaluations_per_round(n)} evaluations, random search {trials} trials, "
        f"held-out {config.heldout_batches} batches of {run_config.eval_batch_size}")

    curves: List[Curve] = []
    for setting in config.settings:
        model = new_supernet(run_config, space, n, image_shape, run_config.seed)
        loop = Loop(model, data.train, run_config.seed)

        def val_data(*position) -> Iterator:
            """The search stream: the validation batches after the held-out ones, in an
            order shuffled by the search position (as `Data.rewards` does for a run)."""
            seed = segment_seed(run_config.seed, *position)
            return loop.iterator(rest.shuffle(validation_batches, seed=seed).repeat())

        if setting == "trained" and config.supernet_steps:
            start = time.time()
            train_supernet(loop, val_data, config)
            out(f"{setting}: supernet trained on random trees for {config.supernet_steps} "
                f"steps in {format_duration(time.time() - start)}; weights now frozen")
        loop.evaluate(val_data(Stream.STUDY_TRACE, 9), 1)  # traces the evaluation outside every search's clock
        cache: Dict[Routing, float] = {}
        for v in config.val_batches:
            for method in METHODS:
                points, budget = search_points(method, loop, val_data, config, v)
                curve = heldout_curve(setting, method, v, points, budget, loop, heldout,
                                      config.heldout_batches, cache)
                curves.append(curve)
                out(f"{setting}: {curve.label:9s} {budget:7.1f} s, {len(points)} tree(s), "
                    f"held-out error {curve.errors[0]:.4f} -> {curve.final_error:.4f}")
    found = ratios(curves)
    _print_ratios(found, out)

    scratch: Dict[str, Dict] = {}
    trees: Dict[str, list] = {}
    if config.scratch_steps:
        setting = config.settings[-1]
        for c in curves:
            if c.setting == setting and c.val_batches == config.scratch_val_batches:
                trees[c.label] = c.trees[-1]
                scratch[c.label] = scratch_curve(Routing.from_lists(c.trees[-1]), data, config,
                                                 c.label, out)

    scratch_png = _write_pictures(workdir, curves, scratch, data.meta.name)
    result = {
        "dataset": data.meta.name, "space": space.name,
        "config": {**dataclasses.asdict(config), "run": run_config.to_dict()},
        "random_trials": trials,
        "curves": [dataclasses.asdict(c) | {"label": c.label} for c in curves],
        "ratios": found,
        "scratch": {"setting": config.settings[-1] if scratch else None,
                    "val_batches": config.scratch_val_batches, "trees": trees,
                    "curves": scratch},
        "files": {"efficiency": "efficiency.png",
                  "scratch": "scratch.png" if scratch_png else None},
    }
    write_json_atomic(os.path.join(workdir, "study.json"), result)
    return result
