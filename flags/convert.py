"""Converts a dataset from its native layout to the project's TFRecords.

    python -m flags.convert --dataset=celeba --source_dir=~/data/celeba \
        --output_dir=~/data/celeba_tfrecords

Datasets: celeba, lfwa, market1501, awa2, awa1, apy, sun (see docs/datasets.md for the files
each needs), and ``folder``, your own images with a CSV of labels::

    python -m flags.convert --dataset=folder --name=faces --source_dir=~/faces \
        --labels=~/faces/labels.csv --output_dir=~/data/faces_tfrecords

An existing ``--output_dir`` is replaced (with ``--overwrite``) only if it holds a converted
dataset, and never when it is the source folder or above it. Bad input, a missing file or a
bad flag prints one line to stderr and exits with status 2.
"""

from __future__ import annotations

import os

# Every image is decoded by TensorFlow (`convert_common.decode_pixels`); a broken one is
# reported as one line naming the file, and TensorFlow's own native error log for it
# ("Premature end of JPEG data") would only add a second, nameless line.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from gnas_keras_flags import common  # noqa: E402  (first: quiets TensorFlow's start-up logging)

from absl import flags  # noqa: E402

from gnas_keras_pipelines import output_dir as output_dirs  # noqa: E402

DATASETS = ("celeba", "lfwa", "market1501", "awa2", "awa1", "apy", "sun", "folder")

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", None, DATASETS, "Dataset to convert.")
flags.DEFINE_string("source_dir", None, "Folder with the dataset as downloaded.")
flags.DEFINE_string("output_dir", None, "Folder to create with the TFRecords and metadata.")
flags.DEFINE_boolean("overwrite", False, "Replace an existing output_dir that holds a "
                     "converted dataset (never the source folder or a folder above it).")
flags.DEFINE_boolean("skip_bad", False,
                     "Skip and count bad items (unreadable images, malformed lines, labels "
                     "outside their encoding) instead of stopping.")
flags.DEFINE_integer("num_shards", 8, "TFRecord shards of the largest split; smaller splits "
                     "get proportionally fewer.", lower_bound=1)
flags.DEFINE_integer("split_seed", 0, "Seed of every random split (market1501, awa*, apy, "
                     "sun, folder).")
flags.DEFINE_integer("lfwa_num_train", 5000, "LFWA: training indices used for train; the rest "
                     "of them are validation.", lower_bound=0)
flags.DEFINE_integer("market_val_identities", 75, "Market-1501: training identities held out "
                     "for validation.", lower_bound=0)
flags.DEFINE_float("awa_val_ratio", 0.1, "AwA1/2: fraction of the training classes' images "
                   "held out for validation.", lower_bound=0.0, upper_bound=0.99)
flags.DEFINE_float("apy_val_ratio", 0.1, "aPY: fraction of apascal_train images held out for "
                   "validation.", lower_bound=0.0, upper_bound=0.99)
flags.DEFINE_boolean("apy_include_ayahoo", True, "aPY: add ayahoo_test.txt to the test split.")
flags.DEFINE_float("sun_threshold", 0.5, "SUN: attribute is 1 when its vote fraction is >= "
                   "this.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_float("sun_val_ratio", 0.1, "SUN: fraction of scene classes for validation.",
                   lower_bound=0.0, upper_bound=0.99)
flags.DEFINE_float("sun_test_ratio", 0.2, "SUN: fraction of scene classes for test.",
                   lower_bound=0.0, upper_bound=0.99)
flags.DEFINE_string("name", None, "folder: the dataset's name (letters, digits, _ . -), "
                    "as the search and reports show it.")
flags.DEFINE_string("labels", None, "folder: the labels CSV ('image,<attribute names...>"
                    "[,split]'); default <source_dir>/labels.csv.")
flags.DEFINE_enum("label_values", "auto", ("auto", "1/0/-1", "1/-1"), "folder: how the CSV "
                  "encodes labels (blank is always unknown): 1/0/-1 = yes/no/unknown, 1/-1 = "
                  "yes/no (CelebA), auto = 1/-1 unless a 0 occurs.")
flags.DEFINE_boolean("allow_outside_source", False, "folder: read CSV image paths that are "
                     "absolute or climb out of --source_dir (refused by default).")
flags.DEFINE_float("folder_val_ratio", 0.1, "folder without a split column: fraction of "
                   "images for validation.", lower_bound=0.0, upper_bound=0.99)
flags.DEFINE_float("folder_test_ratio", 0.1, "folder without a split column: fraction of "
                   "images for test.", lower_bound=0.0, upper_bound=0.99)
for _name in ("dataset", "source_dir", "output_dir"):
    flags.mark_flag_as_required(_name)


def convert() -> object:
    """Calls the dataset's converter with the flags that concern it."""
    source, output = os.path.expanduser(FLAGS.source_dir), os.path.expanduser(FLAGS.output_dir)
    labels = os.path.expanduser(FLAGS.labels) if FLAGS.labels else None
    # Checked before TensorFlow loads: a refused --output_dir fails at once.
    output_dirs.check_output_dir(output, FLAGS.overwrite, protected=[
        source, os.path.dirname(os.path.abspath(labels)) if labels else None])
    if FLAGS.dataset != "folder" and (FLAGS.name or FLAGS.labels or
                                      FLAGS.allow_outside_source):
        raise ValueError(f"--name, --labels and --allow_outside_source are for "
                         f"--dataset=folder, not --dataset={FLAGS.dataset}")
    # Imported here so a bad flag fails fast, without loading TensorFlow.
    from gnas_keras_pipelines import apy, awa, celeba, folder, lfwa, market1501, sun

    shared = dict(overwrite=FLAGS.overwrite, skip_bad=FLAGS.skip_bad,
                  num_shards=FLAGS.num_shards)
    seed = FLAGS.split_seed
    calls = {
        "celeba": lambda: celeba.convert(source, output, **shared),
        "lfwa": lambda: lfwa.convert(source, output, num_train=FLAGS.lfwa_num_train, **shared),
        "market1501": lambda: market1501.convert(
            source, output, val_identities=FLAGS.market_val_identities, seed=seed, **shared),
        "awa2": lambda: awa.convert(source, output, name="awa2", val_ratio=FLAGS.awa_val_ratio,
                                    seed=seed, **shared),
        "awa1": lambda: awa.convert(source, output, name="awa1", val_ratio=FLAGS.awa_val_ratio,
                                    seed=seed, **shared),
        "apy": lambda: apy.convert(source, output, val_ratio=FLAGS.apy_val_ratio, seed=seed,
                                   include_ayahoo=FLAGS.apy_include_ayahoo, **shared),
        "sun": lambda: sun.convert(source, output, threshold=FLAGS.sun_threshold,
                                   val_ratio=FLAGS.sun_val_ratio,
                                   test_ratio=FLAGS.sun_test_ratio, seed=seed, **shared),
        "folder": lambda: folder.convert(
            source, output, name=FLAGS.name, labels=labels, label_values=FLAGS.label_values,
            val_ratio=FLAGS.folder_val_ratio, test_ratio=FLAGS.folder_test_ratio, seed=seed,
            allow_outside_source=FLAGS.allow_outside_source, **shared),
    }
    return calls[FLAGS.dataset]()


def main(argv):
    metadata = convert()
    print(f"{metadata.name}: {metadata.split_sizes} -> {FLAGS.output_dir}")


def cli() -> None:
    """The console script `gnas-convert` (`python -m flags.convert` in a checkout)."""
    common.run(main)


if __name__ == "__main__":
    cli()
