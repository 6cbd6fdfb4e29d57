r"""Search (or train a fixed tree), fine-tune, test and export: one run of `gnas_keras.run`.

    python -m flags.search --flagfile=flagfiles/synthetic.flags
    python -m flags.search --dataset=celeba --data_dir=data/celeba --space=shallow_thin \
        --workdir=runs/celeba --train_steps=2000 --max_rounds=150
"""

from __future__ import annotations

from flags import common  # first: quiets TensorFlow's start-up logging

from absl import flags

from gnas_keras.config import METHODS, STRATEGIES, RunConfig
from gnas_keras.gnas import GnasConfig
from gnas_keras.space import PRESETS
from pipelines.input import PREPROCESSING

FLAGS = flags.FLAGS
d = RunConfig()
g = GnasConfig()
flags.DEFINE_enum("dataset", d.dataset, sorted(PREPROCESSING), "Dataset name.")
flags.DEFINE_string("data_dir", d.data_dir, "Converted dataset (TFRecords + metadata.json).")
flags.DEFINE_bool("generate_synthetic", True,
                  "With --dataset=synthetic: generate the set at --data_dir if it is missing.")
flags.DEFINE_string("workdir", d.workdir, "Run directory: TensorBoard, tree.json, report.json.")
flags.DEFINE_string("export_dir", d.export_dir, "SavedModel base directory ('' = no export).")
flags.DEFINE_string("export_name", d.export_name, "Model name (default <dataset>_<method>).")
flags.DEFINE_enum("method", d.method, list(METHODS), "Search method or fixed tree.")
flags.DEFINE_enum("space", d.space, sorted(PRESETS), "Search space preset.")
flags.DEFINE_integer("num_attributes", d.num_attributes,
                     "Expected number of attributes (0 = whatever the data has).")
flags.DEFINE_integer("batch_size", d.batch_size, "Global training batch size.")
flags.DEFINE_integer("eval_batch_size", d.eval_batch_size, "Evaluation batch size.")
flags.DEFINE_float("learning_rate", d.learning_rate, "SGD learning rate.")
flags.DEFINE_float("momentum", d.momentum, "Nesterov momentum.")
flags.DEFINE_float("weight_decay", d.weight_decay, "L2 on the weights the tree uses.")
flags.DEFINE_float("dropout", d.dropout, "Dropout rate after fc1 and fc2.")
flags.DEFINE_integer("crop_height", d.crop_height, "Crop height (0 = dataset default).")
flags.DEFINE_integer("crop_width", d.crop_width, "Crop width (0 = dataset default).")
flags.DEFINE_enum("flip", "default", ["default", "true", "false"], "Random horizontal flip.")
flags.DEFINE_integer("train_steps", g.train_steps, "K: training batches per candidate.")
flags.DEFINE_integer("val_batches", g.val_batches, "V: validation batches per candidate.")
flags.DEFINE_integer("max_rounds", g.max_rounds, "Round cap.")
flags.DEFINE_integer("patience", g.patience, "Stop after this many unchanged rounds.")
flags.DEFINE_float("lr_decay", g.lr_decay, "Learning rate factor per round.")
flags.DEFINE_integer("warmup_steps", g.warmup_steps, "Steps on random trees before round 1.")
flags.DEFINE_integer("warmup_resample", g.warmup_resample, "Warm-up steps per random tree.")
flags.DEFINE_bool("fixed_val_batches", g.fixed_val_batches,
                  "Evaluate every candidate on the same V validation batches.")
flags.DEFINE_integer("finetune_steps", d.finetune_steps, "Fine-tune steps on train+validation.")
flags.DEFINE_float("finetune_lr", d.finetune_lr, "Fine-tune learning rate (0 = keep).")
flags.DEFINE_list("compare", list(d.compare), "Fixed trees trained from scratch to compare.")
flags.DEFINE_integer("compare_steps", d.compare_steps, "Steps for each from-scratch tree.")
flags.DEFINE_integer("random_trials", d.random_trials,
                     "Random search trials (0 = GNAS's budget: max_rounds x evaluations/round).")
