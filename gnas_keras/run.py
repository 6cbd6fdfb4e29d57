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
from gnas_keras.checkpoint import RunCheckpoint
from gnas_keras.config import SEARCHES, RunConfig
from gnas_keras.export import build_tree_model, export_saved_model, next_version
from gnas_keras.io import write_json_atomic, write_text_atomic
from gnas_keras.reporting import SearchReporter, format_duration, terminal
from gnas_keras.space import SearchSpace, get_space
from gnas_keras.supernet import Supernet, build_supernet, parameter_count
from gnas_keras.training import (Evaluation, Loop, NumericalError, check_finite,
                                 repeat_batches, segment_seed)
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


def new_supernet(config: RunConfig, num_attributes: int, image_shape, seed: int,
                 strategy: Optional[tf.distribute.Strategy] = None) -> Supernet:
    """A compiled supernet with the run's space and optimizer settings, built under
    `strategy` (default: the current one)."""
    with (strategy or tf.distribute.get_strategy()).scope():
        return build_supernet(get_space(config.space), num_attributes, image_shape,
                              learning_rate=config.learning_rate, momentum=config.momentum,
                              weight_decay=config.weight_decay, dropout=config.dropout,
                              seed=seed)


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


def planted_groups(meta: records.Metadata) -> Optional[List[int]]:
    """Group index of every attribute if the dataset has a planted grouping, else None."""
    if not meta.groups:
        return None
    index = {a: g for g, members in enumerate(meta.groups) for a in members}
    return [index[a] for a in meta.attribute_names]


def tree_summary(routing: Routing, space: SearchSpace, meta: records.Metadata) -> Dict:
    """Attribute groups at every conv layer, and ARI to the planted groups if there are any."""
    names = meta.attribute_names
    groups = {}
    for l, spec in enumerate(space.layers[:len(space.layers) - 3]):
        labels = routing.grouping(l)
        groups[spec.name] = [[names[n] for n in range(len(names)) if labels[n] == b]
                             for b in sorted(set(labels))]
    summary = {"groups": groups}
    planted = planted_groups(meta)
    if planted:
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
    """The datasets of a run. Training and reward streams are functions seed -> dataset, so
    that every segment of a run can start a stream of its own (see `training.segment_seed`)."""

    meta: records.Metadata
    prep: data_input.Preprocessing
    config: RunConfig

    @classmethod
    def load(cls, config: RunConfig) -> "Data":
        meta = records.read_metadata(config.data_dir)
        prep = data_input.preprocessing_for(config.dataset, config.crop_height,
                                            config.crop_width, config.flip)
        if meta.name != config.dataset:
            raise ValueError(f"{config.data_dir}: holds dataset {meta.name!r}, "
                             f"not {config.dataset!r}")
        if config.num_attributes and config.num_attributes != meta.num_attributes:
            raise ValueError(f"num_attributes: {config.num_attributes} given, but "
                             f"{config.data_dir}/metadata.json has {meta.num_attributes}")
        for split in ("train", "validation", "test"):
            if meta.split_sizes.get(split, 0) < 1:
                raise ValueError(f"{config.data_dir}: split {split!r} is empty")
        if meta.split_sizes["train"] < config.batch_size:
            raise ValueError(f"batch_size: {config.batch_size} is larger than the training "
                             f"split ({meta.split_sizes['train']} examples)")
        return cls(meta, prep, config)

    def _make(self, split: str, training: bool, seed: int = 0, **kwargs) -> tf.data.Dataset:
        batch = self.config.batch_size if training else self.config.eval_batch_size
        return data_input.make_dataset(self.config.data_dir, split, batch, training,
                                       self.prep, seed=seed, **kwargs)

    def train(self, seed: int) -> tf.data.Dataset:
        return self._make("train", True, seed)

    def train_and_validation(self, seed: int) -> tf.data.Dataset:
        return self._make("train+validation", True, seed)

    def rewards(self, seed: int) -> tf.data.Dataset:
        """Endless validation batches for rewards: shuffled by `seed`, or with
        ``fixed_val_batches`` always the same first V batches."""
        if self.config.gnas.fixed_val_batches:
            return repeat_batches(self._make("validation", False), self.config.gnas.val_batches)
        return self._make("validation", False, seed, shuffled_evaluation=True)

    @property
    def test(self) -> tf.data.Dataset:
        return self._make("test", False)


