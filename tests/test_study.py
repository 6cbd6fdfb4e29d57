"""The efficiency study (Fig. 4) and from-scratch curves (Fig. 5) on a tiny budget."""

import dataclasses
import json
import os

import numpy as np
import pytest
from PIL import Image

from gnas_keras.config import RunConfig
from gnas_keras.study import Curve, StudyConfig, ratios, run_study


def tiny_config(synthetic_dir, workdir, **overrides):
    run = RunConfig(data_dir=synthetic_dir, batch_size=16)
    return dataclasses.replace(StudyConfig(
        run=run, workdir=str(workdir), val_batch_size=32, val_batches=(1, 2), max_rounds=1, patience=1, random_trials=3,
        heldout_batches=1, supernet_steps=4, supernet_resample=2, scratch_steps=2,
        scratch_chunk=1, scratch_val_batches=2), **overrides)


def test_study_writes_plots_json_and_curves(synthetic_dir, tmp_path):
    lines = []
    result = run_study(tiny_config(synthetic_dir, tmp_path), out=lines.append)
    saved = json.load(open(tmp_path / "study.json"))
    assert saved["ratios"] == result["ratios"]
    labels = [(c["setting"], c["label"]) for c in saved["curves"]]
    assert labels == [(s, f"{m}-{v}") for s in ("random_init", "trained") for v in (1, 2)
                      for m in ("GNAS", "Random")]
    for c in saved["curves"]:
        assert len(c["times"]) == len(c["errors"]) == len(c["trees"]) >= 1
        assert np.all(np.diff(c["times"]) >= 0) and c["times"][-1] <= c["budget"] + 1e-6
        assert all(0.0 <= e <= 1.0 for e in c["errors"])
    # GNAS and random search start from the same random tree (same seed), so the same error.
    for setting in ("random_init", "trained"):
        starts = {c["errors"][0] for c in saved["curves"] if c["setting"] == setting}
        assert len(starts) == 1
    assert len(saved["ratios"]) == 4
    for r in saved["ratios"]:
        t = r["gnas_seconds_to_random_final_error"]
        assert r["ratio"] is None or r["ratio"] == pytest.approx(t / r["random_budget_seconds"])
    scratch = saved["scratch"]
    assert scratch["setting"] == "trained" and set(scratch["curves"]) == {"GNAS-2", "Random-2"}
    for curve in scratch["curves"].values():
        assert curve["steps"] == [0, 1, 2] and len(curve["errors"]) == 3
    for name in ("efficiency.png", "scratch.png"):
        with Image.open(tmp_path / name) as image:
            image.verify()
    assert any(f.startswith("events") for f in os.listdir(tmp_path / "tensorboard"))
    # Every ratio is printed with its own numbers: "never" exactly when GNAS did not get there.
    for r in result["ratios"]:
        line = next(line for line in lines if line.startswith(
            f"{r['setting']}: Random-{r['val_batches']} ends at {r['random_final_error']:.4f}"))
        reached = line.split("gets there: ")[1]
        assert reached == ("never" if r["ratio"] is None else
                           f"{r['gnas_seconds_to_random_final_error']:.1f} s = "
                           f"{r['ratio']:.3f} of it")
    assert run_config_of(saved)["eval_batch_size"] == 32


def run_config_of(study_json):
    return study_json["config"]["run"]


def test_ratio_is_time_to_random_final_error_over_random_budget():
    gnas = Curve("random_init", "gnas", 5, [1.0, 3.0, 8.0], [0.5, 0.4, 0.3], [None] * 3, 10.0,
                 [[]] * 3)
    rand = Curve("random_init", "random", 5, [1.0, 50.0], [0.5, 0.4], [0.5, 0.4], 100.0,
                 [[]] * 2)
    never = Curve("random_init", "random", 1, [1.0], [0.1], [0.1], 20.0, [[]])
    gnas1 = dataclasses.replace(gnas, val_batches=1)
    found = {r["val_batches"]: r for r in ratios([gnas, rand, gnas1, never])}
    assert found[5]["gnas_seconds_to_random_final_error"] == 3.0
    assert found[5]["ratio"] == pytest.approx(0.03)
    assert found[1]["ratio"] is None


@pytest.mark.parametrize("overrides, message", [
    ({"scratch_val_batches": 5}, "scratch_val_batches: 5 is not one of val_batches"),
    ({"settings": ("trained", "warm")}, "settings: must be a subset"),
    ({"val_batches": (0,)}, "val_batches: need values >= 1"),
])
def test_bad_config_names_the_field(overrides, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        tiny_config("unused", tmp_path, **overrides).validate()


def test_heldout_must_leave_a_search_stream(synthetic_dir, tmp_path):
    with pytest.raises(ValueError, match="heldout_batches: 4 leaves no search stream"):
        run_study(tiny_config(synthetic_dir, tmp_path, heldout_batches=4))
