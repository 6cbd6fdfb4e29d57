"""Progress of a search on the terminal and in TensorBoard.

TensorBoard layout (``tensorboard --logdir runs/``), under ``<workdir>/tensorboard``:
- ``candidate/mean_val_error``: every candidate evaluation, step = evaluations so far;
- ``search/mean_val_error``, ``search/learning_rate``: the tree at the end of each round;
- ``reward/<layer>/<b>-><j>``: reward of every evaluated connection, step = round;
- ``tree`` (text) and ``tree_image`` (the `gnas_keras.draw` picture): the tree after every
  round (a separate tag: TensorBoard keeps one plugin per tag).
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from gnas_keras import draw
from gnas_keras.architecture import Architecture
from gnas_keras.evaluation import Evaluation
from gnas_keras.methods.base import SearchLogger
from gnas_keras.methods.gnas import RoundResult, reward_gaps
from gnas_keras.space import SearchSpace


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


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
            self.out(f"warm-up on random trees: step {step}/{steps}  train loss "
                     f"{evaluation.loss:.4f}  elapsed {format_duration(elapsed)}")

    def candidate(self, round_: int, max_rounds: int, layer: str, candidate: int,
                  num_candidates: int, evaluation: Evaluation, elapsed: float, eta: float,
                  done: int) -> None:
        self.out(f"round {round_}/{max_rounds}  layer {layer}  candidate "
                 f"{candidate + 1}/{num_candidates}  val error {evaluation.mean_error:.4f}  "
                 f"elapsed {format_duration(elapsed)}  eta <= {format_duration(eta)}")
        with self.writer.as_default():
            tf.summary.scalar("candidate/mean_val_error", evaluation.mean_error, step=done)

    def trial(self, trial: int, trials: int, evaluation: Evaluation, best_error: float,
              elapsed: float, eta: float) -> None:
        self.out(f"random trial {trial}/{trials}  val error {evaluation.mean_error:.4f}  "
                 f"best {best_error:.4f}  elapsed {format_duration(elapsed)}  "
                 f"eta {format_duration(eta)}")
        with self.writer.as_default():
            tf.summary.scalar("candidate/mean_val_error", evaluation.mean_error, step=trial)
            tf.summary.scalar("search/best_val_error", best_error, step=trial)

    def round(self, result: RoundResult) -> None:
        architecture = Architecture.from_space(self.space, result.routing)
        tree = architecture.render(self.attribute_names)
        gaps = ", ".join(
            f"{layer} {np.nanmedian(reward_gaps(m)):.4f}/{np.nanmedian(result.reward_errors[layer]):.4f}"
            for layer, m in result.rewards.items())
        switches = ", ".join(
            f"{layer} {np.nanmedian(g):.4f}/{np.nanmedian(result.switch_errors[layer]):.4f}"
            for layer, g in result.switch_gains.items() if np.isfinite(g).any())
        self.out(f"round {result.round} done: val error {result.validation.mean_error:.4f}, "
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
            for layer, matrix in result.rewards.items():
                for b in range(matrix.shape[0]):
                    for j in range(matrix.shape[1]):
                        if matrix[b, j] == matrix[b, j]:  # skip NaN (dead child)
                            tf.summary.scalar(f"reward/{layer}/{b}->{j}", matrix[b, j],
                                              step=step)
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
