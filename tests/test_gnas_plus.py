"""GNAS+ options and the unbiased evaluation, on a real supernet: each does what its
docstring says (hand-built cases, a few steps each)."""

import numpy as np
import pytest

from gnas_keras.config import CandidateConfig, RunConfig
from gnas_keras.training.data import Data
from gnas_keras.methods import gnas
from gnas_keras.space.search_space import get_space
from gnas_keras.training.loop import Loop, new_supernet
from gnas_keras.space.tree import (adjusted_rand_index, correlation_routing, label_correlations,
                             random_routing)


@pytest.fixture(scope="module")
def setup(synthetic_dir):
    config = RunConfig(data_dir=synthetic_dir, batch_size=32, eval_batch_size=64)
    data = Data.load(config)
    model = new_supernet(config, get_space("tiny"), 16, data.image_shape, seed=0)
    model.set_routing(random_routing(model.space, 16, np.random.default_rng(0)))
    return config, data, model, Loop(model, data.train, seed=0)


def _by_layer(model):
    return {layer.name: [v.numpy().copy() for v in layer.trainable_variables]
            for layer in model.routed_layers}


def test_batch_norm_defaults_are_pytorchs(setup):
    _, _, model, _ = setup
    conv = model.routed_layers[0]
    assert (conv.bn_momentum, conv.bn_epsilon) == (0.9, 1e-5)  # PyTorch momentum=0.1, eps


def test_train_only_from_freezes_the_layers_below(setup):
    _, _, model, loop = setup
    before = _by_layer(model)
    fc1 = [layer.name for layer in model.routed_layers].index("fc1")
    saved = model.snapshot()
    model.train_only_from(fc1)
    loop.restart(9)
    loop.train(3)
    after = _by_layer(model)
    for l, layer in enumerate(model.routed_layers):
        same = all(np.array_equal(a, b) for a, b in zip(before[layer.name], after[layer.name]))
        assert same == (l < fc1), layer.name
    model.restore(saved)
    restored = _by_layer(model)
    assert all(np.array_equal(a, b) for name in before
               for a, b in zip(before[name], restored[name]))
    assert all(float(layer.train_scale.numpy()) == 1.0 for layer in model.routed_layers)


def test_the_step_that_stops_at_the_lowest_training_layer_computes_the_full_steps_weights(
        setup):
    """train_function_now: with fc1 and above training, a step whose backward pass stops at
    fc1's input (cheaper) gives the weights and optimizer slots of the full step (whose
    gradients below fc1 are zeroed); with everything training it is Keras' own step."""
    _, data, model, loop = setup
    saved = model.snapshot()
    assert model.train_function_now() is model.train_function
    model.train_only_from(3)
    cut = model.train_function_now()
    assert cut is not model.train_function and model.train_function_now() is cut
    results = []
    for step in (cut, model.train_function):
        model.restore(saved)
        model.train_only_from(3)
        iterator = loop.iterator(data.train(123))
        for _ in range(2):
            step(iterator)
        results.append(model.snapshot())
    names = [v.path for v in model.variables + model.optimizer.variables]
    for name, a, b in zip(names, *results):
        np.testing.assert_allclose(a, b, atol=1e-6, err_msg=name)
    model.restore(saved)
    assert model.train_function_now() is model.train_function


def test_reinitialize_active_touches_only_the_active_edges(setup):
    _, _, model, _ = setup
    saved = model.snapshot()
    fc1 = model.routed_layers[3]
    edges = fc1.edge_ids().numpy()
    old = fc1.kernel.numpy().copy()
    model.reinitialize_active(3, np.random.default_rng(7))
    new = fc1.kernel.numpy()
    inactive = np.setdiff1d(np.arange(len(old)), edges)
    assert np.array_equal(old[inactive], new[inactive])
    assert not np.any(np.isclose(old[edges], new[edges]))
    assert np.all(fc1.bias.numpy()[edges] == 0.0)
    expected = np.sqrt(2.0 / old.shape[1])                      # He-normal fan-in
    assert abs(new[edges].std() / expected - 1.0) < 0.1
    model.restore(saved)


