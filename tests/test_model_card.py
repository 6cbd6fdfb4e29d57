"""The model card (`gnas_keras.export.model_card`): Mitchell et al.'s sections, 95 % Wilson intervals
checked against a hand computation, the JPEG / PNG note, and the tree's provenance stated
exactly for a tree a search kept and one it changed. In-process, no search: the card's inputs
(a method's report.json entries, the exported tree, test counts) are built by hand as
`run._Run.card_evidence` gathers them from a run; tests/test_docs_commands.py checks the card
of a real tiny run."""

import math

import pytest

from gnas_keras.export.model_card import (Provenance, image_encoding, labelled_counts, model_card,
                                   wilson_interval)

SECTIONS = ("## Model details", "## Intended use", "## Factors", "## Metrics",
            "## Quantitative analyses", "## Evaluation data", "## Training data",
            "## Ethical considerations", "## Limits: caveats and recommendations")
START = [[0, 0, 0, 0], [0, 1, 2, 3], [0, 0, 1, 1]]


def card(provenance, dataset="synthetic", method="gnas"):
    return model_card(
        name="run", dataset=dataset, data_dirs=["data/x"],
        split_sizes={"train": 800, "validation": 100, "test": 100},
        attribute_names=["a", "b", "c"], method=method, space="tiny", tree_text="tree",
        input_description="RGB images, 32x32", test_error={"a": 0.10, "b": 0.0, "c": 0.25},
        test_counts={"a": 100, "b": 100, "c": 40}, thresholds={"a": 0.4},
        parameters=1234, macs_per_image=5678, provenance=provenance, encoding="PNG",
        jpeg95_mean_error=0.0975, date="2026-12-04 17:00", version="0.1.0",
        commit="abc123", licence="MIT License")


def test_wilson_interval_against_a_hand_computation():
    # 10 errors in 100, z = 1.96: p = 0.1, centre = (0.1 + 1.96^2 / 200) / (1 + 1.96^2 / 100)
    # = 0.11921 / 1.03842 = 0.11480; half = 1.96 sqrt(0.0009 + 1.96^2 / 40000) / 1.03842
    # = 1.96 * 0.031560 / 1.03842 = 0.059569: [0.05523, 0.17437].
    low, high = wilson_interval(10, 100)
    assert low == pytest.approx(0.05523, abs=2e-5) and high == pytest.approx(0.17437, abs=2e-5)
    # 0 errors: the interval starts at 0 and ends at z^2 / (n + z^2) = 3.8415 / 103.8415.
    low, high = wilson_interval(0, 100)
    assert low == pytest.approx(0.0, abs=1e-12)
    assert high == pytest.approx(3.8415 / 103.8415, abs=1e-5)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def gnas_report(rounds: int) -> dict:
    """A GNAS run's report.json entries as `gnas._search` writes them."""
    return {"rounds": [{"round": r, "changed": 0} for r in range(rounds)],
            "initial_tree": [list(p) for p in START]}


def test_card_of_a_tree_the_search_kept_from_its_start():
    text = card(Provenance.from_report("gnas", False, "label_correlation", gnas_report(3),
                                       tuple(tuple(p) for p in START)))
    assert text.startswith("# Model card: run")
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)  # Mitchell et al.'s order
    assert ("Tree provenance: Kept from its start: `gnas` started from the "
            "`label_correlation` tree and no parent differs from it after 3 round(s)") in text
    assert "changed from its start" not in text and "found by" not in text
    # Model details: date, version, commit, licence, the method's paper.
    for fact in ("2026-12-04 17:00", "gnas-keras 0.1.0", "commit abc123", "MIT License",
                 "https://arxiv.org/abs/1804.06964", "https://arxiv.org/abs/1810.03993"):
        assert fact in text
    # Per-attribute rows with their intervals (a: 10/100, b: 0/100, c: 10/40).
    assert "| a | 10.00 | 5.52 - 17.44 | 100 |" in text
    assert "| b | 0.00 | 0.00 - 3.70 | 100 |" in text
    low, high = wilson_interval(10, 40)
    assert f"| c | 25.00 | {100 * low:.2f} - {100 * high:.2f} | 40 |" in text
    # The encoding note: both mean errors, measured on the run's own test images.
    assert "Mean error 11.67 % on the test images as stored (PNG)" in text
    assert "re-encoded as JPEG quality 95: 9.75 %" in text
    assert "trained on PNG-encoded images" in text
    assert "Bias and privacy" not in text and "show no people" in text


def test_card_of_a_tree_the_search_changed():
    final = [list(p) for p in START]
    final[2] = [1, 1, 1, 1]  # two parents moved
    text = card(Provenance.from_report("gnas", False, "random", gnas_report(5), final))
    assert all(s in text for s in SECTIONS)
    assert ("Tree provenance: Searched by `gnas` and changed from its start: 2 of 12 parents "
            "differ from the `random` tree it started from after 5 round(s).") in text
    assert "Kept from its start" not in text


def test_provenance_of_fixed_trees_and_of_methods_without_a_recorded_start():
    fixed = card(Provenance.from_report("label_tree", True, None, {}, START),
                 method="label_tree")
    assert "Kept from its start: the fixed tree `label_tree`, drawn without a search" in fixed
    assert "no paper of its own" in fixed
    searched = card(Provenance.from_report("branching", False, None,
                                           {"widening_rounds": [{}]}, START),
                    method="branching")
    assert ("Found by the search of `branching`, which records no start tree to compare "
            "the result with.") in searched
    assert "https://arxiv.org/abs/1611.05377" in searched


def test_people_and_own_data_get_their_ethics_sections():
    assert "### Bias and privacy (faces and people)" in card(None, dataset="celeba")
    assert "### If the images show people" in card(None, dataset="my_photos")
    assert "Tree provenance: not recorded." in card(None)


def test_encoding_and_counts_helpers():
    assert image_encoding(b"\x89PNG\r\n\x1a\n...") == "PNG"
    assert image_encoding(b"\xff\xd8\xff\xe0...") == "JPEG"
    assert image_encoding(b"????") == "unknown"
    assert labelled_counts([[1, -1], [0, -1], [1, 1]], ["x", "y"]) == {"x": 3, "y": 1}


def test_version_commit_licence_and_date_are_filled_in_when_not_given():
    text = model_card(name="m", dataset="synthetic", data_dirs=["d"], split_sizes={"test": 1},
                      attribute_names=["a"], method="gnas", space="tiny", tree_text="t",
                      input_description="x", test_error={"a": 0.1})
    line = next(line for line in text.splitlines() if line.startswith("- Exported "))
    assert "n/a" not in line and "commit" in line
    assert "Licence: " in text
