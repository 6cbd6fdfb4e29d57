"""Progress of a search on the terminal and in TensorBoard.

TensorBoard layout (``tensorboard --logdir runs/``), under ``<workdir>/tensorboard``:
- ``candidate/mean_val_error``: every candidate evaluation, step = evaluations so far;
- ``candidate/train_loss``: the training loss of each candidate's (or random trial's)
  training segment, same steps: the search's training curve;
- ``search/mean_val_error``, ``search/learning_rate``: the tree at the end of each round;
- ``val_accuracy/<attribute>``: each attribute's validation accuracy of the round's tree;
- ``rewards/<layer>`` (image): the reward matrix of each searched layer, parent block b
  (rows) -> child block j (columns), one picture per layer and round;
- ``train/loss``: training loss of the warm-up (step = warm-up step) and ``finetune/loss``
  of the fine-tune (step = fine-tune step);
- the HParams tab: the run's settings and final test metrics (`write_hparams`), so runs
  compare side by side;
- ``tree`` (text) and ``tree_image`` (the `gnas_keras.reporting.draw` picture): the tree after every
  round (a separate tag: TensorBoard keeps one plugin per tag).
"""

from __future__ import annotations

import io
import sys
from typing import Callable, Dict, Sequence

import numpy as np
import tensorflow as tf

from gnas_keras.reporting import draw
from gnas_keras.space.architecture import Architecture
from gnas_keras.training.evaluation import Evaluation
from gnas_keras.methods.base import SearchLogger
from gnas_keras.methods.gnas import RoundResult, reward_gaps
from gnas_keras.space.search_space import SearchSpace


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _loss(train_loss: float) -> str:
    """'  train loss 0.6931' for a progress line, '' when there was no training."""
    return f"  train loss {train_loss:.4f}" if np.isfinite(train_loss) else ""


