import numpy as np

from gnas_keras.config import CandidateConfig
from gnas_keras.training.evaluation import Evaluation
from gnas_keras.methods import gnas
from gnas_keras.methods.base import SearchLogger
from gnas_keras.space.search_space import get_space
from gnas_keras.training.loop import Loop
from gnas_keras.space.tree import Routing


def test_block_rewards_is_mean_accuracy_of_descendants():
    accuracy = np.array([0.9, 0.5, 0.6, 0.8])
    descendants = [frozenset({0, 1}), frozenset({2}), frozenset(), frozenset({0, 2, 3})]
    r = gnas.block_rewards(descendants, accuracy)
    assert r[0] == np.float64(0.7)
    assert r[1] == 0.6
    assert np.isnan(r[2])
    assert np.isclose(r[3], (0.9 + 0.6 + 0.8) / 3)


def test_best_parents_is_argmax_per_child_and_dead_blocks_keep_parent():
    rewards = np.array([[0.1, 0.9, np.nan, 0.5],
                        [0.7, 0.2, np.nan, 0.5],
                        [0.3, 0.95, np.nan, 0.4]])
    parents, gains, _ = gnas.best_parents(rewards, current=(2, 2, 1, 2))
    assert parents == (1, 2, 1, 0)
    assert np.allclose(gains[[0, 1, 3]], [0.4, 0.0, 0.1]) and np.isnan(gains[2])


def test_ties_keep_the_current_parent():
    rewards = np.array([[0.5, 0.7], [0.5, 0.7], [0.4, 0.6]])
    assert gnas.best_parents(rewards, current=(1, 1))[0] == (1, 1)  # not block 0
    assert gnas.best_parents(rewards, current=(2, 2))[0] == (0, 0)


def test_reward_gaps():
    rewards = np.array([[0.6, np.nan], [0.9, np.nan], [0.8, np.nan]])
    gaps = gnas.reward_gaps(rewards)
    assert np.isclose(gaps[0], 0.1) and np.isnan(gaps[1])


def test_example_scores_average_to_eq5_rewards_over_labelled_examples():
    probabilities = np.array([[0.9, 0.2], [0.4, 0.7], [0.8, 0.3], [0.1, 0.6]])
    labels = np.array([[1, 0], [1, -1], [0, 1], [0, 1]])
    descendants = [frozenset({0}), frozenset({0, 1}), frozenset()]
    scores = gnas.example_scores(descendants, probabilities, labels, "accuracy")
    # attribute 0: correct, wrong, wrong, correct -> 0.5; attribute 1 (3 labelled): correct,
    # -, wrong, correct -> 2/3
    assert np.allclose(scores.mean(axis=0)[:2], [0.5, (0.5 + 2 / 3) / 2], atol=1e-3)
    assert np.all(np.isnan(scores[:, 2]))
    ll = gnas.example_scores(descendants[:1], probabilities, labels, "log_likelihood")
    assert np.isclose(ll.mean(), np.mean(np.log([0.9, 0.4, 0.2, 0.9])), atol=1e-3)


def test_paired_standard_error_uses_the_per_example_differences():
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(1000, 1))             # what both candidates get right
    a, b = shared + 0.1, shared + 0.01 * rng.normal(size=(1000, 1))
    paired = gnas.paired_standard_errors(a, b)[0]
    unpaired = np.sqrt(a.var(ddof=1) / 1000 + b.var(ddof=1) / 1000)
    assert paired < unpaired / 50
    assert np.isclose(paired, np.std(a - b, ddof=1) / np.sqrt(1000))


def test_hysteresis_switches_only_on_a_gain_beyond_z_paired_errors():
    rng = np.random.default_rng(1)
    base = rng.random((400, 1))
    noisy = base + rng.normal(0, 0.2, size=(400, 1))     # current parent, same examples
    small = base + 0.005                                  # tiny but consistent gain
    scores = [noisy, small]
    rewards = np.stack([s.mean(axis=0) for s in scores])
    gain = rewards[1, 0] - rewards[0, 0]
    error = gnas.paired_standard_errors(small, noisy)[0]
    assert gain > 0
    switched, gains, errors = gnas.best_parents(rewards, (0,), scores, hysteresis=0.0)
    assert switched == (1,) and np.isclose(gains[0], gain) and np.isclose(errors[0], error)
    z_above = gain / error + 0.5
    assert gnas.best_parents(rewards, (0,), scores, hysteresis=z_above)[0] == (0,)
    assert gnas.best_parents(rewards, (0,), scores, hysteresis=gain / error - 0.5)[0] == (1,)


