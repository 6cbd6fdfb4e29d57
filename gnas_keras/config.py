"""One config object for a run: the binaries build it from flags, the library reads only it.

Every setting is written once, here or in a method's config dataclass
(`gnas_keras.methods`): a field's default, its help text (``metadata["help"]``) and its
allowed values (``metadata["choices"]``). ``flags/dataclass_flags.py`` derives the absl flags
from these dataclasses (`gnas_keras.settings.setting`). No TensorFlow is imported.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Optional, Tuple

from gnas_keras.methods import REGISTRY, default_configs, fixed_methods
from gnas_keras.methods.gnas import layer_names
from gnas_keras.settings import (BN_EPSILON, BN_MOMENTUM, CandidateConfig,  # noqa: F401
                                 check_choices, setting)
from gnas_keras.space.search_space import get_space

STRATEGIES = ("default", "mirrored", "multiworker")
ON_NAN = ("stop", "rollback")
AUTO_SPACE = "auto"  # `RunConfig.space`'s default: the preset `space_for_data` picks


def space_for_data(dataset: str, image_shape: Tuple[int, ...]) -> str:
    """The search space preset that ``--space=auto`` (the default) picks for a dataset:
    ``tiny`` for the built-in synthetic set (shaped for its planted groups, see
    docs/planted_set.md) and for images under 32 px a side, ``small`` for any other data
    (real images at 32-64 px on a CPU: it keeps where things are in the image, see
    `gnas_keras.space.search_space`). `image_shape` is the working (cropped) [h, w, c]."""
    if dataset == "synthetic" or min(image_shape[:2]) < 32:
        return "tiny"
    return "small"


@dataclasses.dataclass
class RunConfig:
    """Everything a run needs. `methods` holds each registered method's own config
    (`gnas_keras.methods.REGISTRY`), keyed by method name."""

    dataset: str = setting("", "Expected dataset name, checked against data_dir's "
                               "metadata.json ('' = whatever data_dir holds). Any converted "
                               "dataset is searchable; the known sets (pipelines.input."
                               "PREPROCESSING) keep their table defaults, others take theirs "
                               "from the metadata. Several datasets: their names joined by "
                               "'+'.")
    data_dir: str = setting("data/synthetic", "Converted dataset (TFRecords + metadata.json); "
                                              "several comma-separated folders are read as one "
                                              "dataset (attributes concatenated, each record's "
                                              "attributes from the other folders unknown).")
    check_images: bool = setting(True, "Before the run, read every record of data_dir and "
                                       "decode its image as training will, so that a "
                                       "damaged shard or an image that does not decode is "
                                       "named at once, not mid-search (one parallel pass; "
                                       "minutes for CelebA). --nocheck_images skips it.")
    workdir: str = setting("runs/synthetic_gnas", "Run directory: TensorBoard, checkpoints, "
                                                  "tree.json, report.json.")
    export_dir: str = setting("saved_models", "SavedModel base directory ('' = no export).")
    export_name: str = setting("", "Model name under export_dir (default <dataset>_<method>).")
    export_fused: bool = setting(True, "Export the fused graph (gnas_keras.models.fused: sibling "
                                       "blocks as one convolution, per-attribute fc layers "
                                       "as one batched matmul; the same function, fewer "
                                       "ops) instead of one layer per block.")
    export_max_pixels: int = setting(4096 * 4096, "The export's serving_bytes signature "
                                                  "decodes images up to this many pixels "
                                                  "(height x width); a larger one is an "
                                                  "error before it is decoded (a 10000x10000 "
                                                  "PNG would take more than 1 GB).")
    method: str = setting("gnas", "Search method or fixed tree (gnas_keras.methods).")
    space: str = setting(AUTO_SPACE, "Search space preset (gnas_keras.space.search_space); "
                                     "'auto' = tiny for the built-in synthetic set, small for "
                                     "other data of 32 px or more (config.space_for_data).")
    num_attributes: int = setting(0, "Expected number of attributes (0 = whatever the data "
                                     "has); a flagfile pointed at other data fails early.")
    batch_size: int = setting(64, "Global training batch size (all replicas together).")
    eval_batch_size: int = setting(256, "Evaluation batch size.")
    learning_rate: float = setting(0.1, "SGD learning rate (paper: 0.1).")
    momentum: float = setting(0.9, "Nesterov momentum (paper: 0.9).")
    weight_decay: float = setting(1e-4, "L2 on the weights the tree uses (paper: 1e-4).")
    dropout: float = setting(0.0, "Dropout rate after fc1 and fc2 (paper: 0.75 for LFWA and "
                                  "Market-1501).")
    bn_momentum: float = setting(BN_MOMENTUM, "Batch-norm moving-average momentum, Keras convention: "
                                      "0.9 = PyTorch's default momentum=0.1, what the paper's "
                                      "code used (Keras' own default is 0.99).")
    bn_epsilon: float = setting(BN_EPSILON, "Batch-norm epsilon (PyTorch's default, as the paper; "
                                      "Keras' is 1e-3).")
    image_height: int = setting(0, "Working height every image is resized to before "
                                   "cropping (0 = dataset default; one of height/width keeps "
                                   "the aspect ratio; the default crop scales along).")
    image_width: int = setting(0, "Working width every image is resized to (0 = dataset "
                                  "default).")
    crop_height: int = setting(0, "Crop height (0 = dataset default).")
    crop_width: int = setting(0, "Crop width (0 = dataset default).")
    flip: Optional[bool] = setting(None, "Random horizontal flip (None = dataset default).")
    candidates: CandidateConfig = dataclasses.field(default_factory=CandidateConfig)
    methods: Dict[str, Any] = dataclasses.field(default_factory=default_configs)
    finetune_steps: int = setting(1000, "Fine-tune steps on train+validation for the chosen "
                                        "tree.")
    finetune_lr: float = setting(0.0, "Fine-tune learning rate (0 = continue with the "
                                      "learning rate the search ended at).")
    compare: Tuple[str, ...] = setting((), "Fixed trees also trained from scratch with "
                                           "compare_steps each, beside the found tree.")
    compare_steps: int = setting(1000, "Steps for each from-scratch tree.")
    strategy: str = setting("default", "tf.distribute strategy.", choices=STRATEGIES)
    mixed_precision: bool = setting(False, "Mixed precision (Keras 'mixed_float16'): float16 "
                                           "compute, float32 variables, batch-norm statistics, "
                                           "loss and metrics; dynamic loss scaling. For GPUs "
                                           "with tensor cores; on a CPU it is slower.")
    jit_compile: bool = setting(False, "XLA-compile the train and eval steps of tree networks "
                                       "(fine-tune of a tree, from-scratch comparisons). The "
                                       "supernet never is: its row-sparse optimizer uses "
                                       "tf.unique, which XLA lacks. Not with a strategy "
                                       "(keras #19005).")
    grouped_conv: bool = setting(False, "Supernet: compute the blocks of a conv layer "
                                        "together (one grouped convolution, batch norm and "
                                        "pool over the stacked blocks) instead of one small "
                                        "kernel each; the same function, fewer kernels.")
    seed: int = setting(0, "Random seed: weights, tree draws, data order.")
    deterministic: bool = setting(False, "TensorFlow op determinism: identical results, "
                                         "also across resumption.")
    checkpoint_every: int = setting(10, "Also checkpoint every this many candidate "
                                        "evaluations (0 = only at boundaries).")
    on_nan: str = setting("stop", "On a NaN/Inf loss: stop (keep the last good checkpoint) or "
                                  "roll back to it with half the learning rate.", choices=ON_NAN)
    restart: bool = setting(False, "Start over even if workdir holds a checkpointed run "
                                   "(default: resume); the old outputs are moved to "
                                   "<workdir>/.replaced/<time>/ first.")

    def for_data(self, dataset: str, image_shape: Tuple[int, ...]) -> "RunConfig":
        """This config with ``space='auto'`` replaced by `space_for_data`'s preset."""
        if self.space != AUTO_SPACE:
            return self
        return dataclasses.replace(self, space=space_for_data(dataset, image_shape))

    def method_config(self, name: Optional[str] = None) -> Any:
        """The config of method `name` (default: this run's method); None if it has none."""
        return self.methods.get(name or self.method)

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self)

    @property
    def data_dirs(self) -> Tuple[str, ...]:
        """The folders of `data_dir` (one, or several comma-separated)."""
        return tuple(d.strip() for d in self.data_dir.split(",") if d.strip())

    def validate(self) -> None:
        """Raises ValueError naming the offending field (the binaries add the flag name)."""
        if self.method not in REGISTRY:
            raise ValueError(f"method: {self.method!r} is not one of {tuple(REGISTRY)}")
        check_choices(self)
        if self.jit_compile and self.strategy != "default":
            raise ValueError(f"jit_compile: XLA together with --strategy={self.strategy} is "
                             "broken in Keras (keras #19005); use one or the other")
        if not self.data_dirs:
            raise ValueError(f"data_dir: no folder given ({self.data_dir!r})")
        for section in (self, self.candidates, *self.methods.values()):
            for field in dataclasses.fields(section):  # NaN passes every comparison below
                value = getattr(section, field.name)
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError(f"{field.name}: must be a finite number, got {value}")
        for m in self.compare:
            if m not in fixed_methods():
                raise ValueError(f"compare: {m!r} is not one of {fixed_methods()}")
        positive = {"batch_size": self.batch_size, "eval_batch_size": self.eval_batch_size,
                    "learning_rate": self.learning_rate,
                    "export_max_pixels": self.export_max_pixels}
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name}: must be > 0, got {value}")
        nonneg = {"finetune_steps": self.finetune_steps, "compare_steps": self.compare_steps,
                  "weight_decay": self.weight_decay, "finetune_lr": self.finetune_lr,
                  "crop_height": self.crop_height, "crop_width": self.crop_width,
                  "image_height": self.image_height, "image_width": self.image_width,
                  "checkpoint_every": self.checkpoint_every, "seed": self.seed,
                  "num_attributes": self.num_attributes}
        for name, value in nonneg.items():
            if value < 0:
                raise ValueError(f"{name}: must be >= 0, got {value}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.bn_momentum < 1.0 or self.bn_epsilon <= 0:
            raise ValueError(f"bn_momentum / bn_epsilon: need 0 <= momentum < 1 and epsilon > "
                             f"0, got {self.bn_momentum} / {self.bn_epsilon}")
        self.candidates.validate()
        only = getattr(self.method_config(), "search_only", "")
        if only:  # names checked before any work; the block counts are checked by the search
            # --space=auto: the names must suit either preset it may pick
            for space in (("tiny", "small") if self.space == AUTO_SPACE else (self.space,)):
                searchable = [s.name for s in get_space(space).layers if s.searchable]
                for name in layer_names(only):
                    if name not in searchable:
                        raise ValueError(f"search_only: {name!r} is not a searchable layer "
                                         f"of space {space} ({', '.join(searchable)})")
        for name, section in self.methods.items():
            check_choices(section)
            if hasattr(section, "validate"):
                section.validate()
