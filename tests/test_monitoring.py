"""What a run shows (issue 13 part 5-6): per-attribute validation accuracy per round, training
losses, one reward picture per searched layer, settings and final metrics in the HParams tab,
F1 and balanced accuracy in the report, a model card beside the export; and the metrics
behind them."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams import plugin_data_pb2

from gnas_keras.training import metrics
from gnas_keras.config import CandidateConfig, RunConfig
from gnas_keras.methods.gnas import GnasConfig


def test_f1_and_thresholds_on_hand_made_cases():
    p = np.array([[0.9, 0.2], [0.6, 0.4], [0.3, 0.45], [0.1, 0.1]])
    y = np.array([[1, 0], [0, 1], [1, 1], [0, -1]])
    # attribute 0: TP 1 (0.9), FP 1 (0.6), FN 1 (0.3) -> 2/(2+1+1); attribute 1: no TP -> 0
    np.testing.assert_allclose(metrics.f1_scores(p, y), [0.5, 0.0])
    assert np.isnan(metrics.f1_scores(np.array([[0.1]]), np.array([[0]])))[0]
    # attribute 0: 2 errors at 0.5, 1 at 0.2 and at 0.75 (midpoints) -> the one closer to
    # 0.5; attribute 1: 0.3 (between 0.2 and 0.4) makes no error.
    t = metrics.choose_thresholds(p, y)
    assert t[0] == pytest.approx(0.75) and t[1] == pytest.approx(0.3)
    errors = [np.sum((p[y[:, n] >= 0, n] > t[n]) != (y[y[:, n] >= 0, n] == 1)) for n in (0, 1)]
    assert errors == [1, 0]
    assert list(metrics.choose_thresholds(p, np.full_like(y, -1))) == [0.5, 0.5]


def test_run_shows_attributes_losses_rewards_hparams_and_writes_a_model_card(synthetic_dir,
                                                                             tmp_path):
    from gnas_keras.run import run

    config = RunConfig(data_dir=synthetic_dir, workdir=str(tmp_path / "run"),
                       export_dir=str(tmp_path / "export"), batch_size=32, eval_batch_size=64,
                       finetune_steps=2,
                       candidates=CandidateConfig(train_steps=1, val_batches=1,
                                                  warmup_steps=2, warmup_resample=1))
    config.methods["gnas"] = GnasConfig(max_rounds=1)
    lines = []
    report = run(config, out=lines.append)
    names = report["attribute_names"]
    # The terminal: plain progress lines for every long phase, a round in words, no tree.
    assert all(any(l.startswith(f"{phase}  [") for l in lines)
               for phase in ("warm-up", "search", "fine-tune"))
    assert any(re.fullmatch(r"round 1 of 1 done: (\d+ of 20 parents changed|no parent of 20 "
                            r"changed).*validation error [\d.]+ %, learning rate .*", l)
               for l in lines), lines
    assert not any("\r" in l or "fc1[0] ->" in l for l in lines)
    assert 0.0 <= report["mean_f1"] <= 1.0 and 0.0 <= report["mean_balanced_accuracy"] <= 1.0
    assert set(report["test_f1"]) == set(names)
    assert set(report["decision_thresholds"]) == set(names)

    # The run's events are in its work directory: TensorBoard names the run after it.
    runs = EventMultiplexer(size_guidance={"images": 0, "tensors": 0})
    runs.AddRunsFromDirectory(str(tmp_path))
    runs.Reload()
    assert "run" in runs.Runs()
    events = runs.GetAccumulator("run")
    tensors = set(events.Tags()["tensors"])  # TF2 summaries are stored as tensors
    assert {f"val_accuracy/{a}" for a in names} <= tensors
    assert {"train/loss", "finetune/loss", "final/mean_test_error", "final/mean_f1"} <= tensors
    # One point per candidate's training segment, described as what it is.
    losses = events.Tensors("candidate/segment_loss")
    assert [e.step for e in losses] == list(range(1, 9))  # 1 round, fc1 + conv3, 4 each
    assert all(np.isfinite(tf.make_ndarray(e.tensor_proto)) for e in losses)
    described = events.SummaryMetadata("candidate/segment_loss").summary_description
    assert "not a learning curve" in described
    assert {"rewards/conv3", "rewards/fc1"} <= tensors
    assert not any(t.startswith("reward/") for t in tensors)  # no card per edge any more
    image = events.Tensors("rewards/conv3")[0].tensor_proto.string_val
    assert image[2][:8] == b"\x89PNG\r\n\x1a\n"
    assert {"final", "settings"} <= tensors  # the final metrics as a table (Text tab)

    # The HParams tab: declared metrics, mean test error first; a handful of hparams with
    # the run's method, dataset and seed; the trial named after the work directory.
    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/experiment"]).experiment
    metrics_declared = [m.name.tag for m in experiment.metric_infos]
    assert metrics_declared[0] == "final/mean_test_error"
    assert {"final/mean_auc", "final/mean_f1"} <= set(metrics_declared)
    hparams = [h.name for h in experiment.hparam_infos]
    assert {"method", "dataset", "seed"} <= set(hparams) and len(hparams) <= 10
    session = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]).session_start_info
    assert session.group_name == "run"
    assert session.hparams["method"].string_value == "gnas"
    assert session.hparams["dataset"].string_value == "synthetic"

    card = open(os.path.join(report["export"], "model_card.md")).read()
    assert card.startswith("# Model card: synthetic_gnas")
    assert all(f"| {a} |" in card for a in names)
    assert "![tree](tree.png)" in card and "## Intended use" in card and "## Limits" in card
    assert "Bias and privacy" not in card  # synthetic shapes, not people
    assert os.path.getsize(os.path.join(report["export"], "tree.png")) > 1000


@pytest.mark.parametrize("dataset, parts, section", [
    ("celeba", (), "## Bias and privacy"),
    ("synthetic", (), None),
    ("awa2", (), None),
    ("my_shop_photos", (), "## If the images show people"),   # own data: the card can't know
    ("combined", ("sun", "market1501"), "## Bias and privacy"),
    ("combined", ("sun", "apy"), None),
])
def test_model_card_says_what_to_check_when_images_may_show_people(dataset, parts, section):
    from gnas_keras.export.model_card import model_card
    card = model_card(name="m", dataset=dataset, data_dirs=["d"], split_sizes={"test": 1},
                      attribute_names=["a"], method="gnas", space="tiny", tree_text="t",
                      input_description="x", test_error={"a": 0.1}, test_f1=None,
                      test_balanced_accuracy=None, thresholds=None, parameters=1,
                      macs_per_image=1, parts=parts)
    found = [s for s in ("## Bias and privacy", "## If the images show people") if s in card]
    assert found == ([section] if section else [])


def test_round_sentence_says_in_words_what_changed_and_by_how_much():
    from gnas_keras.training.evaluation import Evaluation
    from gnas_keras.methods.gnas import RoundResult
    from gnas_keras.reporting.reporter import round_sentence
    from gnas_keras.space.tree import Routing

    before = Routing.from_lists([[0], [0, 0], list(range(4))])
    after = Routing.from_lists([[0], [0, 1], list(range(4))])
    gains = {"layer1": np.array([0.0, 0.004])}
    errors = {"layer1": np.array([np.nan, 0.001])}
    result = RoundResult(3, after, True, 0.0961, {"layer1": np.zeros((1, 2))}, {},
                         Evaluation(0.5, np.full(4, 0.875)), 1.0, gains, errors)
    assert round_sentence(result, before, 16) == (
        "round 3 of 16 done: 1 of 2 parents changed; best switch gained 0.4 % +- 0.1 %; "
        "validation error 12.5 %, learning rate 0.0961")
    unchanged = RoundResult(4, after, False, 0.09, {}, {}, Evaluation(0.5, np.full(4, 0.9)),
                            1.0, {"layer1": np.array([0.0, 0.02])},
                            {"layer1": np.array([np.nan, 0.03])})
    assert round_sentence(unchanged, after, reward="log_likelihood").startswith(
        "round 4 done: no parent of 2 changed; best candidate would have gained 0.020 nats "
        "+- 0.030 nats;")


def test_events_go_into_the_workdir_an_old_run_keeps_its_folder_and_restart_moves_them(
        tmp_path):
    from gnas_keras import workdir
    from gnas_keras.reporting.reporter import event_dir

    new, old = tmp_path / "new", tmp_path / "old"
    (old / "tensorboard").mkdir(parents=True)
    (old / "tensorboard" / "events.out.tfevents.1.host.1.0.v2").write_bytes(b"")
    new.mkdir()
    assert event_dir(str(new)) == str(new)
    assert event_dir(str(old)) == str(old / "tensorboard")  # resumed: still one run
    (new / "events.out.tfevents.2.host.2.0.v2").write_bytes(b"")
    aside = workdir.move_aside(str(new))
    assert os.listdir(aside) == ["events.out.tfevents.2.host.2.0.v2"]
    assert not any(f.startswith("events") for f in os.listdir(new))
