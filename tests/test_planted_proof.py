"""The planted-set proof's trees: the named rivals and trees given on the command line."""

import pytest

from benchmarks import planted_proof

GROUPS = [g for g in range(4) for _ in range(4)]


def test_a_tree_given_as_digits_becomes_the_tiny_routing():
    name, routing = planted_proof.parse_tree("found=1221/2222111110003333", 16)
    assert name == "found"
    assert routing[2] == [1, 2, 2, 1]
    assert routing[3] == [2, 2, 2, 2, 1, 1, 1, 1, 1, 0, 0, 0, 3, 3, 3, 3]
    assert routing == planted_proof.tree([1, 2, 2, 1], routing[3])


@pytest.mark.parametrize("spec", ["found", "=0123/" + "0" * 16, "x=012/" + "0" * 16,
                                  "x=0123/" + "0" * 15, "x=0124/" + "0" * 16,
                                  "x=0123/" + "a" * 16])
def test_a_malformed_tree_is_refused_with_its_text(spec):
    with pytest.raises(ValueError, match="--tree="):
        planted_proof.parse_tree(spec, 16)


def test_the_rivals_differ_from_the_planted_tree_where_their_names_say():
    trees = planted_proof.trees_to_compare(GROUPS, num_random=3)
    planted = trees["planted"][3]
    assert planted == GROUPS and trees["planted"][2] == [0, 1, 2, 3]
    assert trees["shared"][2:4] == [[0] * 4, [0] * 16]
    assert trees["merged_0+1"][3] == [0] * 8 + GROUPS[8:]
    assert sum(a != b for a, b in zip(trees["split_0"][3], planted)) == 2
    for name in ("moved_0>1", "moved_1>3"):
        moved = [a for a in range(16) if trees[name][3][a] != planted[a]]
        assert len(moved) == 1 and trees[name][3][moved[0]] == int(name[-1])
    assert len({str(trees[f"random_{i}"]) for i in range(3)}) == 3


def test_the_verdict_names_every_rival_that_falls_short():
    z = {"random_0": 7.0, "random_1": 4.0, "random_2": 3.5, "shared": 10.0, "merged_0+1": 3.1,
         "split_0": 3.0, "moved_0>1": 3.4, "moved_1>3": 6.0}
    assert planted_proof.verdict(z).startswith("part 1 criterion: met")
    assert planted_proof.verdict({**z, "split_0": 2.9}) == "part 1 criterion: NOT met (split_0)"
    assert planted_proof.verdict({**z, "moved_0>1": 2.9, "random_2": 1.0}) == (
        "part 1 criterion: NOT met (moved_0>1, only 2 random trees beaten)")
    assert planted_proof.verdict({k: v for k, v in z.items() if k != "shared"}) == (
        "part 1 criterion: not tested (too few trees of kind shared)")


def test_reused_errors_are_extended_to_more_seeds_without_training_them_again(
        synthetic_dir, tmp_path, monkeypatch, capsys):
    """--reuse with more --seeds trains only the missing seeds; files merge by most seeds."""
    trained = []

    def fake_training(parents, data, steps, seed, config):
        trained.append(seed)
        return [0.1 + 0.01 * seed] * 16

    monkeypatch.setattr(planted_proof, "train_tree_from_scratch", fake_training)
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    args = [f"--data_dir={synthetic_dir}", "--steps=5", "--trees=planted"]
    assert planted_proof.main(args + ["--seeds=2", f"--output={first}"]) == 0
    assert trained == [0, 1]
    assert planted_proof.main(args + ["--seeds=3", f"--reuse={first}", f"--output={second}"]) == 0
    assert trained == [0, 1, 2]
    assert planted_proof.main(args + ["--seeds=3", f"--reuse={second}", f"--reuse={first}"]) == 0
    assert trained == [0, 1, 2]  # b.json's 3 seeds win over a.json's 2
    assert "planted" in capsys.readouterr().out