def test_refresh_batch_norm_moves_only_the_statistics_of_the_tree(setup):
    _, _, model, loop = setup
    saved = model.snapshot()
    conv3 = model.routed_layers[2]
    edges = conv3.edge_ids().numpy()
    trainable = [v.numpy().copy() for v in model.trainable_variables]
    mean = conv3.moving_mean.numpy().copy()
    loop.restart(8)
    loop.refresh_batch_norm(2)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(trainable, model.trainable_variables))
    moved = conv3.moving_mean.numpy()
    inactive = np.setdiff1d(np.arange(len(mean)), edges)
    assert not np.allclose(mean[edges], moved[edges])
    assert np.array_equal(mean[inactive], moved[inactive])
    model.restore(saved)


def test_candidates_above_are_scored_then_the_weights_restored(setup):
    """candidate_training=above with fresh heads: after a layer is searched, only the chosen
    tree's K steps have changed the weights (candidates leave no trace)."""
    config, data, model, loop = setup
    val_data = lambda *position: loop.iterator(data.rewards(1))  # noqa: E731
    candidates = CandidateConfig(train_steps=2, val_batches=1)
    plus = gnas.GnasConfig(max_rounds=1, candidate_training="above", fresh_heads=True,
                           reward="log_likelihood", bn_refresh=1)
    saved = model.snapshot()
    results = gnas.search(loop, val_data, candidates, plus, np.random.default_rng(3))
    trained = model.snapshot()
    # Replay: the same tree updates with the candidates skipped reproduce the weights.
    model.restore(saved)
    model.set_routing(random_routing(model.space, 16, np.random.default_rng(3)))
    routing = model.routing
    for l, name in [(3, "fc1"), (2, "conv3")]:
        routing = routing.with_layer(l, results[0].routing.parents[l])
        model.set_routing(routing)
        loop.restart(3, 1, 0 if name == "fc1" else 1)
        loop.train(2)
    loop.set_learning_rate(loop.learning_rate * plus.lr_decay)  # the round's decay
    replay = model.snapshot()
    names = [v.path for v in model.variables + model.optimizer.variables]
    for name, a, b in zip(names, trained, replay):
        assert np.allclose(a, b, atol=1e-6), name
    model.restore(saved)
    assert results[0].switch_gains.keys() == {"fc1", "conv3"}
    assert np.all(np.isfinite(results[0].switch_errors["fc1"]))


def test_fresh_heads_need_candidate_training_above():
    with pytest.raises(ValueError, match="fresh_heads"):
        gnas.GnasConfig(fresh_heads=True).validate()
    with pytest.raises(ValueError, match="train_dead_parents"):
        gnas.GnasConfig(train_dead_parents=True).validate()


def test_a_dead_candidate_parent_trains_with_its_children_then_is_restored(setup,
                                                                           monkeypatch):
    """train_dead_parents: the candidates of fc1 train from fc1 up, except a conv3 block
    that no attribute reads in the current tree, which trains too; then every weight is
    restored, so only the chosen tree's K steps remain (as without the option)."""
    config, data, model, loop = setup
    val_data = lambda *position: loop.iterator(data.rewards(1))  # noqa: E731
    routing = random_routing(model.space, 16, np.random.default_rng(3))
    fc1 = [p if p != 1 else 0 for p in routing.parents[3]]      # conv3 block 1: dead
    routing = routing.with_layer(3, fc1)
    state = gnas.SearchState(rng_state=np.random.default_rng(0).bit_generator.state,
                             routing=routing, round_start=routing)
    plus = gnas.GnasConfig(max_rounds=1, candidate_training="above", train_dead_parents=True,
                           hysteresis=1e9)  # the tree keeps its parents: one replay below
    calls = []
    train_only_from = model.train_only_from
    monkeypatch.setattr(model, "train_only_from",
                        lambda layer: calls.append(layer) or train_only_from(layer))
    saved = model.snapshot()
    gnas.search(loop, val_data, CandidateConfig(train_steps=2, val_batches=1), plus,
                np.random.default_rng(3), state=state)
    trained = model.snapshot()
    # conv2 blocks that no live conv3 block reads
    dead_conv2 = set(range(4)) - {routing.parents[2][j] for j in set(fc1)}
    assert calls == [3, 2, 3, 3] + [1 if b in dead_conv2 else 2 for b in range(4)]
    model.restore(saved)
    model.set_routing(routing)
    for position in [(1, 0), (1, 1)]:   # the chosen tree (unchanged) trains after each layer
        loop.restart(3, *position)
        loop.train(2)
    loop.set_learning_rate(loop.learning_rate * plus.lr_decay)
    names = [v.path for v in model.variables + model.optimizer.variables]
    for name, a, b in zip(names, trained, model.snapshot()):
        assert np.allclose(a, b, atol=1e-6), name
    model.restore(saved)


