"""One run, end to end: data -> method -> fine-tune -> test -> compare -> export -> report.

Every method (`gnas_keras.methods`) goes through this one module, so they share the trainer,
the evaluator, the exporter and the report format; it knows no method's internals: a method
gets a `SearchContext` and returns a `SearchResult` (an `Architecture`, optionally the
trained model to fine-tune, and its own report entries). The run directory
(``config.workdir``) gets

- TensorBoard events (``events.out.tfevents.*``, see `gnas_keras.reporting.reporter`: in the
  directory itself, so TensorBoard names the run after it);
- ``tree.json``: the found architecture (`Architecture.to_json`);
- ``test_predictions.npz``: test-set probabilities and labels of the fine-tuned network;
- ``report.json``: method, dataset, space, tree and architecture, per-attribute and mean test
  error, parameters and MACs, search wall time, the method's entries (GNAS: ``rounds``,
  random search: ``trials``), the comparisons, and for a dataset with a planted grouping the
  adjusted Rand index between the found and planted groupings; mean F1, balanced accuracy
  and AUC; the preprocessing and input shape; the export's decision thresholds;
- ``run.lock`` while a run owns it (`gnas_keras.workdir`); ``.replaced/`` with the outputs
  of earlier runs that ``--restart`` moved aside.

Before any work the dataset is checked (`pipelines.records.check_dataset`), the space
against the image size, and the workdir and export directory for writability. Every export
(`gnas_keras.export.saved_model`) gets ``export.json`` with this run's id (a resumed run finds its own
version, never another's), the decision thresholds chosen on the validation split, and
``model_card.md`` with ``tree.png``.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import keras
import tensorflow as tf

from gnas_keras.reporting import draw

from gnas_keras.training import metrics
from gnas_keras.reporting import units
from gnas_keras.export.model_card import model_card
from gnas_keras.space.architecture import Architecture, cost
from gnas_keras.space.cost import layer_costs
from gnas_keras.checkpoint import RunCheckpoint
from gnas_keras.config import RunConfig
from gnas_keras.training.data import Data, planted_groups
from gnas_keras.training.evaluation import Evaluation, NumericalError, WorkerLost, segment_seed
from gnas_keras.export.saved_model import (export_saved_model, find_owned_version,
                                           run_model_directory)
from gnas_keras.io import write_json_atomic, write_text_atomic
from gnas_keras.methods import Method, get_method
from gnas_keras.methods.base import SearchContext, SearchLogger, SearchResult
from gnas_keras.models.base import AttributeModel, parameter_count
from gnas_keras.reporting.reporter import (SearchReporter, event_dir, scalar, terminal,
                                           write_hparams)
from gnas_keras.reporting.run_report import RunReport, TreeSummary
from gnas_keras.space.search_space import SearchSpace, get_space, scientific
from gnas_keras.training.loop import (Loop, is_multi_worker, new_supernet, new_tree_network,
                                 train_and_test, train_from_scratch)
from gnas_keras.space.tree import adjusted_rand_index
from gnas_keras.export.model_card import Provenance, image_encoding, labelled_counts
from gnas_keras.workdir import WorkdirLock, check_writable, move_aside
from gnas_keras_pipelines import records
from gnas_keras_pipelines.convert_errors import DatasetError
from gnas_keras_pipelines.input import shard_files
from gnas_keras_pipelines.output_dir import DatasetReadLock

PREDICTIONS_FILE = "test_predictions.npz"


class Phase(enum.StrEnum):
    """Where a run is: search -> finetune -> compare -> export -> done (``state.json``)."""

    SEARCH = "search"
    FINETUNE = "finetune"
    COMPARE = "compare"
    EXPORT = "export"
    DONE = "done"


MAX_ROLLBACKS = 3


def save_predictions(path: str, probabilities: np.ndarray, labels: np.ndarray,
                     attribute_names: List[str],
                     jpeg95_probabilities: Optional[np.ndarray] = None) -> None:
    """Test-set probabilities [examples, N], labels [examples, N] and attribute names, for
    metrics beyond the error (AUC, balanced accuracy), and the probabilities of the same
    test images re-encoded as JPEG quality 95 (the model card); written atomically."""
    tmp = path + ".tmp.npz"
    extra = {} if jpeg95_probabilities is None else {
        "jpeg95_probabilities": jpeg95_probabilities}
    try:
        np.savez(tmp, probabilities=probabilities, labels=labels,
                 attribute_names=np.asarray(attribute_names), **extra)
        os.replace(tmp, path)
    finally:  # a full disk leaves no partial file behind
        if os.path.exists(tmp):
            os.remove(tmp)


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def check_shards(data_dir: str, workers: int) -> None:
    """Every split must have at least one shard file per worker (file sharding)."""
    for split in ("train", "validation", "test"):
        files = shard_files(data_dir, split)
        if len(files) < workers:
            raise ValueError(f"{data_dir}: split {split!r} has {len(files)} shard file(s) for "
                             f"{workers} workers; multi-worker runs shard by file: convert it "
                             f"with at least {workers} shards per split")


def worker_shard(strategy: tf.distribute.Strategy) -> Tuple[int, int]:
    """(workers, this worker's index, the chief's 0) of a multi-worker strategy."""
    from tensorflow.python.distribute import multi_worker_util
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec()
    return (multi_worker_util.worker_count(spec, resolver.task_type),
            multi_worker_util.id_in_cluster(spec, resolver.task_type, resolver.task_id))


def worker_scratch(config: RunConfig, scratch: str) -> RunConfig:
    """A non-chief worker's config: it computes what the chief computes (every step is
    collective) but writes its run directory (TensorBoard, tree.json, report.json,
    predictions) into `scratch`, exports nothing, and reads the chief's checkpoints."""
    return dataclasses.replace(config, workdir=scratch, export_dir="")


