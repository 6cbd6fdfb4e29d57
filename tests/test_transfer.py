"""Task-transfer grouping (`gnas_keras.methods.transfer`): the readout on hand-built
features, the towers' space, and a short measurement on hand-built images."""

import types

import numpy as np
import pytest

from gnas_keras.space.search_space import get_space
from gnas_keras.space.tree import adjusted_rand_index, shared_routing


def multiplexers(states: np.ndarray) -> np.ndarray:
    """The synthetic set's attributes: three multiplexers of each group's three bits."""
    from gnas_keras_pipelines.synthetic import attributes_from_states
    return attributes_from_states(states, version=4)


def tower_features(states: np.ndarray, rng: np.random.Generator, attributes_per_group: int = 3,
                   noise: float = 0.3) -> np.ndarray:
    """float [N, P, 5]: tower i of group g sees its group's three bits (with noise) and two
    dimensions of noise, as a tower that learnt its group's state would."""
    bits = (states[..., None] >> np.arange(3)) & 1                       # [P, G, 3]
    towers = []
    for g in range(states.shape[1]):
        for _ in range(attributes_per_group):
            signal = bits[:, g] + rng.normal(0, noise, (len(states), 3))
            towers.append(np.concatenate([signal, rng.normal(0, 1, (len(states), 2))], 1))
    return np.stack(towers)


def test_a_tower_that_encodes_its_group_reads_its_siblings_not_other_groups():
    from gnas_keras.methods.transfer import routing_from, transfer_gain, transfer_matrix
    rng = np.random.default_rng(0)
    states = rng.integers(0, 8, (1200, 4))
    labels = multiplexers(states)
    # The labels carry no grouping: every pair is uncorrelated.
    correlation = np.corrcoef(labels.T)
    assert np.abs(correlation[~np.eye(12, dtype=bool)]).max() < 0.1
    transfer = transfer_matrix(tower_features(states, rng), labels, neighbours=15)
    assert transfer.shape == (12, 12)
    group = np.repeat(np.arange(4), 3)
    same = (group[:, None] == group[None]) & ~np.eye(12, dtype=bool)
    across = group[:, None] != group[None]
    assert transfer[same].min() > 0.85 and transfer[across].max() < 0.62, transfer
    gain = transfer_gain(transfer)
    assert np.all(np.diag(gain) == 0) and gain[same].min() > gain[across].max()
    space = get_space("tiny")
    routing = routing_from(space, 12, transfer)
    assert adjusted_rand_index(routing.grouping(space.grouping_layer), group) == 1.0


def test_unknown_labels_count_for_nothing():
    from gnas_keras.methods.transfer import transfer_matrix
    rng = np.random.default_rng(1)
    states = rng.integers(0, 8, (400, 1))
    labels = multiplexers(states)
    features = tower_features(states, rng)
    full = transfer_matrix(features, labels, neighbours=9)
    unknown = labels.copy()
    unknown[:, 2] = -1                        # an attribute never labelled: chance
    unknown[rng.uniform(size=400) < 0.3, 1] = -1  # one labelled 70 % of the time
    partial = transfer_matrix(features, unknown, neighbours=9)
    assert np.all(partial[:, 2] == 0.5)
    assert np.abs(partial[:, 1] - full[:, 1]).max() < 0.1 and partial[0, 1] > 0.8
    with pytest.raises(ValueError, match="at least 2 probe images"):
        transfer_matrix(features[:, :1], labels[:1], neighbours=9)


def test_a_rare_attribute_is_read_by_the_tower_that_sees_its_evidence():
    """Balanced accuracy with the vote's threshold at the base rate: a rare attribute (10 %
    positives) scores well above chance from features that carry it and at chance from
    features that do not, where plain accuracy would be about 0.9 for both."""
    from gnas_keras.methods.transfer import transfer_matrix
    rng = np.random.default_rng(2)
    rare = (rng.uniform(size=2000) < 0.1).astype(np.int64)
    common = rng.integers(0, 2, 2000)
    labels = np.stack([rare, common], 1)
    sees = np.stack([rare + rng.normal(0, 0.3, 2000), rng.normal(0, 1, 2000)], 1)
    blind = np.stack([common + rng.normal(0, 0.3, 2000), rng.normal(0, 1, 2000)], 1)
    transfer = transfer_matrix(np.stack([sees, blind]), labels, neighbours=25)
    assert transfer[0, 0] > 0.9 and abs(transfer[1, 0] - 0.5) < 0.05, transfer
    assert transfer[1, 1] > 0.9 and abs(transfer[0, 1] - 0.5) < 0.05, transfer


def test_towers_are_one_network_per_attribute_on_the_shared_stem():
    from gnas_keras.methods.transfer import readout_layers, tower_space
    space = get_space("tiny")
    towers = tower_space(space)
    assert towers.block_counts(5) == [1, 5, 5, 5, 5, 5]
    assert not any(layer.searchable for layer in towers.layers)
    assert [l.channels for l in towers.layers] == [l.channels for l in space.layers]
    routing = shared_routing(towers, 5)      # nothing searched: the fixed, one-to-one tree
    assert [list(p) for p in routing.parents] == [[0], [0] * 5] + [list(range(5))] * 4
    assert readout_layers(towers) == [1, 2]  # conv2 and conv3 (the grouping layer)
    assert readout_layers(tower_space(get_space("small"))) == [2, 3]


def test_measure_trains_in_checkpointed_chunks_and_reads_out_every_pair():
    """The towers train chunk by chunk (a save after each, the last chunk shorter) and the
    readout scores every (tower, attribute) pair. On these hand-built images (left half
    bright or dark, right half red or blue, tests/test_affinity.py) the shared stem carries
    every attribute already, so any tower reads any attribute: no grouping to find there."""
    import keras
    from gnas_keras.methods.base import SearchLogger
    from gnas_keras.methods.transfer import (TransferConfig, TransferState, Towers, measure,
                                             tower_space)
    from gnas_keras.models.supernet import build_supernet
    from gnas_keras.training.loop import Loop
    from tests.test_affinity import hand_built
    keras.utils.set_random_seed(0)
    space = tower_space(get_space("tiny"))
    model = build_supernet(space, 3, (32, 32, 3), learning_rate=0.05)
    model.set_routing(shared_routing(space, 3))
    towers = Towers(model, Loop(model, hand_built, seed=0))
    lines = []
    logger = SearchLogger()
    logger.progress = lines.append
    context = types.SimpleNamespace(logger=logger, config=types.SimpleNamespace(
        candidates=types.SimpleNamespace(val_batches=4)), val_data=lambda *position: iter(hand_built(100 + sum(position))))
    saves, state = [], TransferState()
    transfer = measure(towers, context, TransferConfig(transfer_steps=25, transfer_chunk=10,
                                                       transfer_neighbours=5),
                       state, saves.append)
    assert state.evaluations == len(saves) == 3
    assert [line.split()[3] for line in lines] == ["10/25", "20/25", "25/25"]
    assert transfer.shape == (3, 3) and np.all((transfer >= 0) & (transfer <= 1))
    # A tower reads its own attribute (attribute 1 has 10 % of its labels flipped).
    assert np.all(np.diag(transfer) > 0.85), transfer