def train_and_test(model: Supernet, data: Data, steps: int, config: RunConfig,
                   out: Callable[[str], None], label: str, done: int = 0,
                   checkpoint: Optional[Callable[[int], None]] = None):
    """Trains `model`'s current tree on train+validation from step `done` to `steps` in five
    chunks (each on its own seeded stream, `checkpoint(done)` after each), then one pass over
    the test set; returns the test `Evaluation` and the `Loop`."""
    loop = Loop(model, data.train_and_validation, config.seed)
    start, chunk = time.time(), max(1, -(-steps // 5))
    while done < steps:
        loop.restart(4, done)
        n = min(chunk, steps - done)
        train = loop.train(n)
        check_finite(train, f"{label} step {done}")
        done += n
        out(f"{label}: step {done}/{steps}  train loss {train.loss:.4f}  "
            f"elapsed {format_duration(time.time() - start)}")
        if checkpoint:
            checkpoint(done)
    evaluation = loop.evaluate_dataset(data.test, data.meta.split_sizes["test"],
                                       config.eval_batch_size)
    return evaluation, loop


def run(config: RunConfig, out: Callable[[str], None] = terminal) -> Dict:
    """Runs `config` and returns the report (also written to ``workdir/report.json``).

    The run goes through phases search -> finetune -> compare -> export -> done and is
    checkpointed in ``workdir/checkpoints`` (`gnas_keras.checkpoint`): run it again with the
    same configuration and it continues from the last checkpoint; ``config.restart`` starts
    over. A NaN or Inf loss stops the run (``on_nan="stop"``), keeping the last good
    checkpoint and recording where it happened in ``state.json``, or (``"rollback"``) goes
    back to the last checkpoint with half the learning rate, at most `MAX_ROLLBACKS` times.
    """
    config.validate()
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    data = Data.load(config)
    meta, n = data.meta, data.meta.num_attributes
    space = get_space(config.space)
    space.validate(n)
    image_shape = data_input.input_shape(data.prep)
    strategy = make_strategy(config.strategy)
    os.makedirs(config.workdir, exist_ok=True)

    model = new_supernet(config, n, image_shape, config.seed, strategy)
    saver = RunCheckpoint(config.workdir, model, config.to_dict())
    if config.restart:
        saver.clear()
    state = saver.restore() or {"phase": "search", "rollbacks": 0}
    out(f"{config.method} on {meta.name} ({n} attributes, {image_shape[0]}x{image_shape[1]}),"
        f" space {space.name}: {space.num_trees(n):.3g} trees, "
        f"{space.evaluations_per_round(n)} evaluations per round, "
        f"{parameter_count(model):,} supernet parameters, "
        f"{strategy.num_replicas_in_sync} replica(s)"
        + (f"; resuming at phase {state['phase']} from {saver.directory}"
           if state["phase"] != "search" or "search" in state else ""))

    while True:
        try:
            state = run_phases(config, data, model, saver, state, strategy, out)
            break
        except NumericalError as err:
            state = saver.read_state() or {"phase": "search", "rollbacks": 0}
            events = state.setdefault("numerical_errors", [])
            events.append({"where": err.where, "message": str(err),
                           "resumable_from": state.get("checkpoint")})
            if config.on_nan == "rollback" and saver.exists() \
                    and state.get("rollbacks", 0) < MAX_ROLLBACKS:
                state = saver.restore()
                state["rollbacks"] = state.get("rollbacks", 0) + 1
                state["numerical_errors"] = events
                lr = float(model.optimizer.learning_rate.numpy()) / 2
                model.optimizer.learning_rate.assign(lr)
                out(f"{err}: rolled back to {state.get('checkpoint')}, learning rate {lr:.4g}")
                continue
            saver.save(state, weights=False)  # records where; keeps the last good weights
            raise NumericalError(
                f"{err}; the last good checkpoint {state.get('checkpoint') or '(none yet)'} "
                f"is kept and {saver.state_path} records where it happened", err.where)
    return state["report"]


MAX_ROLLBACKS = 3


def run_phases(config: RunConfig, data: Data, model: Supernet, saver: RunCheckpoint,
               state: Dict, strategy: tf.distribute.Strategy,
               out: Callable[[str], None]) -> Dict:
    """The phases of `run`, each continuing from `state` and checkpointing as it goes."""
    meta, n, space = data.meta, data.meta.num_attributes, model.space

    # 1. The tree: searched, or fixed by the method.
    if state["phase"] == "search":
        start = time.time() - state.get("search_seconds", 0.0)
        rng = np.random.default_rng(config.seed)
        if config.method in SEARCHES:
            reporter = SearchReporter(os.path.join(config.workdir, "tensorboard"), space,
                                      meta.attribute_names, config.gnas.max_rounds, out)
            loop = Loop(model, data.train, config.seed)

            def val_data(*position):
                return loop.iterator(data.rewards(segment_seed(config.seed, *position)))

            if config.method == "gnas":
                def checkpoint(search_state: gnas.SearchState, boundary: str) -> None:
                    every = config.checkpoint_every
                    if boundary != "candidate" or (every and
                                                   search_state.evaluations % every == 0):
                        saver.save({**state, "search": search_state.to_dict()})

                previous = state.get("search")
                results = gnas.search(
                    loop, val_data, config.gnas, rng, reporter,
                    gnas.SearchState.from_dict(previous) if previous else None, checkpoint)
                state["rounds"] = [round_report(r) for r in results]
            else:
                trials = random_search.search(loop, val_data, config.gnas, rng, reporter,
                                              config.random_trials)
                state["trials"] = [{"trial": t.trial, "mean_val_error": t.validation.mean_error,
                                    "best_val_error": t.best_error, "elapsed": t.elapsed}
                                   for t in trials]
            reporter.close()
            routing = model.routing
        else:
            routing = routing_for(config.method, space, n, rng, planted_groups(meta))
            model.set_routing(routing)
        state.update(phase="finetune", tree=[list(p) for p in routing.parents],
                     search_seconds=time.time() - start, finetune_done=0)
        state.pop("search", None)
        if config.finetune_lr:
            model.optimizer.learning_rate.assign(config.finetune_lr)
        saver.save(state)
    routing = Routing.from_lists(state["tree"])
    model.set_routing(routing)
    tree_json = routing.to_json(space, meta.attribute_names)
    write_text_atomic(os.path.join(config.workdir, "tree.json"), tree_json)

    # 2. Fine-tune the chosen tree on train+validation and test it.
    if state["phase"] == "finetune":
        out("tree:\n" + routing.render(space, meta.attribute_names))

        def checkpoint(done: int) -> None:
            saver.save({**state, "finetune_done": done})

        test, loop = train_and_test(model, data, config.finetune_steps, config, out,
                                    "fine-tune", state["finetune_done"], checkpoint)
        probabilities, labels = loop.predict(data.test)
        save_predictions(os.path.join(config.workdir, PREDICTIONS_FILE), probabilities,
                         labels, meta.attribute_names)
        state.update(phase="compare", test=test.to_dict(), comparisons={},
                     finetune_done=config.finetune_steps)
        saver.save(state)
    test = Evaluation.from_dict(state["test"])

    # 3. Architecture-only comparison: every tree from scratch with the same budget. A
    #    comparison cut short is redone from scratch (each is a few minutes at most).
    if state["phase"] == "compare":
        for name in (("found_tree",) + tuple(config.compare)) if config.compare else ():
            if name in state["comparisons"]:
                continue
            tree = routing if name == "found_tree" else routing_for(
                name, space, n, np.random.default_rng(config.seed + 1), planted_groups(meta))
            scratch = new_supernet(config, n, model.image_shape, config.seed + 2, strategy)
            scratch.set_routing(tree)
            evaluation, _ = train_and_test(scratch, data, config.compare_steps, config, out,
                                           f"from scratch: {name}")
            state["comparisons"][name] = {
                "mean_test_error": evaluation.mean_error,
                "parameters": parameter_count(build_tree_model(scratch, tree)),
                "tree": [list(p) for p in tree.parents], **tree_summary(tree, space, meta)}
            saver.save(state, weights=False)
        state["phase"] = "export"
        saver.save(state, weights=False)

    # 4. Export (a version number chosen once, so a resumed export does not add another).
    if state["phase"] == "export":
        export_path = ""
        if config.export_dir:
            name = config.export_name or f"{meta.name}_{config.method}"
            if not state.get("export_version"):
                state["export_version"] = next_version(os.path.join(config.export_dir, name))
                saver.save(state, weights=False)
            export_path = os.path.join(config.export_dir, name, str(state["export_version"]))
            if not os.path.exists(export_path):
                out(f"exporting to {export_path}")
                export_saved_model(model, routing, meta.attribute_names, config.export_dir,
                                   name, tree_json, version=state["export_version"])
        pruned = build_tree_model(model, routing)
        state["report"] = {
            "method": config.method, "dataset": meta.name, "data_dir": config.data_dir,
            "search_space": space.to_dict(), "num_attributes": n,
            "attribute_names": meta.attribute_names,
            "tree": [list(p) for p in routing.parents],
            "tree_text": routing.render(space, meta.attribute_names),
            **tree_summary(routing, space, meta),
            **error_report(test, meta.attribute_names),
            "parameters": parameter_count(pruned),
            "supernet_parameters": parameter_count(model),
            "search_seconds": state["search_seconds"],
            "rounds": state.get("rounds", []),
            "trials": state.get("trials", []),
            "comparisons_from_scratch": state["comparisons"],
            "compare_steps": config.compare_steps if state["comparisons"] else 0,
            "numerical_errors": state.get("numerical_errors", []),
            "export": export_path,
            "config": config.to_dict(),
        }
        write_json_atomic(os.path.join(config.workdir, "report.json"), state["report"])
        state["phase"] = "done"
        saver.save(state, weights=False)
    return state