def test_search_only_layer_names():
    space = get_space("tiny")
    assert gnas.searched_layers(space, 16, " fc1 ,conv3") == [2, 3]
    with pytest.raises(ValueError, match="search_only: 'conv2' is not a searched layer of "
                                         "space tiny \\(conv3, fc1\\)"):
        gnas.searched_layers(space, 16, "fc1,conv2")


def test_search_only_names_are_checked_with_the_config():
    config = RunConfig(data_dir="data/x", method="gnas")
    config.methods["gnas"].search_only = "fc1,conv9"
    with pytest.raises(ValueError, match="search_only: 'conv9' is not a searchable layer of "
                                         "space tiny"):
        config.validate()
    config.methods["gnas"].search_only = "fc1"
    config.validate()


def test_the_reward_stream_shows_every_validation_example_once_before_any_twice(setup):
    config, data, _, _ = setup
    n = data.meta.split_sizes["validation"]
    stream = [x.numpy().tobytes() for x, _ in data.rewards(5).unbatch().take(n)]
    in_order = [x.numpy().tobytes() for x, _ in data._make("validation", False).unbatch()]
    assert len(set(stream)) == n and set(stream) == set(in_order)
    again = [x.numpy().tobytes() for x, _ in data.rewards(5).unbatch().take(n)]
    assert again == stream  # seeded: every candidate of a layer gets the same examples


def test_restarts_search_again_from_random_trees_and_keep_the_best_scored_together(setup):
    """restarts=2: three searches of one round each (max_rounds=1), each from its own random
    fc1 routing; the best-scored converged tree is the model's routing in the end. And
    search_only=fc1: only fc1 is searched (all 4 x 16 rewards), conv3 keeps the widest
    parents (0 1 2 3) throughout."""
    config, data, model, loop = setup
    val_data = lambda *position: loop.iterator(data.rewards(1))  # noqa: E731
    saved = model.snapshot()
    state = gnas.SearchState(rng_state=np.random.default_rng(6).bit_generator.state)
    plus = gnas.GnasConfig(max_rounds=1, search_only="fc1", restarts=2)
    results = gnas.search(loop, val_data, CandidateConfig(train_steps=1, val_batches=1), plus,
                          np.random.default_rng(6), state=state)
    assert [(r.round, r.restart) for r in results] == [(1, 0), (2, 1), (3, 2)]
    assert all(list(r.routing.parents[2]) == [0, 1, 2, 3] for r in results)     # conv3 kept
    assert all(r.rewards.keys() == {"fc1"} for r in results)
    assert not np.any(np.isnan(results[0].rewards["fc1"]))                     # 4 x 16 scored
    assert len({str(r.routing.parents[3]) for r in results}) == 3
    assert [row["tree"] for row in state.selection] == [
        [list(p) for p in r.routing.parents] for r in results]
    assert sum(row["chosen"] for row in state.selection) == 1
    chosen = next(row for row in state.selection if row["chosen"])
    assert chosen["reward"] == max(row["reward"] for row in state.selection)
    assert [list(p) for p in model.routing.parents] == chosen["tree"]
    model.restore(saved)
    with pytest.raises(ValueError, match="restarts: must be >= 0"):
        gnas.GnasConfig(restarts=-1).validate()