def tree_summary(architecture: Architecture, meta: records.Metadata) -> TreeSummary:
    """Attribute groups at every layer below the per-attribute heads, and the ARI to the
    planted groups (at the architecture's group layer and at every such layer) if any."""
    names, head = meta.attribute_names, architecture.head_layer
    groups = {}
    for l in range(head):
        labels = architecture.grouping(l)
        groups[architecture.layer_names[l]] = [
            [names[n] for n in range(len(names)) if labels[n] == b] for b in sorted(set(labels))]
    planted = planted_groups(meta)
    if not planted:
        return TreeSummary(groups)
    return TreeSummary(groups, adjusted_rand_index(architecture.grouping(), planted),
                       architecture.group_layer,
                       {architecture.layer_names[k]: adjusted_rand_index(
                           architecture.grouping(k), planted) for k in range(1, head)})


def error_report(evaluation: Evaluation, names: List[str]) -> Dict:
    return {"mean_test_error": evaluation.mean_error,
            "test_error": {a: float(e) for a, e in zip(names, evaluation.errors)}}


@dataclasses.dataclass
class RunState:
    """Where a run is; saved in ``state.json`` at every checkpoint.

    Attributes:
      phase: the `Phase` the run is in.
      rollbacks: NaN rollbacks so far (``on_nan="rollback"``).
      lr_scale: 0.5 ** rollbacks: what a method that sets its learning rate from the config
        (branching's schedule) multiplies it by, so a halving survives the next schedule step.
      search: the method's state (its ``to_dict()``) while searching.
      search_seconds: search wall time (also across restarts).
      architecture: the found architecture (`Architecture.to_dict`), after the search.
      finetune_model: ``supernet`` (the method's supernet is fine-tuned) or ``tree`` (a tree
        network of the architecture).
      search_report: the method's own report.json entries.
      finetune_done: fine-tune steps done.
      test: the fine-tuned network's test `Evaluation` (dict).
      comparisons: from-scratch results by tree name.
      run_id: this run's id, drawn when it starts (kept across resumption); its export
        records it, so a resumed export finds its own version and never another run's.
      export_path: the export's versioned directory, once written.
      numerical_errors: where NaN/Inf losses happened.
      report: report.json once written.
    """

    phase: Phase = Phase.SEARCH
    rollbacks: int = 0
    lr_scale: float = 1.0
    search: Optional[Dict] = None
    search_seconds: float = 0.0
    architecture: Optional[Dict] = None
    finetune_model: str = ""
    search_report: Dict = dataclasses.field(default_factory=dict)
    finetune_done: int = 0
    test: Optional[Dict] = None
    comparisons: Dict[str, Dict] = dataclasses.field(default_factory=dict)
    run_id: str = ""
    export_path: str = ""
    numerical_errors: List[Dict] = dataclasses.field(default_factory=list)
    report: Optional[Dict] = None

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict) -> "RunState":
        known = {f.name for f in dataclasses.fields(cls)}
        state = cls(**{k: v for k, v in d.items() if k in known})
        state.phase = Phase(state.phase)
        return state

    @property
    def resumed(self) -> bool:
        return self.phase != Phase.SEARCH or self.search is not None


