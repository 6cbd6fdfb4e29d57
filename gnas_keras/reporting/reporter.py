"""Progress of a search on the terminal and in TensorBoard.

TensorBoard: the events of a run go into its work directory, so that
``tensorboard --logdir runs/`` names each run after its directory (``synthetic_gnas``);
a run begun before this layout keeps writing into its ``<workdir>/tensorboard`` (`event_dir`).
Every tag carries a description (TensorBoard shows it beside the chart):

- Scalars: ``train/loss`` (the warm-up's training loss, step = warm-up step: the supernet's
  learning curve before the search), ``search/mean_val_error`` and ``search/learning_rate``
  (the tree at the end of each round: the search's learning curve), ``val_accuracy/<attribute>``
  (per round), ``switch/<layer>/...`` (per round: the best candidate parent's gain over the
  current one and its paired standard error), ``candidate/mean_val_error`` and
  ``candidate/segment_loss`` (every candidate evaluation, step = evaluations so far; the
  segment loss is the mean loss of the candidate's K training steps from fresh heads, near
  ln 2 = 0.693 by construction: it says how fast a candidate parent's features fit, it is not
  a learning curve), ``finetune/loss`` (step = fine-tune step) and ``final/<metric>`` (one value
  per run, at step 0: read them in the HParams tab or the Text tab's ``final`` table);
- Images: ``rewards/<layer>`` (the reward matrix of each searched layer and round: candidate
  parent block (rows) -> child block (columns), both named by the attributes below them, the
  colour bar in the reward's units) and ``tree_image`` (the `gnas_keras.reporting.draw` picture);
- Text: ``tree`` (after every round), ``final`` (the test metrics as a table) and ``settings``
  (every setting of the run);
- HParams: the run's method, dataset, seed and a few settings (`HPARAMS`) against the final
  metrics (`METRICS`, mean test error first), one row per run.

The terminal: a progress bar for the warm-up and the search (`gnas_keras.reporting.progress`), and one
sentence per round (`round_sentence`).
"""

from __future__ import annotations

import io
import os
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from gnas_keras.reporting import draw
from gnas_keras.space.architecture import Architecture
from gnas_keras.training.evaluation import Evaluation
from gnas_keras.methods.base import SearchLogger
from gnas_keras.methods.gnas import RoundResult
from gnas_keras.reporting.progress import Progress
from gnas_keras.space.search_space import SearchSpace
from gnas_keras.space.tree import Routing
from gnas_keras.reporting.units import duration as format_duration

# Lines for a person: above a live progress bar when one is drawn (standard error).
terminal = Progress.write

# What each scalar is (TensorBoard shows the description beside its chart); a tag under a
# per-attribute or per-layer group takes its group's entry.
DESCRIPTIONS = {
    "train/loss": "Warm-up: mean training loss (cross-entropy per attribute, nats) of the "
                  "supernet on random trees, step = warm-up step. The supernet's learning "
                  "curve before the search.",
    "candidate/mean_val_error": "Every candidate parent's mean validation error over all "
                                "attributes on the V reward batches, step = candidate "
                                "evaluations so far.",
    "candidate/segment_loss": "Mean training loss of each candidate's K training steps "
                              "(step = candidate evaluations so far). With fresh heads each "
                              "candidate starts at chance (ln 2 = 0.693 nats), so this is "
                              "not a learning curve: it shows how fast a candidate parent's "
                              "features fit. The search's learning curve is "
                              "search/mean_val_error.",
    "search/mean_val_error": "The tree at the end of each round: mean validation error over "
                             "all attributes (step = round). The search's learning curve.",
    "search/learning_rate": "Learning rate at the end of each round (step = round).",
    "search/best_val_error": "Random search: the best trial's mean validation error so far.",
    "val_accuracy": "Validation accuracy of this attribute under the round's tree (step = "
                    "round).",
    "switch": "Per round, median over the layer's children: the best candidate parent's "
              "reward minus the current parent's, and its paired standard error. A parent "
              "changes only on a gain clearly above its error.",
    "finetune/loss": "Fine-tune of the found tree on train+validation: mean training loss "
                     "(nats) of each chunk, step = fine-tune step.",
    "final": "One value per run, at step 0: compare runs in the HParams tab or read the "
             "Text tab's final table.",
}


