"""One run, end to end: data -> search (or a fixed tree) -> fine-tune -> test -> export -> report.

Every method goes through this one function, so they share the trainer, the evaluator, the
exporter and the report format. The run directory (``config.workdir``) gets

- ``tensorboard/``: events (see `gnas_keras.reporting`);
- ``tree.json``: the chosen tree (`Routing.to_json`);
- ``test_predictions.npz``: test-set probabilities and labels of the fine-tuned tree;
- ``report.json``: method, dataset, space, tree, per-attribute and mean test error, parameter
  count, search wall time, the comparisons, and for a dataset with a planted grouping the
  adjusted Rand index between the found and planted groupings.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf

from gnas_keras import gnas, random_search
from gnas_keras.config import SEARCHES, RunConfig
from gnas_keras.export import build_tree_model, export_saved_model
from gnas_keras.io import write_json_atomic, write_text_atomic
from gnas_keras.reporting import SearchReporter, format_duration, terminal
from gnas_keras.space import SearchSpace, get_space
from gnas_keras.supernet import Supernet, build_supernet, parameter_count
from gnas_keras.training import Evaluation, Loop, repeat_batches
from gnas_keras.tree import Routing, adjusted_rand_index, routing_for
from pipelines import input as data_input
from pipelines import records


PREDICTIONS_FILE = "test_predictions.npz"


def save_predictions(path: str, probabilities: np.ndarray, labels: np.ndarray,
                     attribute_names: List[str]) -> None:
    """Test-set probabilities [examples, N], labels [examples, N] and attribute names, for
    metrics beyond the error (AUC, balanced accuracy); written atomically."""
    tmp = path + ".tmp.npz"
    np.savez(tmp, probabilities=probabilities, labels=labels,
             attribute_names=np.asarray(attribute_names))
    os.replace(tmp, path)


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def grouping_layer(space: SearchSpace) -> int:
    """The layer whose blocks partition the attributes for the ARI: the top conv layer, i.e.
    the parents of FC-1, where the finest shared grouping of the tree is."""
    return len(space.layers) - 4


def tree_summary(routing: Routing, space: SearchSpace, meta: records.Metadata) -> Dict:
    """Attribute groups at every conv layer, and ARI to the planted groups if there are any."""
    names = meta.attribute_names
    groups = {}
    for l, spec in enumerate(space.layers[:len(space.layers) - 3]):
        labels = routing.grouping(l)
        groups[spec.name] = [[names[n] for n in range(len(names)) if labels[n] == b]
                             for b in sorted(set(labels))]
    summary = {"groups": groups}
    if meta.groups:
        index = {a: g for g, members in enumerate(meta.groups) for a in members}
        planted = [index[a] for a in names]
        l = grouping_layer(space)
        summary["ari_layer"] = space.layers[l].name
        summary["ari"] = adjusted_rand_index(routing.grouping(l), planted)
        summary["ari_by_layer"] = {
            space.layers[k].name: adjusted_rand_index(routing.grouping(k), planted)
            for k in range(1, len(space.layers) - 3)}
    return summary


def error_report(evaluation: Evaluation, names: List[str]) -> Dict:
    return {"mean_test_error": evaluation.mean_error,
            "test_error": {a: float(e) for a, e in zip(names, evaluation.errors)}}


def round_report(r: gnas.RoundResult) -> Dict:
    """A round for report.json, with the median (over children) gap between the best and
    second-best candidate reward next to the median standard error of a reward: when the
    gaps are not clearly larger than the errors, the choice of parents is mostly noise."""
    return {"round": r.round, "mean_val_error": r.validation.mean_error,
            "learning_rate": r.learning_rate, "changed": r.changed, "elapsed": r.elapsed,
            "tree": [list(p) for p in r.routing.parents],
            "median_reward_gap": {k: float(np.nanmedian(gnas.reward_gaps(v)))
                                  for k, v in r.rewards.items()},
            "median_reward_standard_error": {k: float(np.nanmedian(v))
                                             for k, v in r.reward_errors.items()}}


@dataclasses.dataclass
class Data:
    """The datasets of a run; built once, shared by every model the run trains."""

    meta: records.Metadata
    prep: data_input.Preprocessing
    train: tf.data.Dataset
    validation: tf.data.Dataset
    train_and_validation: tf.data.Dataset
    test: tf.data.Dataset

    @classmethod
    def load(cls, config: RunConfig) -> "Data":
        meta = records.read_metadata(config.data_dir)
        prep = data_input.preprocessing_for(config.dataset, config.crop_height,
                                            config.crop_width, config.flip)
        if meta.name != config.dataset:
            raise ValueError(f"{config.data_dir}: holds dataset {meta.name!r}, "
                             f"not {config.dataset!r}")

        def make(split, training):
            return data_input.make_dataset(
                config.data_dir, split, config.batch_size if training else
                config.eval_batch_size, training, prep, seed=config.seed)

        return cls(meta, prep, make("train", True), make("validation", False),
                   make("train+validation", True), make("test", False))

    def test_steps(self, batch_size: int) -> int:
        return -(-self.meta.split_sizes["test"] // batch_size)


def train_and_test(model: Supernet, data: Data, steps: int, config: RunConfig,
                   out: Callable[[str], None], label: str):
    """Trains `model`'s current tree on train+validation, then one pass over the test set;
    returns the test `Evaluation` and the `Loop`."""
    loop = Loop(model, data.train_and_validation)
    start, chunk = time.time(), max(1, steps // 5)
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        train = loop.train(n)
        done += n
        out(f"{label}: step {done}/{steps}  train loss {train.loss:.4f}  "
            f"elapsed {format_duration(time.time() - start)}")
    evaluation = loop.evaluate_dataset(data.test, data.meta.split_sizes["test"],
                                       config.eval_batch_size)
    return evaluation, loop


def run(config: RunConfig, out: Callable[[str], None] = terminal) -> Dict:
    """Runs `config` and returns the report (also written to ``workdir/report.json``)."""
    config.validate()
    data = Data.load(config)
    meta, n = data.meta, data.meta.num_attributes
    space = get_space(config.space)
    space.validate(n)
    image_shape = data_input.input_shape(data.prep)
    strategy = make_strategy(config.strategy)
    rng = np.random.default_rng(config.seed)
    os.makedirs(config.workdir, exist_ok=True)

    def new_supernet(seed: int) -> Supernet:
        with strategy.scope():
            return build_supernet(space, n, image_shape, learning_rate=config.learning_rate,
                                  momentum=config.momentum, weight_decay=config.weight_decay,
                                  dropout=config.dropout, seed=seed)

    model = new_supernet(config.seed)
    out(f"{config.method} on {meta.name} ({n} attributes, {image_shape[0]}x{image_shape[1]}),"
        f" space {space.name}: {space.num_trees(n):.3g} trees, "
        f"{space.evaluations_per_round(n)} evaluations per round, "
        f"{parameter_count(model):,} supernet parameters, "
        f"{strategy.num_replicas_in_sync} replica(s)")

    # 1. The tree: searched, or fixed by the method.
    start = time.time()
    rounds: List[gnas.RoundResult] = []
    trials: List[random_search.TrialResult] = []
    if config.method in SEARCHES:
        reporter = SearchReporter(os.path.join(config.workdir, "tensorboard"), space,
                                  meta.attribute_names, config.gnas.max_rounds, out)
        loop = Loop(model, data.train)
        fixed = config.gnas.val_batches if config.gnas.fixed_val_batches else None
        val_iterator = loop.iterator(repeat_batches(data.validation, fixed))
        if config.method == "gnas":
            rounds = gnas.search(loop, val_iterator, config.gnas, rng, reporter)
        else:
            trials = random_search.search(loop, val_iterator, config.gnas, rng, reporter,
                                          config.random_trials)
        reporter.close()
        routing = model.routing
    else:
        routing = routing_for(config.method.replace("_tree", ""), space, n, rng)
        model.set_routing(routing)
    search_seconds = time.time() - start
    tree_json = routing.to_json(space, meta.attribute_names)
    write_text_atomic(os.path.join(config.workdir, "tree.json"), tree_json)
    out("tree:\n" + routing.render(space, meta.attribute_names))

    # 2. Fine-tune the chosen tree on train+validation and test it.
    if config.finetune_lr:
        model.optimizer.learning_rate.assign(config.finetune_lr)
    test, loop = train_and_test(model, data, config.finetune_steps, config, out, "fine-tune")
    probabilities, labels = loop.predict(data.test)
    save_predictions(os.path.join(config.workdir, PREDICTIONS_FILE), probabilities, labels,
                     meta.attribute_names)
    pruned = build_tree_model(model, routing)

    # 3. Architecture-only comparison: every tree from scratch with the same budget.
    comparisons = {}
    for name in (("found_tree",) + tuple(config.compare)) if config.compare else ():
        tree = routing if name == "found_tree" else routing_for(
            name.replace("_tree", ""), space, n, np.random.default_rng(config.seed + 1))
        scratch = new_supernet(config.seed + 2)
        scratch.set_routing(tree)
        evaluation, _ = train_and_test(scratch, data, config.compare_steps, config, out,
                                       f"from scratch: {name}")
        comparisons[name] = {
            "mean_test_error": evaluation.mean_error,
            "parameters": parameter_count(build_tree_model(scratch, tree)),
            "tree": [list(p) for p in tree.parents], **tree_summary(tree, space, meta)}

    # 4. Export and report.
    export_path = ""
    if config.export_dir:
        export_path = export_saved_model(model, routing, meta.attribute_names,
                                         config.export_dir,
                                         config.export_name or f"{meta.name}_{config.method}",
                                         tree_json)
    report = {
        "method": config.method, "dataset": meta.name, "data_dir": config.data_dir,
        "search_space": space.to_dict(), "num_attributes": n,
        "attribute_names": meta.attribute_names,
        "tree": [list(p) for p in routing.parents],
        "tree_text": routing.render(space, meta.attribute_names),
        **tree_summary(routing, space, meta),
        **error_report(test, meta.attribute_names),
        "parameters": parameter_count(pruned),
        "supernet_parameters": parameter_count(model),
        "search_seconds": search_seconds,
        "rounds": [round_report(r) for r in rounds],
        "trials": [{"trial": t.trial, "mean_val_error": t.validation.mean_error,
                    "best_val_error": t.best_error, "elapsed": t.elapsed} for t in trials],
        "comparisons_from_scratch": comparisons,
        "compare_steps": config.compare_steps if comparisons else 0,
        "export": export_path,
        "config": config.to_dict(),
    }
    write_json_atomic(os.path.join(config.workdir, "report.json"), report)
    return report