def terminal(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class SearchReporter(SearchLogger):
    """Writes a search's progress to TensorBoard and one line per candidate to `out`."""

    def __init__(self, logdir: str, space: SearchSpace, attribute_names: Sequence[str],
                 out: Callable[[str], None] = terminal):
        self.writer = tf.summary.create_file_writer(logdir)
        self.space = space
        self.attribute_names = list(attribute_names)
        self.out = out
        self._warmup_fifth = 0

    def warmup(self, step: int, steps: int, evaluation: Evaluation, elapsed: float) -> None:
        fifth = step * 5 // steps  # one line per fifth of the warm-up
        if fifth != self._warmup_fifth:
            self._warmup_fifth = fifth
            self.out(f"warm-up: step {step}/{steps}  train loss "
                     f"{evaluation.loss:.4f}  elapsed {format_duration(elapsed)}")
        with self.writer.as_default():
            tf.summary.scalar("train/loss", evaluation.loss, step=step)

    def candidate(self, round_: int, max_rounds: int, layer: str, candidate: int,
                  num_candidates: int, evaluation: Evaluation, elapsed: float, eta: float,
                  done: int, train_loss: float = float("nan")) -> None:
        self.out(f"round {round_}/{max_rounds}  layer {layer}  candidate "
                 f"{candidate + 1}/{num_candidates}{_loss(train_loss)}  val error "
                 f"{evaluation.mean_error:.4f}  elapsed {format_duration(elapsed)}  "
                 f"eta <= {format_duration(eta)}")
        with self.writer.as_default():
            tf.summary.scalar("candidate/mean_val_error", evaluation.mean_error, step=done)
            if np.isfinite(train_loss):
                tf.summary.scalar("candidate/train_loss", train_loss, step=done)

    def trial(self, trial: int, trials: int, evaluation: Evaluation, best_error: float,
              elapsed: float, eta: float, train_loss: float = float("nan")) -> None:
        self.out(f"random trial {trial}/{trials}{_loss(train_loss)}  val error "
                 f"{evaluation.mean_error:.4f}  best {best_error:.4f}  elapsed "
                 f"{format_duration(elapsed)}  eta {format_duration(eta)}")
        with self.writer.as_default():
            tf.summary.scalar("candidate/mean_val_error", evaluation.mean_error, step=trial)
            tf.summary.scalar("search/best_val_error", best_error, step=trial)
            if np.isfinite(train_loss):
                tf.summary.scalar("candidate/train_loss", train_loss, step=trial)

    def round(self, result: RoundResult) -> None:
        architecture = Architecture.from_space(self.space, result.routing)
        tree = architecture.render(self.attribute_names)
        gaps = ", ".join(
            f"{layer} {np.nanmedian(reward_gaps(m)):.4f}/{np.nanmedian(result.reward_errors[layer]):.4f}"
            for layer, m in result.rewards.items())
        switches = ", ".join(
            f"{layer} {np.nanmedian(g):.4f}/{np.nanmedian(result.switch_errors[layer]):.4f}"
            for layer, g in result.switch_gains.items() if np.isfinite(g).any())
        restart = f" (restart {result.restart})" if result.restart else ""
        self.out(f"round {result.round}{restart} done: val error "
                 f"{result.validation.mean_error:.4f}, "
                 f"lr {result.learning_rate:.4g}, tree "
                 f"{'changed' if result.changed else 'unchanged'}; median reward gap/std error "
                 f"{gaps}" + (f"; median gain over current parent/paired std error "
                              f"{switches}" if switches else ""))
        with self.writer.as_default():
            step = result.round
            tf.summary.scalar("search/mean_val_error", result.validation.mean_error, step=step)
            tf.summary.scalar("search/learning_rate", result.learning_rate, step=step)
            for layer, gains in result.switch_gains.items():
                if np.isfinite(gains).any():
                    tf.summary.scalar(f"switch/{layer}/median_gain", np.nanmedian(gains),
                                      step=step)
                    tf.summary.scalar(f"switch/{layer}/median_paired_standard_error",
                                      np.nanmedian(result.switch_errors[layer]), step=step)
            for name, accuracy in zip(self.attribute_names, result.validation.accuracy):
                if accuracy == accuracy:  # NaN: no labelled example in the V batches
                    tf.summary.scalar(f"val_accuracy/{name}", float(accuracy), step=step)
            for layer, matrix in result.rewards.items():
                tf.summary.image(f"rewards/{layer}", tf.io.decode_png(
                    reward_picture(matrix, f"{layer} rewards, round {step}"))[None], step=step)
            tf.summary.text("tree", "```\n" + tree + "\n```", step=step)
            tf.summary.image("tree_image", draw.image_tensor(
                architecture, self.attribute_names, f"round {step}"), step=step)
        self.writer.flush()

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
        self.writer.close()


def reward_picture(matrix: np.ndarray, title: str) -> bytes:
    """PNG of one layer's reward matrix [B_{l-1}, B_l]: reward of parent b -> child j as
    colour (NaN, a child not evaluated, blank), the value written in each cell when the
    matrix is small enough to read, and each child's chosen parent outlined."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    rows, cols = matrix.shape
    fig = Figure(figsize=(min(2 + 0.45 * cols, 16), min(1.5 + 0.45 * rows, 10)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    shown = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis", aspect="auto")
    fig.colorbar(shown, ax=ax, fraction=0.05)
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
    ax.set_xlabel("child block j")
    ax.set_ylabel("parent block b")
    ax.set_title(title, fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


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


def write_hparams(logdir: str, config: Dict, final_metrics: Dict[str, float],
                  run_id: str) -> None:
    """The run's settings and final metrics (``final/<name>``, step 0) for TensorBoard's
    HParams tab (every run directory under one ``--logdir`` becomes a row)."""
    from tensorboard.plugins.hparams import api as hp

    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        hp.hparams(hparams_values(config), trial_id=run_id)
        for name, value in final_metrics.items():
            if value is not None and value == value:
                tf.summary.scalar(f"final/{name}", float(value), step=0)
    writer.close()