def _optimizers(objects: Dict) -> List:
    """The distinct Keras optimizers in a checkpoint's objects: given directly, or as the
    ``optimizer`` attribute of a model or a method's `tf.Module` holder."""
    found: Dict[int, Any] = {}
    for value in objects.values():
        for candidate in (value, getattr(value, "optimizer", None)):
            if isinstance(candidate, keras.optimizers.Optimizer):
                found.setdefault(id(candidate), candidate)
    return list(found.values())


def _objects(model: AttributeModel, extra: Optional[Dict] = None) -> Dict:
    """What a checkpoint holds: the model, its optimizer, and any extra trackables."""
    return {"model": model, "optimizer": model.optimizer, **(extra or {})}


class _Run:
    """The phases of `run`; `state` is checkpointed as they go."""

    def __init__(self, config: RunConfig, data: Data, method: Method, saver: RunCheckpoint,
                 state: RunState, strategy: tf.distribute.Strategy,
                 out: Callable[[str], None]):
        self.config, self.data, self.method, self.saver = config, data, method, saver
        self.state, self.strategy, self.out = state, strategy, out
        self.meta = data.meta
        self.space: SearchSpace = get_space(config.space)
        self.lr_factor = 1.0  # < 1 right after a NaN rollback: applied once weights are back

    # --- helpers ---------------------------------------------------------------------------
    def context(self, rng: np.random.Generator, logger: SearchLogger, saved=None,
                checkpoint=None, **models) -> SearchContext:
        # A rollback's halving also reaches a method that computes its learning rate from
        # the config (branching's schedule); the restored optimizers are halved in `restore`.
        config = self.config if self.state.lr_scale == 1.0 else dataclasses.replace(
            self.config, learning_rate=self.config.learning_rate * self.state.lr_scale)
        return SearchContext(
            config=config, method_config=self.config.method_config(),
            space=self.space, num_attributes=self.meta.num_attributes,
            attribute_names=list(self.meta.attribute_names),
            planted_groups=planted_groups(self.meta), rng=rng, logger=logger,
            saved_state=saved, checkpoint=checkpoint or (lambda state, boundary: None),
            train_data=self.data.train, training_labels=self.data.training_labels,
            strategy=self.strategy,
            image_shape=self.data.image_shape, **models)

    def restore(self, objects: Dict) -> None:
        """Loads the last checkpoint into `objects` and applies a pending rollback's halved
        learning rate to every optimizer among them (a model's, a method's holder's)."""
        if self.saver.restore_objects(objects) and self.lr_factor != 1.0:
            rates = []
            for optimizer in _optimizers(objects):
                lr = float(optimizer.learning_rate.numpy()) * self.lr_factor
                optimizer.learning_rate.assign(lr)
                rates.append(f"{lr:.4g}")
            self.out(f"rolled back to {self.saver.latest}, learning rate "
                     f"{', '.join(rates) or 'unchanged (no optimizer checkpointed)'}")
        self.lr_factor = 1.0

    def new_supernet(self):
        return new_supernet(self.config, self.space, self.meta.num_attributes,
                            self.data.image_shape, self.config.seed, self.strategy)

    def finetune_model(self) -> AttributeModel:
        """The model of the fine-tune, export phases, built to take the checkpoint."""
        architecture = Architecture.from_dict(self.state.architecture, self.space)
        if self.state.finetune_model == "supernet":
            model = self.new_supernet()
            model.set_routing(architecture.routing)
        else:
            model = new_tree_network(self.config, architecture, self.data.image_shape,
                                     self.config.seed, self.strategy)
        self.restore(_objects(model))
        return model

    def save(self, objects: Optional[Dict] = None) -> None:
        self.saver.save(self.state.to_dict(), objects)
        _CTRL_C.raise_if_pending()

    # --- 1. the method -----------------------------------------------------------------------
    def search(self) -> Optional[AttributeModel]:
        config, state = self.config, self.state
        start = time.time() - state.search_seconds
        rng = np.random.default_rng(config.seed)
        reporter = SearchReporter(event_dir(config.workdir), self.space,
                                  self.meta.attribute_names, self.out,
                                  getattr(config.method_config(), "reward", "accuracy"))
        objects: Dict = {}

        def checkpoint(search_state, boundary: str) -> None:
            every = config.checkpoint_every
            if boundary != "candidate" or (every and search_state.evaluations % every == 0):
                state.search = search_state.to_dict()
                state.search_seconds = time.time() - start
                self.save(objects)

        # Reward batches for every method (a method without a supernet distributes them
        # itself when it needs to).
        models: Dict = dict(val_data=lambda *position: iter(self.data.rewards(
            segment_seed(config.seed, *position))))
        if self.method.uses_supernet:
            supernet = self.new_supernet()
            loop = Loop(supernet, self.data.train, config.seed)
            models = dict(supernet=supernet, loop=loop, val_data=lambda *position: loop.iterator(
                self.data.rewards(segment_seed(config.seed, *position))))
        context = self.context(rng, reporter, state.search, checkpoint, **models)
        if self.method.uses_supernet:
            objects.update(_objects(models["supernet"]))
        context.built = self.method.build(context)
        context.trackables = self.method.trackables(context)
        objects.update(context.trackables)
        if objects:
            self.restore(objects)
        result: SearchResult = self.method.search(context)
        reporter.close()

        result.architecture.validate()
        state.architecture = result.architecture.to_dict()
        state.search_report = result.report
        state.search_seconds = time.time() - start
        state.search = None
        state.phase, state.finetune_done = Phase.FINETUNE, 0
        if result.model is None:
            state.finetune_model = "tree"
            model = new_tree_network(config, result.architecture, self.data.image_shape,
                                     config.seed, self.strategy)
        else:
            state.finetune_model = "supernet" if result.model is models.get("supernet") \
                else "tree"
            model = result.model
        if config.finetune_lr:
            model.optimizer.learning_rate.assign(config.finetune_lr)
        self.save(_objects(model))
        return model

    # --- 2. fine-tune and test ---------------------------------------------------------------
    def finetune(self, model: AttributeModel, architecture: Architecture) -> None:
        state, names = self.state, self.meta.attribute_names
        h, w, _ = self.data.image_shape  # the tree itself is printed once, in the summary
        self.out(f"fine-tune of the found tree: {len(set(architecture.grouping()))} groups "
                 f"at {architecture.group_layer}, "
                 f"{units.count(cost(architecture, h, w).parameters)} parameters")
        writer = tf.summary.create_file_writer(event_dir(self.config.workdir))

        def checkpoint(done: int, loop: Loop) -> None:
            with writer.as_default():  # the mean training loss of the chunk just trained
                scalar("finetune/loss", float(model.loss_tracker.result()), step=done)
            writer.flush()
            state.finetune_done = done
            self.save(_objects(model))

        test, loop = train_and_test(model, self.data, self.config.finetune_steps, self.config,
                                    self.out, "fine-tune", state.finetune_done, checkpoint)
        probabilities, labels = loop.predict(self.data.test_whole)
        jpeg95, _ = loop.predict(self.data.test_whole_jpeg95)
        save_predictions(os.path.join(self.config.workdir, PREDICTIONS_FILE), probabilities,
                         labels, names, jpeg95)
        state.phase, state.test = Phase.COMPARE, test.to_dict()
        state.comparisons, state.finetune_done = {}, self.config.finetune_steps
        self.save(_objects(model))

    # --- 3. architecture-only comparison -----------------------------------------------------
    def compare(self, architecture: Architecture) -> None:
        """Every tree from scratch with the same budget. A comparison cut short is redone
        from scratch (each is a few minutes at most)."""
        config, state = self.config, self.state
        h, w, _ = self.data.image_shape
        for name in (("found_tree",) + tuple(config.compare)) if config.compare else ():
            if name in state.comparisons:
                continue
            tree = architecture if name == "found_tree" else get_method(name).search(
                self.context(np.random.default_rng(config.seed + 1), SearchLogger())
            ).architecture
            evaluation = train_from_scratch(tree, self.data, config.compare_steps, config,
                                            config.seed + 2, self.out, self.strategy,
                                            f"from scratch: {name}").test
            state.comparisons[name] = {
                "mean_test_error": evaluation.mean_error,
                "parameters": cost(tree, h, w).parameters,
                "tree": [list(p) for p in tree.parents],
                **tree_summary(tree, self.meta).to_dict()}
            self.save()
        state.phase = Phase.EXPORT
        self.save()

    # --- 4. export and report ----------------------------------------------------------------
    def export(self, model: AttributeModel, architecture: Architecture) -> None:
        """A version number is chosen once, so a resumed export does not add another."""
        config, state, meta = self.config, self.state, self.meta
        export_path, thresholds = "", None
        h, w, _ = self.data.image_shape
        size = cost(architecture, h, w)
        test = Evaluation.from_dict(state.test)
        test_metrics = self.test_metrics()
        if config.export_dir:
            model_dir = run_model_directory(config, meta)
            name = os.path.basename(model_dir)
            export_path = find_owned_version(model_dir, state.run_id) or ""
            if not export_path:
                thresholds = self.decision_thresholds(model)
                self.out(f"exporting to {model_dir}")
                card = model_card(
                    name=name, dataset=meta.name, data_dirs=config.data_dirs,
                    split_sizes=meta.split_sizes, attribute_names=meta.attribute_names,
                    method=config.method, space=self.space.name,
                    tree_text=architecture.render(meta.attribute_names),
                    input_description=f"RGB images, resized to {self.data.prep.height}x"
                    f"{self.data.prep.width} and centre-cropped to {h}x{w}",
                    test_error=error_report(test, meta.attribute_names)["test_error"],
                    test_f1=test_metrics.get("test_f1"),
                    test_balanced_accuracy=test_metrics.get("test_balanced_accuracy"),
                    thresholds=dict(zip(meta.attribute_names, map(float, thresholds))),
                    parameters=size.parameters, macs_per_image=size.macs_per_image,
                    parts=[p["name"] for p in meta.extra.get("combined", [])],
                    **self.card_evidence(architecture))
                picture = draw.to_png(draw.layout(architecture, meta.attribute_names, name))
                export_path = export_saved_model(
                    model, architecture, meta.attribute_names, config.export_dir, name,
                    owner=state.run_id, preprocessing=self.data.prep, thresholds=thresholds,
                    info={"thresholds_chosen_on": "validation split, fewest errors per "
                                                  "attribute (gnas_keras.training.metrics."
                                                  "choose_thresholds)",
                          "dataset": meta.name, "method": config.method},
                    files={"model_card.md": card.encode("utf-8"), "tree.png": picture},
                    fused=config.export_fused, max_pixels=config.export_max_pixels)
            state.export_path = export_path
            self.save()
        state.report = RunReport(
            method=config.method, dataset=meta.name, data_dir=config.data_dir,
            search_space=self.space.to_dict(), attribute_names=meta.attribute_names,
            architecture=architecture, trees=tree_summary(architecture, meta),
            mean_test_error=test.mean_error, test_error=dict(zip(
                meta.attribute_names, map(float, test.errors))),
            parameters=size.parameters, macs_per_image=size.macs_per_image,
            supernet_parameters=parameter_count(model)
            if state.finetune_model == "supernet" else None,
            search_seconds=state.search_seconds, method_entries=state.search_report,
            comparisons_from_scratch=state.comparisons,
            compare_steps=config.compare_steps if state.comparisons else 0,
            numerical_errors=state.numerical_errors, test_metrics=test_metrics,
            preprocessing=dataclasses.asdict(self.data.prep),
            input_shape=list(self.data.image_shape), export=export_path,
            thresholds=None if thresholds is None
            else dict(zip(meta.attribute_names, map(float, thresholds))),
            config=config.to_dict(), provenance=self.provenance(architecture).sentence()
        ).to_dict()
        write_json_atomic(os.path.join(config.workdir, "report.json"), state.report)
        write_hparams(event_dir(config.workdir), {**config.to_dict(), "dataset": meta.name}, {
            "mean_test_error": test.mean_error, "mean_f1": test_metrics.get("mean_f1"),
            "mean_balanced_accuracy": test_metrics.get("mean_balanced_accuracy"),
            "mean_auc": test_metrics.get("mean_auc"), "parameters": size.parameters,
            "search_seconds": state.search_seconds},
            os.path.basename(os.path.abspath(config.workdir)))
        state.phase = Phase.DONE
        self.save()

    def card_evidence(self, architecture: Architecture) -> Dict:
        """The model card's inputs beyond the report: labelled test examples per attribute
        and the mean test error of the JPEG-95 re-encoded test images (from the saved test
        predictions), the training images' encoding (the first training record of each
        dataset), and the tree's provenance (the method's recorded start against the
        exported tree)."""
        evidence: Dict[str, Any] = {}
        path = os.path.join(self.config.workdir, PREDICTIONS_FILE)
        if os.path.exists(path):
            with np.load(path) as saved:
                labels = saved["labels"]
                evidence["test_counts"] = labelled_counts(labels, self.meta.attribute_names)
                if "jpeg95_probabilities" in saved:
                    errors = metrics.attribute_errors(saved["jpeg95_probabilities"], labels)
                    evidence["jpeg95_mean_error"] = float(np.nanmean(errors))
        encodings = set()
        for data_dir in self.config.data_dirs:
            for serialized in tf.data.TFRecordDataset(shard_files(data_dir, "train")[:1]).take(1):
                image = tf.io.parse_single_example(
                    serialized, {"image": tf.io.FixedLenFeature([], tf.string)})["image"]
                encodings.add(image_encoding(image.numpy()))
        evidence["encoding"] = " and ".join(sorted(encodings))
        evidence["provenance"] = self.provenance(architecture)
        return evidence

    def provenance(self, architecture: Architecture) -> Provenance:
        """Where the exported tree came from (the model card, report.json, the terminal)."""
        return Provenance.from_report(
            self.config.method, self.method.fixed,
            getattr(self.config.method_config(), "initial_tree", None),
            self.state.search_report, architecture.parents)

    def decision_thresholds(self, model: AttributeModel) -> np.ndarray:
        """Per attribute, the probability above which the export says "present": the one
        with the fewest validation errors (`metrics.choose_thresholds`). The fine-tune also
        trained on this split, so these are optimistic; no other labelled split is unseen
        but the test split, which must stay untouched."""
        probabilities, labels = Loop(model, self.data.train, self.config.seed).predict(
            self.data.validation)
        return metrics.choose_thresholds(probabilities, labels)

    def test_metrics(self) -> Dict:
        """Mean F1, balanced accuracy and AUC on the test predictions (rare attributes make
        plain error misleading), and F1 per attribute."""
        path = os.path.join(self.config.workdir, PREDICTIONS_FILE)
        if not os.path.exists(path):
            return {}
        with np.load(path) as saved:
            m = metrics.compute(saved["probabilities"], saved["labels"]).to_dict(
                self.meta.attribute_names)
        return {"mean_f1": m["mean_f1"], "mean_balanced_accuracy": m["mean_balanced_accuracy"],
                "mean_auc": m["mean_auc"], "test_f1": m["f1"],
                "test_balanced_accuracy": m["balanced_accuracy"]}

    def phases(self) -> Dict:
        state = self.state
        model = self.search() if state.phase == Phase.SEARCH else None
        architecture = Architecture.from_dict(state.architecture, self.space)
        write_text_atomic(os.path.join(self.config.workdir, "tree.json"),
                          architecture.to_json(self.meta.attribute_names))
        if state.phase in (Phase.FINETUNE, Phase.EXPORT) and model is None:
            model = self.finetune_model()
        if state.phase == Phase.FINETUNE:
            self.finetune(model, architecture)
        if state.phase == Phase.COMPARE:
            self.compare(architecture)
        if state.phase == Phase.EXPORT:
            self.export(model or self.finetune_model(), architecture)
        return state.report