flags.DEFINE_enum("strategy", d.strategy, list(STRATEGIES), "tf.distribute strategy.")
flags.DEFINE_integer("seed", d.seed, "Random seed.")
flags.DEFINE_bool("deterministic", d.deterministic,
                  "TensorFlow op determinism: identical results, also across resumption.")
flags.DEFINE_integer("checkpoint_every", d.checkpoint_every,
                     "Also checkpoint every this many candidate evaluations (0 = only at "
                     "layer/round boundaries and training chunks).")
flags.DEFINE_enum("on_nan", d.on_nan, ["stop", "rollback"],
                  "On a NaN/Inf loss: stop (keep the last good checkpoint) or roll back to it "
                  "with half the learning rate.")
flags.DEFINE_bool("restart", d.restart,
                  "Start over even if --workdir holds a checkpointed run (default: resume).")


def config_from_flags() -> RunConfig:
    return RunConfig(
        dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, workdir=FLAGS.workdir,
        export_dir=FLAGS.export_dir, export_name=FLAGS.export_name, method=FLAGS.method,
        space=FLAGS.space, num_attributes=FLAGS.num_attributes, batch_size=FLAGS.batch_size,
        eval_batch_size=FLAGS.eval_batch_size,
        learning_rate=FLAGS.learning_rate, momentum=FLAGS.momentum,
        weight_decay=FLAGS.weight_decay, dropout=FLAGS.dropout,
        crop_height=FLAGS.crop_height, crop_width=FLAGS.crop_width,
        flip=None if FLAGS.flip == "default" else FLAGS.flip == "true",
        gnas=GnasConfig(train_steps=FLAGS.train_steps, val_batches=FLAGS.val_batches,
                        max_rounds=FLAGS.max_rounds, patience=FLAGS.patience,
                        lr_decay=FLAGS.lr_decay, warmup_steps=FLAGS.warmup_steps,
                        warmup_resample=FLAGS.warmup_resample,
                        fixed_val_batches=FLAGS.fixed_val_batches),
        finetune_steps=FLAGS.finetune_steps, finetune_lr=FLAGS.finetune_lr,
        compare=tuple(FLAGS.compare), compare_steps=FLAGS.compare_steps,
        random_trials=FLAGS.random_trials,
        strategy=FLAGS.strategy, seed=FLAGS.seed, deterministic=FLAGS.deterministic,
        checkpoint_every=FLAGS.checkpoint_every, on_nan=FLAGS.on_nan, restart=FLAGS.restart)


def print_summary(report) -> None:
    lines = [
        "", "== summary ==", report["tree_text"],
        f"method {report['method']} on {report['dataset']}: mean test error "
        f"{report['mean_test_error']:.4f}, {report['parameters']:,} parameters, "
        f"search {report['search_seconds']:.0f} s",
    ]
    if "ari" in report:
        lines.append(f"ARI to the planted groups at {report['ari_layer']}: {report['ari']:.3f}")
    for name, c in report["comparisons_from_scratch"].items():
        ari = f", ARI {c['ari']:.3f}" if "ari" in c else ""
        lines.append(f"from scratch, {report['compare_steps']} steps: {name:12s} mean test "
                     f"error {c['mean_test_error']:.4f}, {c['parameters']:,} parameters{ari}")
    lines.append(f"run directory {FLAGS.workdir} (tensorboard --logdir {FLAGS.workdir})")
    if report["export"]:
        lines.append(f"SavedModel {report['export']}")
    print("\n".join(lines), flush=True)


def main(argv):
    config = config_from_flags()
    config.validate()
    if config.dataset == "synthetic" and FLAGS.generate_synthetic:
        from pipelines import synthetic
        synthetic.ensure_generated(config.data_dir)
    from gnas_keras.run import run  # imports TensorFlow: after the cheap checks
    print_summary(run(config))


if __name__ == "__main__":
    common.run(main)
