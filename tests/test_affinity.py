"""Inter-task affinity (`gnas_keras.methods.affinity`) on a hand-built case, and the tree
clustered from an affinity (`tree.affinity_routing`)."""

import numpy as np

from gnas_keras.space.search_space import get_space
from gnas_keras.space.tree import affinity_routing


def hand_built(seed: int, batch: int = 32):
    """Images whose left half is bright or dark (feature A) and whose right half is red or
    blue (feature B), independently. Attributes 0 and 1 both read A (1 is A with 10% of its
    labels flipped), attribute 2 reads B."""
    import tensorflow as tf
    rng = np.random.default_rng(seed)

    def examples():
        while True:
            a, b = rng.integers(0, 2, 2)
            image = rng.uniform(0, 40, (32, 32, 3))
            image[:, :16] += 180 * a
            image[:, 16:, 0 if b else 2] += 180
            noisy = a if rng.uniform() > 0.1 else 1 - a
            yield image.astype(np.float32), np.array([a, noisy, b], np.int32)

    return tf.data.Dataset.from_generator(examples, output_signature=(
        tf.TensorSpec((32, 32, 3), tf.float32), tf.TensorSpec((3,), tf.int32))).batch(batch)


def test_attributes_that_need_the_same_feature_have_the_higher_affinity():
    from gnas_keras.methods.affinity import AffinityConfig, AffinityState, measure
    from gnas_keras.methods.base import SearchLogger
    from gnas_keras.models.supernet import build_supernet
    from gnas_keras.training.loop import Loop
    import keras
    keras.utils.set_random_seed(0)
    model = build_supernet(get_space("tiny"), 3, (32, 32, 3), learning_rate=0.05)
    loop = Loop(model, hand_built, seed=0)
    before = [v.numpy().copy() for v in model.variables]
    config = AffinityConfig(affinity_steps=24, affinity_every=4)
    state = AffinityState()
    saves = []
    z = measure(loop, hand_built, config, 0, state, saves.append, SearchLogger())
    assert state.evaluations == len(saves) == 6 and z.shape == (3, 3)
    symmetric = (z + z.T) / 2
    assert symmetric[0, 1] > symmetric[0, 2] and symmetric[0, 1] > symmetric[1, 2], z
    assert any(np.abs(v.numpy() - b).max() > 0 for v, b in zip(model.variables, before))

    # The lookahead leaves every weight and statistic as it found it.
    from gnas_keras.methods.affinity import make_lookahead
    images, labels = next(iter(hand_built(1)))
    kept = [v.numpy().copy() for v in model.variables]
    make_lookahead(model)(images, labels, np.float32(0.1))
    assert all(np.array_equal(v.numpy(), k) for v, k in zip(model.variables, kept))


def test_affinity_routing_groups_the_attributes_that_help_each_other():
    space = get_space("tiny")
    groups = [0, 1, 2, 3, 0, 1, 2, 3]
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 0.01, (8, 8)) + 0.2 * (np.equal.outer(groups, groups))
    routing = affinity_routing(space, 8, z)
    fc1 = routing.parents[space.grouping_layer + 1]
    assert [fc1[n] for n in range(4)] == [fc1[n] for n in range(4, 8)]
    assert len(set(fc1)) == 4



def test_gnas_starts_from_the_affinity_tree_on_its_searched_layers():
    """GNAS's initial_tree=affinity: the first round starts from the affinity tree's
    parents on the searched layers (fc1 here); conv3, not searched, keeps the widest."""
    import keras
    from gnas_keras.config import CandidateConfig
    from gnas_keras.methods import gnas
    from gnas_keras.models.supernet import build_supernet
    from gnas_keras.training.loop import Loop
    from gnas_keras.space.tree import Routing
    keras.utils.set_random_seed(0)
    space = get_space("tiny")
    model = build_supernet(space, 3, (32, 32, 3))
    loop = Loop(model, hand_built, seed=0)
    drawn = Routing.from_lists([[0], [0] * 4, [3, 3, 1, 1], [2, 2, 0], [0, 1, 2], [0, 1, 2]])
    state = gnas.SearchState(rng_state=np.random.default_rng(0).bit_generator.state)
    gnas.search(loop, lambda *position: loop.iterator(hand_built(1)),
                CandidateConfig(train_steps=1, val_batches=1),
                gnas.GnasConfig(max_rounds=1, search_only="fc1", initial_tree="affinity"),
                np.random.default_rng(0), state=state, measured_start=lambda: drawn)
    assert state.initial.parents[3] == (2, 2, 0)
    assert state.initial.parents[2] == (0, 1, 2, 3)
    assert state.results[0].round == 1