def run(config: RunConfig, out: Callable[[str], None] = terminal) -> Dict:
    """Runs `config` and returns the report (also written to ``workdir/report.json``).

    The run goes through phases search -> finetune -> compare -> export -> done and is
    checkpointed in ``workdir/checkpoints`` (`gnas_keras.checkpoint`): run it again with the
    same configuration and it continues from the last checkpoint; ``config.restart`` starts
    over. A NaN or Inf loss stops the run (``on_nan="stop"``), keeping the last good
    checkpoint and recording where it happened in ``state.json``, or (``"rollback"``) goes
    back to the last checkpoint with half the learning rate, at most `MAX_ROLLBACKS` times.

    Multi-worker (``strategy="multiworker"``, TF_CONFIG names the cluster and this task):
    every worker runs this same function with the same config, in lock-step; the chief
    (``strategy.extended.should_checkpoint``) writes the run directory and the export, the
    others write into a scratch directory they delete (`worker_scratch`). ``workdir`` must
    be a directory every worker can read (shared storage) so that all resume alike.
    """
    config.validate()
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    # Before any TensorFlow op (checking the dataset decodes an image): a multi-worker
    # strategy's collectives must be configured at program start.
    strategy = make_strategy(config.strategy)
    data = Data.load(config)
    config = data.config  # eval_batch_size and val_batches bounded by the validation split
    meta, n = data.meta, data.meta.num_attributes
    config = config.for_data(meta.name, data.image_shape)  # --space=auto: the data's preset
    space = get_space(config.space)
    h, w, _ = data.image_shape
    layer_costs(space, n, h, w)  # a space that does not fit the image fails here
    method = get_method(config.method)
    check_writable(config.workdir, "workdir")
    if config.export_dir:
        check_writable(config.export_dir, "export_dir")
        run_model_directory(config, meta)  # a name from the data stays under export_dir
    if is_multi_worker(strategy):
        data.shard = worker_shard(strategy)
        for data_dir in config.data_dirs:
            check_shards(data_dir, data.shard[0])
    # A worker that dies makes the others' next collective fail (`CLUSTER_ERRORS`).
    lost = CLUSTER_ERRORS if is_multi_worker(strategy) else ()
    if not strategy.extended.should_checkpoint:  # a non-chief worker: scratch, no lock
        scratch = tempfile.mkdtemp(prefix="gnas-worker-")
        saver = RunCheckpoint(config.workdir, config.to_dict(), scratch=scratch)
        try:
            return _run_phases(worker_scratch(config, scratch), data, method, space, saver,
                               strategy, out)
        except lost as err:
            raise worker_lost_error(saver, err) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(config.workdir, exist_ok=True)
    # The read lock: `flags.convert --overwrite` does not replace data_dir under the run.
    with WorkdirLock(config.workdir, out), _CTRL_C, DatasetReadLock(config.data_dirs):
        saver = RunCheckpoint(config.workdir, config.to_dict())
        if config.restart:
            aside = move_aside(config.workdir)
            if aside:
                out(f"--restart: the previous run's outputs are now in {aside}")
        try:
            return _run_phases(config, data, method, space, saver, strategy, out)
        except DATA_ERRORS as err:
            named = corrupt_data_error(config, saver, err)
            if named is None:  # not the data's fault
                raise
            raise named from None
        except lost as err:
            raise worker_lost_error(saver, err) from None
        except KeyboardInterrupt:
            saved = saver.read_state()
            if saved and saved.get("checkpoint"):
                where = (f"the same command resumes at phase {saved.get('phase')} from "
                         f"{saved['checkpoint']}")
            else:
                where = "no checkpoint yet: the same command starts over"
            raise RunInterrupted(f"interrupted; {where}") from None