def test_converged_trees_are_scored_as_candidates_from_the_same_weights(setup):
    """choose_restart: each tree trains K steps from the same weights on the same batches,
    is scored on the same validation batch, and the weights are restored; the same tree
    twice scores the same (the first is chosen on the tie, paired error 0)."""
    config, data, model, loop = setup
    val_data = lambda *position: loop.iterator(data.rewards(1))  # noqa: E731
    saved = model.snapshot()
    a, b = (random_routing(model.space, 16, np.random.default_rng(s)) for s in (1, 2))
    ends = [gnas.RoundResult(r, routing, False, 0.1, {}, {}, None, 0.0, restart=r - 1)
            for r, routing in [(1, a), (2, b), (3, a)]]
    rows = gnas.choose_restart(loop, val_data, ends, CandidateConfig(train_steps=2,
                                                                     val_batches=1),
                               gnas.GnasConfig(), 3, seed=0)
    after = model.snapshot()
    assert all(np.array_equal(x, y) for x, y in zip(saved, after))
    assert rows[0]["reward"] == rows[2]["reward"]
    assert rows[0]["chosen"] or rows[1]["chosen"]
    assert not rows[2]["chosen"]
    # Recomputed by hand: tree b trained 2 steps on the selection's batches, then scored.
    model.set_routing(b)
    loop.restart(1, 7)
    loop.train(2)
    probabilities, labels = loop.predict_batches(val_data(1, 7), 1)
    accuracy = ((probabilities > 0.5) == (labels == 1)).mean()
    assert rows[1]["reward"] == pytest.approx(accuracy, abs=1e-9)
    model.restore(saved)


def test_a_restart_redraws_only_the_searched_layers():
    space = get_space("tiny")
    routing = random_routing(space, 16, np.random.default_rng(0))
    again = gnas.restart_routing(space, 16, routing, [3], np.random.default_rng(1))
    assert again.parents[:3] == routing.parents[:3] and again.parents[4:] == routing.parents[4:]
    assert again.parents[3] != routing.parents[3]
    assert again.parents[3] == random_routing(space, 16, np.random.default_rng(1)).parents[3]


def test_the_initial_tree_is_random_where_searched_and_widest_where_not():
    space = get_space("tiny")
    drawn = random_routing(space, 16, np.random.default_rng(3))
    both = gnas.initial_routing(space, 16, [2, 3], np.random.default_rng(3))
    assert both == drawn                                        # Algorithm 1: all random
    fc1_only = gnas.initial_routing(space, 16, [3], np.random.default_rng(3))
    assert list(fc1_only.parents[2]) == [0, 1, 2, 3]           # conv3 not searched: widest
    assert fc1_only.parents[3] == drawn.parents[3]             # fc1: the same random draw
    assert list(drawn.parents[2]) != [0, 1, 2, 3]              # (so the test can fail)


def test_label_correlations_pair_only_the_known_labels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (200, 4))
    labels[:, 1] = labels[:, 0] ^ (rng.random(200) < 0.2)     # correlated with column 0
    labels[:, 2] = 1                                          # constant: nothing to correlate
    labels[:50, 3] = -1                                       # unknown for the first 50
    r = label_correlations(labels)
    assert r[0, 1] == pytest.approx(np.corrcoef(labels[:, 0], labels[:, 1])[0, 1])
    assert r[0, 3] == pytest.approx(np.corrcoef(labels[50:, 0], labels[50:, 3])[0, 1])
    assert r[0, 2] == r[2, 3] == 0.0 and np.allclose(np.diag(r), 1.0)
    np.testing.assert_allclose(r, r.T)


def test_the_label_correlation_tree_cuts_one_dendrogram_per_layer():
    """Synthetic labels (four groups of four; within a group each rule correlates with the
    majority, 0.5): the tiny space's fc1 gets one conv3 block per group; in a space with 2
    blocks below 4, two groups share each of them, and every block reads the block below
    that holds its attributes."""
    from gnas_keras_pipelines import synthetic
    labels = synthetic.attributes_from_states(np.random.default_rng(0).integers(0, 8, (500, 4)),
                                               version=3)
    planted = [g for g in range(4) for _ in range(4)]
    tiny = correlation_routing(get_space("tiny"), 16, labels)
    assert list(tiny.parents[3]) == planted and list(tiny.parents[2]) == [0, 1, 2, 3]
    wide = get_space("deep_wide")                              # conv blocks 1, 2, 4, 8, 16
    routing = correlation_routing(wide, 16, labels)
    halves = routing.grouping(1)                               # conv2: 2 blocks
    assert len(set(halves)) == 2 and all(len(set(halves[4 * g:4 * g + 4])) == 1
                                         for g in range(4))
    assert routing.grouping(2) == planted                      # conv3: 4 blocks, the groups
    few = correlation_routing(wide, 4, labels[:, :4])          # 4 attributes, 8 conv4 blocks
    assert list(few.parents[3][4:]) == [0, 1, 2, 3]            # no cluster: widest parents
    # Shuffled attribute order: the same groups, whichever blocks they get.
    order = np.random.default_rng(1).permutation(16)
    shuffled = correlation_routing(get_space("tiny"), 16, labels[:, order])
    grouping = shuffled.grouping(2)
    assert adjusted_rand_index(grouping, [planted[i] for i in order]) == 1.0


