r"""The efficiency study (the paper's Fig. 4) and from-scratch test curves (Fig. 5).

    python -m flags.study --data_dir=data/synthetic --workdir=runs/study

GNAS-V and Random-V (V = validation batches per evaluation) search with frozen weights, at
random init and after training a supernet on random trees; every search's current tree is
scored on a fixed held-out part of the validation split. Writes ``efficiency.png``,
``scratch.png``, ``study.json`` and ``tensorboard/`` into --workdir and prints the ratio:
time for GNAS to reach random search's final error, over random search's budget. The
defaults take a few minutes on 2 CPU cores on the synthetic set. See `gnas_keras.study`.
"""

from __future__ import annotations

from flags import common  # first: quiets TensorFlow's start-up logging

from absl import flags

from gnas_keras.config import RunConfig
from gnas_keras.space import PRESETS
from gnas_keras.study import SETTINGS, StudyConfig
from pipelines.input import PREPROCESSING

FLAGS = flags.FLAGS
d, s = RunConfig(), StudyConfig(RunConfig())
flags.DEFINE_enum("dataset", d.dataset, sorted(PREPROCESSING), "Dataset name.")
flags.DEFINE_string("data_dir", d.data_dir, "Converted dataset (TFRecords + metadata.json).")
flags.DEFINE_bool("generate_synthetic", True,
                  "With --dataset=synthetic: generate the set at --data_dir if it is missing.")
flags.DEFINE_string("workdir", "runs/study", "Output directory.")
flags.DEFINE_enum("space", d.space, sorted(PRESETS), "Search space preset.")
flags.DEFINE_integer("batch_size", d.batch_size, "Training batch size (supernet, scratch).")
flags.DEFINE_integer("eval_batch_size", 64, "Examples in one validation / test batch.")
flags.DEFINE_float("learning_rate", d.learning_rate, "SGD learning rate.")
flags.DEFINE_float("momentum", d.momentum, "Nesterov momentum.")
flags.DEFINE_float("weight_decay", d.weight_decay, "L2 on the weights the tree uses.")
flags.DEFINE_float("dropout", d.dropout, "Dropout rate after fc1 and fc2.")
flags.DEFINE_list("val_batches", [str(v) for v in s.val_batches],
                  "V of GNAS-V and Random-V: validation batches per evaluation.")
flags.DEFINE_integer("max_rounds", s.max_rounds, "GNAS round cap.")
flags.DEFINE_integer("patience", s.patience, "GNAS stops after this many unchanged rounds.")
flags.DEFINE_integer("random_trials", s.random_trials,
                     "Random search trials (0 = GNAS's budget: max_rounds x evaluations/round).")
flags.DEFINE_integer("heldout_batches", s.heldout_batches,
                     "Validation batches kept apart to score every curve.")
flags.DEFINE_list("settings", list(s.settings), f"Subset of {list(SETTINGS)}.")
flags.DEFINE_integer("supernet_steps", s.supernet_steps,
                     "Steps of supernet training on random trees for the 'trained' setting.")
flags.DEFINE_integer("supernet_resample", s.supernet_resample,
                     "New random tree every this many supernet steps.")
flags.DEFINE_integer("scratch_steps", s.scratch_steps,
                     "Fig. 5: training steps from scratch per tree (0 = skip).")
flags.DEFINE_integer("scratch_chunk", s.scratch_chunk, "Fig. 5: test every this many steps.")
flags.DEFINE_integer("scratch_val_batches", s.scratch_val_batches,
                     "Fig. 5: train the trees of GNAS-V and Random-V with this V.")
flags.DEFINE_integer("seed", d.seed, "Random seed.")


def config_from_flags() -> StudyConfig:
    try:
        val_batches = tuple(int(v) for v in FLAGS.val_batches)
    except ValueError:
        raise ValueError(f"val_batches: integers expected, got {FLAGS.val_batches}") from None
    run = RunConfig(dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, workdir=FLAGS.workdir,
                    export_dir="", space=FLAGS.space, batch_size=FLAGS.batch_size,
                    eval_batch_size=FLAGS.eval_batch_size, learning_rate=FLAGS.learning_rate,
                    momentum=FLAGS.momentum, weight_decay=FLAGS.weight_decay,
                    dropout=FLAGS.dropout, seed=FLAGS.seed)
    return StudyConfig(run=run, val_batches=val_batches, max_rounds=FLAGS.max_rounds,
                       patience=FLAGS.patience, random_trials=FLAGS.random_trials,
                       heldout_batches=FLAGS.heldout_batches, settings=tuple(FLAGS.settings),
                       supernet_steps=FLAGS.supernet_steps,
                       supernet_resample=FLAGS.supernet_resample,
                       scratch_steps=FLAGS.scratch_steps, scratch_chunk=FLAGS.scratch_chunk,
                       scratch_val_batches=FLAGS.scratch_val_batches)


def main(argv):
    config = config_from_flags()
    config.validate()
    if config.run.dataset == "synthetic" and FLAGS.generate_synthetic:
        from pipelines import synthetic
        synthetic.ensure_generated(config.run.data_dir)
    from gnas_keras.study import run_study  # the heavy work

    result = run_study(config)
    lines = ["", "== efficiency study =="]
    for r in result["ratios"]:
        t = r["gnas_seconds_to_random_final_error"]
        lines.append(
            f"{r['setting']:12s} V={r['val_batches']:<3d} Random final error "
            f"{r['random_final_error']:.4f} after {r['random_budget_seconds']:.1f} s; GNAS final "
            f"{r['gnas_final_error']:.4f} after {r['gnas_budget_seconds']:.1f} s; GNAS reaches "
            "Random's final error " + ("never" if t is None else
                                       f"at {t:.1f} s (ratio {r['ratio']:.3f})"))
    for name, curve in result["scratch"]["curves"].items():
        lines.append(f"from scratch {name:9s} test error {curve['errors'][-1]:.4f} after "
                     f"{curve['steps'][-1]} steps")
    lines.append(f"wrote {FLAGS.workdir}/efficiency.png, scratch.png, study.json, tensorboard/")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    common.run(main)