class FakeLoop:
    """Stands in for `training.Loop`: accuracy depends only on the routing, no training."""

    def __init__(self, model, accuracy_of):
        self.model, self.accuracy_of, self.lr = model, accuracy_of, 0.1
        self.trained = 0

    def restart(self, *position):
        pass

    def train(self, steps):
        self.trained += steps
        return Evaluation(0.5, np.zeros(self.model.num_attributes))

    def evaluate(self, iterator, steps):
        return Evaluation(0.5, self.accuracy_of(self.model.routing),
                          np.full(self.model.num_attributes, 100.0))

    def predict_batches(self, iterator, steps):
        """1,000 examples, every label 1, the first accuracy x 1,000 predicted right."""
        accuracy = self.accuracy_of(self.model.routing)
        right = np.arange(1000)[:, None] < np.round(accuracy * 1000)[None, :]
        return np.where(right, 0.9, 0.1), np.ones((1000, len(accuracy)), int)

    @property
    def learning_rate(self):
        return self.lr

    def set_learning_rate(self, lr):
        self.lr = lr


class FakeModel:
    def __init__(self, space, n):
        self.space, self.num_attributes, self.routing = space, n, None

    def set_routing(self, routing):
        routing.validate(self.space, self.num_attributes)
        self.routing = routing


def test_search_finds_planted_parents_with_an_oracle_reward():
    # Attribute n is best served by conv3 block n % 4 (a larger bonus than the layer below, so
    # the greedy path reaches the optimum), conv3 block j by conv2 block 3 - j.
    space, n = get_space("tiny"), 8

    def accuracy_of(routing: Routing):
        fc1, conv3 = routing.parents[3], routing.parents[2]
        return np.array([0.5 + 0.3 * (fc1[i] == i % 4) + 0.1 * (conv3[fc1[i]] == 3 - fc1[i])
                         for i in range(n)])

    model = FakeModel(space, n)
    loop = FakeLoop(model, accuracy_of)
    results = gnas.search(loop, lambda *p: None, CandidateConfig(train_steps=3, val_batches=1),
                          gnas.GnasConfig(max_rounds=10, patience=2), np.random.default_rng(0))
    final = model.routing
    assert final.parents[3] == tuple(i % 4 for i in range(n))
    assert final.parents[2] == (3, 2, 1, 0)
    assert not results[-1].changed and not results[-2].changed
    assert len(results) < 10
    # 2 searched layers x 4 candidates x K steps per round.
    assert loop.trained == len(results) * 8 * 3
    assert np.isclose(loop.lr, 0.1 * 0.96 ** len(results))
    assert set(results[0].rewards) == {"conv3", "fc1"}
    assert results[0].rewards["fc1"].shape == (4, n)


def test_search_on_a_real_supernet_runs_and_logs(synthetic_dir):
    import keras

    from gnas_keras.config import RunConfig
    from gnas_keras.training.data import Data
    from gnas_keras.models.supernet import build_supernet

    data = Data.load(RunConfig(data_dir=synthetic_dir, batch_size=32, eval_batch_size=64))
    keras.utils.set_random_seed(0)
    model = build_supernet(get_space("tiny"), 16, (32, 32, 3))
    loop = Loop(model, data.train)
    positions = []

    def val_data(*position):
        positions.append(position)
        return loop.iterator(data.rewards(len(positions)))

    events = []

    class Log(SearchLogger):
        def candidate(self, *args):
            events.append(args[:5])

    candidates = CandidateConfig(train_steps=2, val_batches=1, warmup_steps=3,
                                 warmup_resample=2)
    results = gnas.search(loop, val_data, candidates, gnas.GnasConfig(max_rounds=1),
                          np.random.default_rng(0), Log())
    assert [e[2:4] for e in events] == [("fc1", b) for b in range(4)] + \
        [("conv3", b) for b in range(4)]
    assert model.routing == results[0].routing
    # every candidate of a layer sees the same training and validation batches
    assert positions == [(1, 1, 0)] * 4 + [(1, 1, 1)] * 4 + [(2, 1)]
    assert 0.0 <= results[0].validation.mean_error <= 1.0


def test_random_search_keeps_the_best_tree_seen():
    from gnas_keras.methods import random_search
    space, n = get_space("tiny"), 8

    def accuracy_of(routing):
        return np.array([0.5 + 0.4 * (routing.parents[3][i] == i % 4) for i in range(n)])

    model = FakeModel(space, n)
    loop = FakeLoop(model, accuracy_of)
    trials = random_search.search(loop, lambda *p: None,
                                  CandidateConfig(train_steps=0, val_batches=1), 24,
                                  np.random.default_rng(0))
    assert len(trials) == 24 and loop.trained == 0  # frozen weights
    errors = [t.mean_val_error for t in trials]
    assert [t.best_error for t in trials] == list(np.minimum.accumulate(errors))
    best = trials[int(np.argmin(errors))].routing
    assert model.routing == best == trials[-1].best_routing