def describe(tag: str) -> str:
    """The description of a scalar tag (`DESCRIPTIONS`; its group's for a per-attribute or
    per-layer tag)."""
    return DESCRIPTIONS.get(tag) or DESCRIPTIONS.get(tag.split("/", 1)[0], "")


def scalar(tag: str, value: float, step: int) -> None:
    """``tf.summary.scalar`` with the tag's description (under the default writer)."""
    tf.summary.scalar(tag, value, step=step, description=describe(tag))


def event_dir(workdir: str) -> str:
    """Where a run writes its TensorBoard events: its work directory, so the run is named
    after it; ``<workdir>/tensorboard`` when a run begun before this layout already wrote
    events there (resumed, it stays one run)."""
    old = os.path.join(workdir, "tensorboard")
    if os.path.isdir(old) and any(f.startswith("events.out.tfevents.")
                                  for f in os.listdir(old)):
        return old
    return workdir


def _loss(train_loss: float) -> str:
    """', candidate loss 0.6931' for a progress note, '' when there was no training."""
    return f", segment loss {train_loss:.4f}" if np.isfinite(train_loss) else ""


# The GNAS reward of a child block (`gnas_keras.methods.gnas.example_scores`): the mean over
# the attributes below it of their accuracy or of the log-likelihood of their true labels.
REWARD_UNITS = {
    "accuracy": "mean validation accuracy of the attributes below (0-1)",
    "log_likelihood": "mean log-likelihood of the true labels below (nats, <= 0)",
}


def _amount(value: float, reward: str) -> str:
    """A reward difference in the reward's units: percentage points or nats."""
    return f"{100 * value:.1f} %" if reward == "accuracy" else f"{value:.3f} nats"


def round_sentence(result: RoundResult, before: Optional[Routing], max_rounds: int = 0,
                   reward: str = "accuracy") -> str:
    """One round in words, e.g. ``round 3 of 16 done: 3 of 16 parents changed; best switch
    gained 0.4 % +- 0.1 %; validation error 12.5 %, learning rate 0.096``.

    result: the round (`RoundResult`: its tree, the per-child gains of the best candidate
      parent over the current one and their paired standard errors, per searched layer).
    before: the tree at the start of the round (None: unknown, only "changed" is said).
    reward: ``accuracy`` (gains in percentage points) or ``log_likelihood`` (in nats).
    """
    of = f" of {max_rounds}" if max_rounds else ""
    restart = f" (restart {result.restart})" if result.restart else ""
    searched = sum(len(g) for g in result.switch_gains.values()) or sum(
        m.shape[1] for m in result.rewards.values())
    if before is not None:
        changed = [(l, j) for l, (old, new) in enumerate(zip(before.parents,
                                                            result.routing.parents))
                   for j, (a, b) in enumerate(zip(old, new)) if a != b]
        what = (f"{len(changed)} of {searched} parents changed" if changed
                else f"no parent of {searched} changed")
    else:
        what = "the tree changed" if result.changed else "no parent changed"
    gains = [(g, e) for layer, g_ in result.switch_gains.items()
             for g, e in zip(g_, result.switch_errors.get(layer, np.full(len(g_), np.nan)))
             if np.isfinite(g) and g > 0]
    if gains:
        gain, error = max(gains, key=lambda ge: ge[0])
        plus = f" +- {_amount(error, reward)}" if np.isfinite(error) else ""
        verb = "best switch gained" if result.changed else "best candidate would have gained"
        what += f"; {verb} {_amount(gain, reward)}{plus}"
    return (f"round {result.round}{of}{restart} done: {what}; validation error "
            f"{100 * result.validation.mean_error:.1f} %, learning rate "
            f"{result.learning_rate:.3g}")