# What TensorFlow raises on the surviving workers when a peer dies mid-collective.
CLUSTER_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError,
                  tf.errors.DeadlineExceededError)


def worker_lost_error(saver: RunCheckpoint, err: tf.errors.OpError) -> WorkerLost:
    """`err` (a collective aborted because a worker is gone) as one line: which task
    TensorFlow reports unhealthy, and that the same command on every worker resumes from the
    last checkpoint the chief wrote."""
    text = str(err)
    tail = text.split("unhealthy", 1)[1] if "unhealthy" in text else ""
    tasks = sorted(set(re.findall(r"/job:\w+/replica:\d+/task:\d+", tail)))
    who = (f"worker {', '.join(tasks)} stopped sending heartbeats" if tasks else
           f"a collective failed ({text.strip().splitlines()[0] if text.strip() else type(err).__name__})")
    saved = saver.read_state()
    resume = (f"the last checkpoint ({saved['checkpoint']}, phase {saved.get('phase')}) is "
              "kept: start the same command on every worker to resume from it"
              if saved and saved.get("checkpoint") else
              "no checkpoint yet: the same command on every worker starts over")
    return WorkerLost(f"multi-worker run: {who}; {resume}")


# What reading a converted dataset raises mid-run: a record whose CRC fails, an image that does
# not decode, a shard that is gone (the dataset was replaced while the run read it).
DATA_ERRORS = (tf.errors.DataLossError, tf.errors.InvalidArgumentError,
               tf.errors.NotFoundError)


