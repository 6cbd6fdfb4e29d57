import json

import numpy as np
import pytest

from gnas_keras.space import search_space as spaces
from gnas_keras.space.architecture import Architecture
from gnas_keras.space.tree import (Routing, adjusted_rand_index, independent_routing, random_routing,
                             shared_routing)

TINY = spaces.get_space("tiny")  # conv1 1, conv2 4, conv3 4, fc1/fc2/fc3 N blocks


def tiny_routing(fc1_parents, conv3_parents=(0, 1, 2, 3)):
    n = len(fc1_parents)
    return Routing.from_lists([[0], [0] * 4, conv3_parents, fc1_parents, range(n), range(n)])


def test_descendants_follow_the_parents():
    r = tiny_routing([0, 0, 1, 3], conv3_parents=[0, 0, 1, 1])
    d = r.descendants()
    assert d[5] == [frozenset({n}) for n in range(4)]
    assert d[3] == d[4] == d[5]
    assert d[2] == [frozenset({0, 1}), frozenset({2}), frozenset(), frozenset({3})]
    assert d[1] == [frozenset({0, 1, 2}), frozenset({3}), frozenset(), frozenset()]
    assert d[0] == [frozenset({0, 1, 2, 3})]
    assert r.dead_blocks()[2] == [2] and r.dead_blocks()[1] == [2, 3]
    assert r.live_blocks()[2] == [0, 1, 3]
    assert r.grouping(2) == [0, 0, 1, 3]


def test_validate_rejects_bad_trees():
    tiny_routing([0, 1, 2, 3]).validate(TINY, 4)
    with pytest.raises(ValueError, match="fc1 block 2: parent 4"):
        tiny_routing([0, 1, 4, 3]).validate(TINY, 4)
    with pytest.raises(ValueError, match="fc1: 3 parents for 4 blocks"):
        Routing.from_lists([[0], [0] * 4, [0] * 4, [0, 0, 0], range(4), range(4)]
                           ).validate(TINY, 4)
    with pytest.raises(ValueError, match="conv2 block 2: parent 1"):
        Routing.from_lists([[0], [0, 0, 1, 0], [0] * 4, [0] * 4, range(4), range(4)]
                           ).validate(TINY, 4)
    with pytest.raises(ValueError, match="fc2 is not searchable"):
        Routing.from_lists([[0], [0] * 4, [0] * 4, [0] * 4, [1, 0, 2, 3], range(4)]
                           ).validate(TINY, 4)


def test_json_round_trip_and_render():
    r = random_routing(TINY, 6, np.random.default_rng(3))
    names = [f"attr{i}" for i in range(6)]
    architecture = Architecture.from_space(TINY, r)
    assert Architecture.from_json(architecture.to_json(names)) == architecture
    # A tree.json written before architectures (no blocks) loads with its space's blocks.
    old = json.dumps({"space": "tiny", "layers": [s.name for s in TINY.layers],
                      "parents": [list(p) for p in r.parents], "attribute_names": names})
    assert Architecture.from_json(old) == architecture
    text = architecture.render(names)
    assert text.splitlines()[0] == "image"
    assert sorted(line.split("-> ")[1] for line in text.splitlines() if "->" in line) == names


def test_baseline_trees():
    shared = shared_routing(TINY, 5)
    assert all(len(set(layer)) == 1 for layer in shared.parents[:4])
    assert len(shared.live_blocks()[2]) == 1  # one path through every conv layer
    ind = independent_routing(TINY, 8)
    assert ind.parents[2] == (0, 1, 2, 3)
    assert sorted(set(ind.parents[3])) == [0, 1, 2, 3]  # every conv3 block used, 2 children


def test_adjusted_rand_index_known_values():
    assert adjusted_rand_index([0, 0, 1, 1], [5, 5, 7, 7]) == 1.0
    assert adjusted_rand_index([0, 0, 0, 0], [0, 0, 0, 0]) == 1.0
    # Hand-computed: contingency [[1,1],[1,1]] -> index 0, expected 2*2/6, max 2.
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)


def test_space_arithmetic_matches_sec_3_4():
    # Sec. 3.4: blocks (1, 4, 16, 40) give 6.28e57 trees and 20 evaluations per round.
    s = spaces.get_space("shallow_thin")
    assert s.num_trees(40) == 4 ** 16 * 16 ** 40
    assert f"{float(s.num_trees(40)):.3g}" == "6.28e+57"
    assert s.evaluations_per_round(40) == 20
    assert spaces.get_space("deep_thin").evaluations_per_round(40) == 2 + 4 + 8 + 16


def test_planted_routing_gives_each_group_its_own_branch():
    from gnas_keras.space.tree import planted_routing, routing_for
    groups = [0, 0, 1, 1, 2, 3, 3, 2]
    r = planted_routing(TINY, 8, groups)
    assert r.grouping(2) == groups  # conv3 block = group
    assert r.parents[2] == (0, 1, 2, 3)  # conv3 block g under conv2 block g
    assert adjusted_rand_index(r.grouping(2), groups) == 1.0
    assert routing_for("planted_tree", TINY, 8, planted=groups) == r
    with pytest.raises(ValueError, match="no planted grouping"):
        routing_for("planted_tree", TINY, 8)


def test_the_label_tree_baseline_is_the_label_correlation_tree():
    from gnas_keras_pipelines import synthetic
    from gnas_keras.space.tree import correlation_routing, routing_for
    labels = synthetic.attributes_from_states(np.random.default_rng(2).integers(0, 8, (400, 4)),
                                               version=3)
    r = routing_for("label_tree", TINY, 16, labels=labels)
    assert r == correlation_routing(TINY, 16, labels)
    assert r.grouping(2) == [g for g in range(4) for _ in range(4)]  # the four groups
    with pytest.raises(ValueError, match="label_tree: needs the training labels"):
        routing_for("label_tree", TINY, 16)