class SearchReporter(SearchLogger):
    """Writes a search's progress to TensorBoard, and to `out` a progress bar for the warm-up
    and the search with one sentence per round. Not on a terminal, the search writes one
    line per candidate evaluation (or random trial), with its validation error.

    reward: the GNAS reward (``accuracy`` or ``log_likelihood``): the units of the reward
      pictures and of the round sentences.
    """

    def __init__(self, logdir: str, space: SearchSpace, attribute_names: Sequence[str],
                 out: Callable[[str], None] = terminal, reward: str = "accuracy"):
        self.writer = tf.summary.create_file_writer(logdir)
        self.space = space
        self.attribute_names = list(attribute_names)
        self.out = out
        self.reward = reward
        self.bar: Optional[Progress] = None
        self.max_rounds = 0
        self._tree: Optional[Routing] = None  # the last round's tree: the next one's start

    def _progress(self, label: str, total: int, done: int, line_seconds: float = 60.0
                  ) -> Progress:
        """The bar of the current phase (a new one when the phase changes)."""
        if self.bar is None or self.bar.label != label or self.bar.total != total:
            self._end_bar()
            self.bar = Progress(label, total, self.out, done=done, line_seconds=line_seconds)
        return self.bar

    def _end_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def warmup(self, step: int, steps: int, evaluation: Evaluation, elapsed: float) -> None:
        # A new bar starts after this chunk (its pace counts from the next; a resumed
        # warm-up's earlier steps do not count)
        bar = self._progress("warm-up", steps, step)
        bar.update(step, f"train loss {evaluation.loss:.4f}")
        if step >= steps:
            self._end_bar()
        with self.writer.as_default():
            scalar("train/loss", evaluation.loss, step=step)

    def candidate(self, round_: int, max_rounds: int, layer: str, candidate: int,
                  num_candidates: int, evaluation: Evaluation, elapsed: float, eta: float,
                  done: int, train_loss: float = float("nan"), total: int = 0) -> None:
        # The search's evaluations if it runs every round (an upper bound: it may stop
        # early); without `total`, those to the end of this layer.
        self.max_rounds = max_rounds
        bar = self.bar if self.bar is not None and self.bar.label == "search" else None
        if bar is None:  # starts after this evaluation: its pace counts from the next one
            self._end_bar()
            bar = self.bar = Progress("search", total or done + num_candidates - candidate - 1,
                                      self.out, done=done, upper_bound=True, line_seconds=0)
        elif not total and done > bar.total:
            bar.total = done + num_candidates - candidate - 1
        bar.update(done, f"round {round_} of {max_rounds}, {layer} candidate {candidate + 1} "
                         f"of {num_candidates}{_loss(train_loss)}, val error "
                         f"{100 * evaluation.mean_error:.1f} %")
        with self.writer.as_default():
            scalar("candidate/mean_val_error", evaluation.mean_error, step=done)
            if np.isfinite(train_loss):
                scalar("candidate/segment_loss", train_loss, step=done)

    def trial(self, trial: int, trials: int, evaluation: Evaluation, best_error: float,
              elapsed: float, eta: float, train_loss: float = float("nan")) -> None:
        # Paced from the next trial; a plain line for every trial, as for every candidate
        bar = self._progress("random search", trials, trial, line_seconds=0)
        bar.update(trial, f"trial {trial} of {trials}: val error "
                          f"{100 * evaluation.mean_error:.1f} %, best "
                          f"{100 * best_error:.1f} %{_loss(train_loss)}")
        with self.writer.as_default():
            scalar("candidate/mean_val_error", evaluation.mean_error, step=trial)
            scalar("search/best_val_error", best_error, step=trial)
            if np.isfinite(train_loss):
                scalar("candidate/segment_loss", train_loss, step=trial)

    def round(self, result: RoundResult) -> None:
        architecture = Architecture.from_space(self.space, result.routing)
        before = next((tree for tree in (result.start, self._tree) if tree is not None),
                      None if result.changed else result.routing)
        self.out(round_sentence(result, before, self.max_rounds, self.reward))
        self._tree = result.routing
        with self.writer.as_default():
            step = result.round
            scalar("search/mean_val_error", result.validation.mean_error, step=step)
            scalar("search/learning_rate", result.learning_rate, step=step)
            for layer, gains in result.switch_gains.items():
                if np.isfinite(gains).any():
                    scalar(f"switch/{layer}/median_gain", np.nanmedian(gains), step=step)
                    scalar(f"switch/{layer}/median_paired_standard_error",
                           np.nanmedian(result.switch_errors[layer]), step=step)
            for name, accuracy in zip(self.attribute_names, result.validation.accuracy):
                if accuracy == accuracy:  # NaN: no labelled example in the V batches
                    scalar(f"val_accuracy/{name}", float(accuracy), step=step)
            for layer, matrix in result.rewards.items():
                tf.summary.image(f"rewards/{layer}", tf.io.decode_png(reward_picture(
                    matrix, f"{layer} rewards, round {step}", self.reward,
                    *self._block_names(result.routing, layer)))[None], step=step,
                    description=f"Reward of every candidate parent (row) for every child "
                                f"(column) of {layer}: {REWARD_UNITS.get(self.reward)}; "
                                f"red: the chosen parent.")
            tf.summary.text("tree", "```\n" + architecture.render(self.attribute_names)
                            + "\n```", step=step, description="The tree after each round.")
            tf.summary.image("tree_image", draw.image_tensor(
                architecture, self.attribute_names, f"round {step}"), step=step)
        self.writer.flush()

    def _block_names(self, routing: Routing, layer: str):
        """Tick labels of a layer's reward matrix: (parents, children), each block named by
        its index and the attributes below it (an attribute's own block by the name)."""
        l = [s.name for s in self.space.layers].index(layer)
        descendants = routing.descendants()
        return (block_names(descendants[l - 1], self.attribute_names),
                block_names(descendants[l], self.attribute_names))

    def architecture(self, step: int, architecture: Architecture, title: str) -> None:
        self.out(f"{title}:\n{architecture.render(self.attribute_names)}")
        with self.writer.as_default():
            tf.summary.text("tree", "```\n" + architecture.render(self.attribute_names)
                            + "\n```", step=step)
            tf.summary.image("tree_image", draw.image_tensor(
                architecture, self.attribute_names, title), step=step)
        self.writer.flush()

    def progress(self, line: str) -> None:
        self.out(line)

    def close(self) -> None:
        """The search is over: its bar ends at 100 % (it may stop before its upper bound)."""
        if self.bar is not None:
            self.bar.total = max(self.bar.done, 1)
        self._end_bar()
        self.writer.close()