def corrupt_data_error(config: RunConfig, saver: RunCheckpoint,
                       err: tf.errors.OpError) -> Optional[DatasetError]:
    """One of `DATA_ERRORS` as one `DatasetError` naming the shard and record (found by
    reading the dataset once, `records.find_bad_record`) or the shard that disappeared, and
    where the run resumes; None when the data is not at fault (the error is re-raised)."""
    saved = saver.read_state()
    resume = (f"the last checkpoint ({saved['checkpoint']}, phase {saved.get('phase')}) is "
              "kept and the same command resumes from it"
              if saved and saved.get("checkpoint") else
              "no checkpoint yet: the same command starts over")
    first = records.op_error_reason(err)
    if isinstance(err, tf.errors.NotFoundError):
        gone = first.rpartition("; ")[0]
        if not any(gone.startswith(os.path.join(os.path.abspath(d), "")) or
                   gone.startswith(os.path.join(d, "")) for d in config.data_dirs):
            return None
        return DatasetError(gone, None, "disappeared while the run read it (was the dataset "
                            f"converted again with --overwrite?); {resume}", kind="bad_shard")
    found = records.find_bad_record(config.data_dirs)
    hint = f"convert the dataset again; {resume}"
    if found is not None:
        return DatasetError(found.path, found.where, f"{found.reason}; {hint}",
                            kind="bad_shard")
    if not isinstance(err, tf.errors.DataLossError):
        return None
    return DatasetError(",".join(config.data_dirs), None,
                        f"a record failed to read ({first}); {hint}", kind="bad_shard")