def test_the_search_starts_from_the_label_correlation_tree(setup, monkeypatch):
    """initial_tree=label_correlation: the first round starts from the tree of the training
    labels (the small synthetic set's: its planted groups on fc1), recorded in the state;
    conv3, not searched, keeps the widest parents. With warmup_initial_tree every warm-up
    chunk trains that tree; without, random trees (Algorithm 1's warm-up)."""
    config, data, model, loop = setup
    val_data = lambda *position: loop.iterator(data.rewards(1))  # noqa: E731
    saved = model.snapshot()
    labels = data.training_labels()
    assert labels.shape == (384, 16)
    warmed = []
    chunk = gnas.warmup_chunk
    monkeypatch.setattr(gnas, "warmup_chunk", lambda *args: warmed.append(args[-1]) or chunk(
        *args))
    candidates = CandidateConfig(train_steps=1, val_batches=1, warmup_steps=2,
                                 warmup_resample=1)
    for warm_initial in (True, False):
        warmed.clear()
        state = gnas.SearchState(rng_state=np.random.default_rng(0).bit_generator.state)
        plus = gnas.GnasConfig(max_rounds=1, search_only="fc1",
                               initial_tree="label_correlation",
                               warmup_initial_tree=warm_initial)
        gnas.search(loop, val_data, candidates, plus, np.random.default_rng(0), state=state,
                    training_labels=data.training_labels)
        assert list(state.initial.parents[3]) == [g for g in range(4) for _ in range(4)]
        assert list(state.initial.parents[2]) == [0, 1, 2, 3]
        assert state.results[0].round == 1
        assert warmed == ([state.initial] * 2 if warm_initial else [None, None])
        model.restore(saved)
    assert gnas.SearchState.from_dict(state.to_dict()).initial == state.initial
    with pytest.raises(ValueError, match="initial_tree: label_correlation needs"):
        gnas.search(loop, val_data, CandidateConfig(train_steps=1, val_batches=1), plus,
                    np.random.default_rng(0))


def test_a_trained_random_initial_tree_is_drawn_before_the_warm_up(setup, monkeypatch):
    """The control of the label-correlation tree: initial_tree=random with
    warmup_initial_tree trains the random initial tree in the warm-up and starts from it."""
    config, data, model, loop = setup
    val_data = lambda *position: loop.iterator(data.rewards(1))  # noqa: E731
    saved = model.snapshot()
    warmed = []
    chunk = gnas.warmup_chunk
    monkeypatch.setattr(gnas, "warmup_chunk", lambda *args: warmed.append(args[-1]) or chunk(
        *args))
    state = gnas.SearchState(rng_state=np.random.default_rng(4).bit_generator.state)
    gnas.search(loop, val_data, CandidateConfig(train_steps=1, val_batches=1, warmup_steps=1),
                gnas.GnasConfig(max_rounds=1, search_only="fc1", warmup_initial_tree=True),
                np.random.default_rng(4), state=state)
    assert warmed == [state.initial]
    assert state.initial == gnas.initial_routing(model.space, 16, [3], np.random.default_rng(4))
    model.restore(saved)


def test_a_round_counts_only_the_search_only_layers():
    space = get_space("tiny")
    assert space.evaluations_per_round(16) == 8                    # conv3: 4, fc1: 4
    assert space.evaluations_per_round(16, gnas.searched_layers(space, 16, "fc1")) == 4


