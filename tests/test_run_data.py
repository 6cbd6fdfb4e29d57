"""The data side wired into the run: any converted dataset (own name, own data) searched end to
end with a resize, and several datasets searched as one whose loss ignores the attributes a
record's dataset does not label."""

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from gnas_keras.config import CandidateConfig, RunConfig
from gnas_keras.training.data import Data
from gnas_keras.methods.gnas import GnasConfig
from gnas_keras.models.losses import masked_cross_entropy
from gnas_keras_pipelines import records
from tests import fixtures_datasets as fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT}


def binary(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=600)


def test_search_on_own_folder_dataset_with_its_name_and_a_resize(tmp_path):
    rng = np.random.default_rng(0)
    rows = [f"img{i}.jpg," + ",".join(str(v) for v in rng.choice([1, 0, -1], 3))
            for i in range(30)]
    fx.make_folder(str(tmp_path / "src"), rows, size=(40, 32))
    converted = binary("flags.convert", "--dataset=folder", "--name=my_faces",
                       f"--source_dir={tmp_path / 'src' / 'images'}",
                       f"--labels={tmp_path / 'src' / 'labels.csv'}",
                       f"--output_dir={tmp_path / 'tfr'}", "--num_shards=1")
    assert converted.returncode == 0, converted.stderr[-2000:]
    result = binary("flags.search", f"--data_dir={tmp_path / 'tfr'}", "--dataset=my_faces",
                    f"--workdir={tmp_path / 'run'}", f"--export_dir={tmp_path / 'export'}",
                    "--image_height=24", "--image_width=20", "--batch_size=4",
                    "--eval_batch_size=8", "--train_steps=1", "--val_batches=1",
                    "--max_rounds=1", "--finetune_steps=1",
                    "--search_only=fc1")  # the data is under test here, not the search
    assert result.returncode == 0, result.stderr[-3000:]
    assert "gnas on my_faces (3 attributes, 21x18)" in result.stderr
    report = json.load(open(tmp_path / "run" / "report.json"))
    assert report["dataset"] == "my_faces" and report["attribute_names"] == fx.FOLDER_ATTRIBUTES
    # 40x32 images resized to 24x20; the default crop (0.875 of the metadata size) scales
    # along; own data has no flips unless asked for.
    assert report["preprocessing"] == {"height": 24, "width": 20, "crop_height": 21,
                                       "crop_width": 18, "flip": False}
    assert report["input_shape"] == [21, 18, 3]
    assert report["export"].endswith(os.path.join("export", "my_faces_gnas", "1"))
    info = json.load(open(os.path.join(report["export"], "export.json")))
    assert info["preprocessing"]["height"] == 24 and info["preprocessing"]["crop_width"] == 18
    # A different expected name is refused in one line before any work.
    refused = binary("flags.search", f"--data_dir={tmp_path / 'tfr'}", "--dataset=celeba",
                     f"--workdir={tmp_path / 'run2'}", "--export_dir=")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"search: error: dataset: {tmp_path / 'tfr'} holds dataset 'my_faces', not 'celeba'"]
    assert not os.path.exists(tmp_path / "run2" / "checkpoints")


A = [[1, 0], [0, 1], [1, 1], [0, 0]] * 3
B = [[1, -1, 0], [0, 1, 1], [1, 1, 0]] * 2


def two_datasets(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    fx.write_tiny(a, "faces", ["Smiling", "Hat"], {s: A for s in records.SPLITS}, shade=0)
    fx.write_tiny(b, "people", ["Hat", "Bag", "Coat"], {s: B for s in records.SPLITS},
                  size=(20, 12), shade=100)
    return a, b


def test_two_dataset_search_loss_ignores_the_other_datasets_attributes(tmp_path):
    from gnas_keras.run import run

    a, b = two_datasets(tmp_path)
    config = RunConfig(data_dir=f"{a},{b}", workdir=str(tmp_path / "run"), export_dir="",
                       image_height=16, image_width=16, batch_size=6, eval_batch_size=6,
                       finetune_steps=2, space="tiny",
                       candidates=CandidateConfig(train_steps=1, val_batches=1))
    config.methods["gnas"] = GnasConfig(max_rounds=1, search_only="fc1")  # 4 candidates
    data = Data.load(config)
    assert data.meta.name == "faces+people"
    assert data.meta.attribute_names == ["Smiling", "faces/Hat", "people/Hat", "Bag", "Coat"]
    # The training batches the run trains on: each row labels only its own dataset's columns.
    _, labels = next(iter(data.train(0)))
    labels = labels.numpy()
    from_a = (labels[:, 2:] == -1).all(1)
    from_b = (labels[:, :2] == -1).all(1)
    assert (from_a ^ from_b).all()
    # The run's loss is unchanged whatever the model says about the unlabelled columns, and
    # its gradient there is exactly zero.
    logits = tf.Variable(tf.random.stateless_normal([*labels.shape, 2], seed=[0, 1]))
    with tf.GradientTape() as tape:
        loss = masked_cross_entropy(tf.constant(labels), logits)
    gradient = tape.gradient(loss, logits).numpy()
    assert np.all(gradient[labels == -1] == 0) and np.any(gradient[labels >= 0] != 0)
    changed = logits + 100.0 * tf.cast(tf.constant(labels == -1)[..., None], tf.float32)
    assert float(masked_cross_entropy(tf.constant(labels), changed)) == float(loss)

    report = run(config, out=lambda line: None)
    assert report["dataset"] == "faces+people" and report["num_attributes"] == 5
    assert report["input_shape"] == [14, 14, 3]  # faces' 10x8 crop 9x7, scaled to 16x16
    assert set(report["test_error"]) == set(data.meta.attribute_names)
    predictions = np.load(tmp_path / "run" / "test_predictions.npz")
    # test split: faces' records then people's, each unknown for the other's attributes
    assert (predictions["labels"][:len(A), 2:] == -1).all()
    assert (predictions["labels"][len(A):, :2] == -1).all()


def test_cross_domain_branching_over_two_datasets(tmp_path):
    """Adaptive branching's cross-domain training (Lu et al. sec. 4.3): one branched model
    over two datasets at once. Tasks of different datasets are never labelled together, so
    their Eq. 6 affinity is the unobserved value (0.5), and the run ends with one model that
    predicts every attribute of both."""
    from gnas_keras.methods.branching import BranchingConfig
    from gnas_keras.run import run

    a, b = two_datasets(tmp_path)
    config = RunConfig(data_dir=f"{a},{b}", workdir=str(tmp_path / "run"), export_dir="",
                       method="branching", image_height=16, image_width=16, batch_size=6,
                       eval_batch_size=6, finetune_steps=1, compare=(),
                       methods={"branching": BranchingConfig(
                           thin_layout="small", omega=4, iterations_per_round=3,
                           branch_unit_cost=0.0, max_widening_rounds=1)})
    report = run(config, out=lambda line: None)
    assert report["num_attributes"] == 5 and set(report["test_error"]) == {
        "Smiling", "faces/Hat", "people/Hat", "Bag", "Coat"}
    affinity = np.array(report["widening_rounds"][0]["task_affinity"])
    faces, people = [0, 1], [2, 3, 4]
    # (were the unknown labels read as 0, these pairs would be measured like any other)
    np.testing.assert_array_equal(affinity[np.ix_(faces, people)], 0.5)
    np.testing.assert_array_equal(affinity, affinity.T)