def block_names(descendants: Sequence[frozenset], attribute_names: Sequence[str],
                width: int = 28) -> List[str]:
    """A label per block of one layer: the attribute's name for a block with one attribute
    below it, else ``"<index>: <names below>"`` cut to `width` characters (``"3: -"`` for
    a block no attribute reads)."""
    labels = []
    for j, below in enumerate(descendants):
        names = [attribute_names[n] for n in sorted(below)]
        if len(names) == 1 and len(descendants) == len(attribute_names):
            labels.append(names[0])
            continue
        text = f"{j}: " + (", ".join(names) if names else "-")
        labels.append(text if len(text) <= width else text[:width - 3] + "...")
    return labels


def reward_picture(matrix: np.ndarray, title: str, reward: str = "accuracy",
                   parent_names: Optional[Sequence[str]] = None,
                   child_names: Optional[Sequence[str]] = None) -> bytes:
    """PNG of one layer's reward matrix [B_{l-1}, B_l]: reward of parent b -> child j as
    colour (NaN, a child not evaluated, blank), the value written in each cell when the
    matrix is small enough to read, and each child's chosen parent outlined. One tick per
    block (integers), labelled by `parent_names` / `child_names` (`block_names`) when given;
    the colour bar is labelled in the reward's units (`REWARD_UNITS`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    rows, cols = matrix.shape
    long_names = max(map(len, child_names or [""]), default=0) > 3
    fig = Figure(figsize=(min(3 + 0.45 * cols, 16), min(2 + 0.45 * rows, 10)
                          + (1.2 if long_names else 0)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    shown = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis", aspect="auto")
    fig.colorbar(shown, ax=ax, fraction=0.05).set_label(
        "reward: " + REWARD_UNITS.get(reward, reward), fontsize=8)
    if rows * cols <= 400:
        for b in range(rows):
            for j in range(cols):
                if matrix[b, j] == matrix[b, j]:
                    ax.text(j, b, f"{matrix[b, j]:.2f}", ha="center", va="center",
                            fontsize=6, color="white")
    for j in range(cols):
        if np.any(matrix[:, j] == matrix[:, j]):
            b = int(np.nanargmax(matrix[:, j]))
            ax.add_patch(Rectangle((j - 0.5, b - 0.5), 1, 1, fill=False, edgecolor="red",
                                   linewidth=1.2))
    ax.set_xticks(range(cols), child_names or [str(j) for j in range(cols)],
                  rotation=90 if long_names else 0, fontsize=7)
    ax.set_yticks(range(rows), parent_names or [str(b) for b in range(rows)], fontsize=7)
    ax.set_xlabel("child block j (the attributes below it)")
    ax.set_ylabel("candidate parent block b")
    ax.set_title(title, fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


# The HParams tab: a few settings (checked by default) against the final metrics, mean test
# error first; all settings are in the Text tab's ``settings`` table and report.json.
# TensorBoard ticks the first five (alphabetically), so there are five.
HPARAMS = ("method", "dataset", "seed", "space", "learning_rate")
METRICS = (("mean_test_error", "mean test error", "Mean over attributes of the test error "
            "of the fine-tuned network (0-1)."),
           ("mean_auc", "mean AUC", "Mean over attributes of the test ROC AUC."),
           ("mean_f1", "mean F1", "Mean over attributes of the test F1 at threshold 0.5."),
           ("mean_balanced_accuracy", "mean balanced accuracy",
            "Mean over attributes of the test balanced accuracy."),
           ("parameters", "parameters", "Parameters of the exported network."),
           ("search_seconds", "search seconds", "Wall time of the search."))


def hparams_values(config: Dict) -> Dict[str, object]:
    """A `RunConfig.to_dict()` flattened to the flag names and to the value types the HParams
    tab takes (bool, int, float, str); only the run's own method section is kept."""
    out: Dict[str, object] = {}

    def add(d: Dict) -> None:
        for key, value in d.items():
            if key == "methods":
                section = value.get(config.get("method"))
                if isinstance(section, dict):
                    add(section)
            elif isinstance(value, dict):
                add(value)
            elif isinstance(value, (bool, int, float, str)):
                out[key] = value
            else:
                out[key] = "default" if value is None else ",".join(map(str, value))

    add(config)
    return out


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table (TensorBoard's Text tab renders it)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_hparams(logdir: str, config: Dict, final_metrics: Dict[str, float],
                  run_name: str) -> None:
    """The run's row in the HParams tab: the experiment's declared hparams (`HPARAMS`, from
    `config`, a `RunConfig.to_dict()` whose ``dataset`` is the dataset's name) and metrics
    (`METRICS`, ``final/<name>`` scalars at step 0), this run's values with `run_name` (its
    work directory's name) as its trial id; and the Text tab's ``final`` (metrics) and
    ``settings`` (every setting) tables."""
    from tensorboard.plugins.hparams import api as hp

    values = hparams_values(config)
    chosen = {name: values[name] for name in HPARAMS if name in values}
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        hp.hparams_config(
            hparams=[hp.HParam(name) for name in chosen],
            metrics=[hp.Metric(f"final/{name}", display_name=shown, description=text)
                     for name, shown, text in METRICS])
        hp.hparams(chosen, trial_id=run_name)
        rows = []
        for name, shown, _ in METRICS:
            value = final_metrics.get(name)
            if value is not None and value == value:
                scalar(f"final/{name}", float(value), step=0)
                rows.append((shown, f"{value:.4f}" if isinstance(value, float) else value))
        tf.summary.text("final", _table(("metric", "test value"), rows), step=0,
                        description="The run's final test metrics.")
        tf.summary.text("settings", _table(("setting", "value"), sorted(values.items())),
                        step=0, description="Every setting of the run (flags).")
    writer.close()