def test_probe_heads_learn_a_multiplexer_of_three_bits_and_nothing_from_noise():
    """gnas_keras.models.probe: heads of the tiny space's shape trained to convergence read a
    multiplexer (which K = 40 SGD steps of fresh heads do not) from features that hold the
    three bits, and stay at chance on features that hold nothing."""
    from gnas_keras.models import probe
    rng = np.random.default_rng(0)

    def examples(n):
        bits = rng.integers(0, 2, (n, 3))
        x0, x1, x2 = bits.T
        labels = np.stack([np.where(x0 == 1, x1, x2), bits.sum(1) >= 2], 1).astype(np.int64)
        return bits * 2.0 + rng.normal(0, 0.3, (n, 3)), labels

    (train, train_labels), (test, test_labels) = examples(1024), examples(1000)
    train_labels[::7, 0] = -1  # unknown labels are left out of the loss
    p = probe.fit_heads(train, train_labels, test, (16, 16), 300, np.random.default_rng(1))
    assert p.shape == (1000, 2)
    assert np.all(((p > 0.5) == test_labels).mean(axis=0) > 0.97)
    p = probe.fit_heads(rng.normal(size=(1024, 3)), train_labels, rng.normal(size=(1000, 3)),
                        (16, 16), 300, np.random.default_rng(1))
    assert np.all(np.abs(((p > 0.5) == test_labels).mean(axis=0) - 0.5) < 0.07)


def test_probe_steps_score_fresh_heads_on_the_frozen_features_and_change_no_weight(setup):
    """probe_steps: every fc1 candidate's reward is that of heads fitted (gnas_keras.models.probe)
    on the candidate's conv3 block outputs for the layer's K training batches, scored on its
    V validation batches; the only weight change is the chosen tree's K steps."""
    from gnas_keras.models import probe
    config, data, model, loop = setup
    val_data = lambda *position: loop.iterator(data.rewards(1))  # noqa: E731
    candidates = CandidateConfig(train_steps=2, val_batches=1)
    plus = gnas.GnasConfig(max_rounds=1, candidate_training="above", fresh_heads=True,
                           reward="log_likelihood", search_only="fc1", probe_steps=20,
                           bn_refresh=1)
    saved = model.snapshot()
    start = gnas.initial_routing(model.space, 16, [3], np.random.default_rng(4))
    features = gnas.probe_features(loop, val_data, candidates, plus, start, 3, (1, 0))
    routed = model.snapshot()  # on `start`, as the search is when it scores round 1's fc1
    assert features.train.shape == (4, 64, 3) and features.validation.shape == (4, 64, 3)
    assert features.hidden == (16, 16)
    again = gnas.probe_features(loop, val_data, candidates, plus, start, 3, (1, 0))
    assert np.array_equal(features.train, again.train)
    assert all(np.array_equal(x, y) for x, y in zip(routed, model.snapshot()))
    expected = []
    for b in range(4):
        p = probe.fit_heads(features.train[b], features.train_labels, features.validation[b],
                            (16, 16), 20, np.random.default_rng(gnas.segment_seed(0, 5, 1, 0, b)))
        expected.append(gnas.example_scores([frozenset([a]) for a in range(16)], p,
                                            features.validation_labels, "log_likelihood"))
    model.restore(saved)
    results = gnas.search(loop, val_data, candidates, plus, np.random.default_rng(4))
    assert results[0].routing.parents[3] != start.parents[3]  # something moved
    np.testing.assert_allclose(results[0].rewards["fc1"],
                               np.stack([e.mean(axis=0) for e in expected]), atol=1e-6)
    trained = model.snapshot()
    model.restore(saved)
    model.set_routing(results[0].routing)
    loop.restart(3, 1, 0)
    loop.train(2)
    loop.set_learning_rate(loop.learning_rate * plus.lr_decay)
    for a, b in zip(trained, model.snapshot()):
        assert np.allclose(a, b, atol=1e-6)
    model.restore(saved)


def test_probe_steps_are_checked():
    with pytest.raises(ValueError, match="probe_steps: needs fresh_heads"):
        gnas.GnasConfig(probe_steps=10, candidate_training="above").validate()
    with pytest.raises(ValueError, match="probe_steps: must be >= 0"):
        gnas.GnasConfig(probe_steps=-1).validate()
    plus = gnas.GnasConfig(candidate_training="above", fresh_heads=True, probe_steps=10)
    space = get_space("tiny")
    assert gnas.probed_layers(space, 16, [3, 2], plus) == {3: True, 2: False}
    assert gnas.probed_layers(space, 16, [3], gnas.GnasConfig()) == {3: False}