class _CtrlC:
    """Makes one Ctrl-C (SIGINT) always end the run. Python raises KeyboardInterrupt wherever
    the main thread is when its handler runs; inside a finaliser (``__del__`` of a TensorFlow
    object collected at that moment) the exception is swallowed, and the run went on to the
    end. So the handler also records the request, and the next checkpoint raises it again.
    Active in the main thread during `run` (a context manager; the old handler comes back)."""

    def __init__(self):
        self.pending, self._previous = False, None

    def _handler(self, signum, frame):
        self.pending = True
        raise KeyboardInterrupt

    def raise_if_pending(self) -> None:
        if self.pending:
            raise KeyboardInterrupt

    def __enter__(self):
        self.pending = False
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        self.pending = False
        return False


_CTRL_C = _CtrlC()


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during a run; the message says where the run resumes."""


def _run_phases(config: RunConfig, data: Data, method: Method, space: SearchSpace,
                saver: RunCheckpoint, strategy: tf.distribute.Strategy,
                out: Callable[[str], None]) -> Dict:
    meta, n = data.meta, data.meta.num_attributes
    saved = saver.restore_state()
    state = RunState.from_dict(saved) if saved else RunState()
    state.run_id = state.run_id or uuid.uuid4().hex
    h, w, _ = data.image_shape
    # `--space` describes what GNAS, random search and the fixed trees search; branching and
    # GALM build networks of their own (their flags say which).
    per_round = space.evaluations_per_round(
        n, method.round_layers(space, n, config.method_config()))
    searched = (f"space {space.name}: {scientific(space.num_trees(n))} trees, "
                f"{per_round} evaluations per round"
                if method.uses_supernet or method.fixed else method.summary.rstrip("."))
    out(f"{config.method} on {meta.name} ({n} attributes, {h}x{w}), {searched}, "
        f"{strategy.num_replicas_in_sync} replica(s)"
        + (f"; resuming at phase {state.phase} from {saver.directory}" if state.resumed
           else ""))
    for note in data.notes:
        out(note)
    current = _Run(config, data, method, saver, state, strategy, out)
    while True:
        try:
            return current.phases()
        except NumericalError as err:
            saved = saver.read_state()
            state = RunState.from_dict(saved) if saved else RunState(run_id=current.state.run_id)
            state.numerical_errors = current.state.numerical_errors + [{
                "where": err.where, "message": str(err),
                "resumable_from": saved.get("checkpoint") if saved else None}]
            if config.on_nan == "rollback" and saver.exists() \
                    and state.rollbacks < MAX_ROLLBACKS:
                state.rollbacks += 1
                state.lr_scale *= 0.5
                out(f"{err}: rolling back to {saver.latest}")
                current = _Run(config, data, method, saver, state, strategy, out)
                current.lr_factor = 0.5
                continue
            saver.save(state.to_dict())  # records where; keeps the last good weights
            raise NumericalError(
                f"{err}; the last good checkpoint {saver.latest or '(none yet)'} "
                f"is kept and {saver.state_path} records where it happened", err.where)
