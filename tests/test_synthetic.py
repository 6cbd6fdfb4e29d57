"""The synthetic set: determinism, balance, metadata layout, that every attribute is a
function of its own group's state only, and that the default version's labels do not show
the groups (no two attributes correlate)."""

import itertools
import os

import numpy as np
import pytest

from gnas_keras_pipelines import records, synthetic

SIZES = {"train": 64, "validation": 16, "test": 16}


def _records(data_dir):
    """The raw bytes of every shard, by file name."""
    out = {}
    for name in sorted(os.listdir(data_dir)):
        if name.endswith(".tfrecord"):
            with open(os.path.join(data_dir, name), "rb") as f:
                out[name] = f.read()
    return out


def test_same_seed_same_records_other_seed_other_records(tmp_path):
    a = synthetic.generate(str(tmp_path / "a"), seed=3, sizes=SIZES, num_shards=2)
    b = synthetic.generate(str(tmp_path / "b"), seed=3, sizes=SIZES, num_shards=2)
    c = synthetic.generate(str(tmp_path / "c"), seed=4, sizes=SIZES, num_shards=2)
    assert _records(tmp_path / "a") == _records(tmp_path / "b")
    assert a.to_json() == b.to_json()
    assert _records(tmp_path / "a") != _records(tmp_path / "c")
    assert c.extra["seed"] == 4


@pytest.mark.parametrize("version,per_group", [(4, 3), (3, 4)])
def test_metadata_layout(tmp_path, version, per_group):
    meta = synthetic.generate(str(tmp_path / "d"), seed=0, sizes=SIZES, num_shards=1,
                              version=version)
    assert meta.extra["group_names"] == ["colour", "form", "texture", "lighting"]
    assert meta.groups == [synthetic.groups(version)[g] for g in meta.extra["group_names"]]
    assert all(len(g) == per_group for g in meta.groups)
    assert meta.attribute_names == [a for g in meta.groups for a in g]
    assert len(set(meta.attribute_names)) == 4 * per_group
    assert meta.split_sizes == SIZES
    assert meta.extra["generator_version"] == version
    assert records.read_metadata(str(tmp_path / "d")).groups == meta.groups


def test_the_default_is_version_4_with_three_multiplexers_per_group():
    assert synthetic.GENERATOR_VERSION == 4
    assert synthetic.GROUPS["form"] == ["form_rule_1", "form_rule_2", "form_rule_3"]
    assert synthetic.groups(3)["form"][-1] == "object_big"  # version 3 kept the majority
    with pytest.raises(ValueError, match="version 2: expected one of 3, 4, 5"):
        synthetic.generate("unused", version=2)


@pytest.mark.parametrize("version", [3, 4])
def test_every_attribute_is_balanced(version):
    every_state = np.array(list(itertools.product(range(8), repeat=4)))  # [4096, 4]
    labels = synthetic.attributes_from_states(every_state, version)
    n = 4 * len(synthetic.groups(version)["colour"])
    assert labels.shape == (4096, n)
    np.testing.assert_array_equal(labels.mean(0), np.full(n, 0.5))


def _train_labels(data_dir, num_attributes):
    import tensorflow as tf
    spec = records.feature_spec(num_attributes)
    files = tf.io.gfile.glob(records.shard_pattern(data_dir, "train"))
    return np.stack([tf.io.parse_single_example(s, spec)["attributes"].numpy()
                     for s in tf.data.TFRecordDataset(files)])


def test_generated_labels_are_exactly_balanced(tmp_path):
    # Every state is drawn equally often per group, so a split of 8k images is balanced.
    synthetic.generate(str(tmp_path / "e"), seed=1, sizes=SIZES, num_shards=1)
    labels = _train_labels(str(tmp_path / "e"), 12)
    assert labels.shape == (64, 12)
    np.testing.assert_array_equal(labels.mean(0), np.full(12, 0.5))


def test_the_default_sets_labels_do_not_show_its_groups(tmp_path):
    """Version 4: on the generated training labels no two attributes correlate, within a
    group exactly (every state equally often, a one-to-one recoding of three fair bits) and
    across groups up to sampling noise (independent states: |r| ~ 1/sqrt(n)); version 3's
    majority correlates +0.5 with each rule of its group."""
    n = 2048
    synthetic.generate(str(tmp_path / "g"), seed=2, num_shards=1, image_size=8,
                       sizes={"train": n, "validation": 8, "test": 8})
    r = np.corrcoef(_train_labels(str(tmp_path / "g"), 12).T)
    within = np.kron(np.eye(4), np.ones((3, 3))).astype(bool)
    off_diagonal = within & ~np.eye(12, dtype=bool)
    np.testing.assert_allclose(r[off_diagonal], 0.0, atol=1e-12)
    assert np.abs(r[~within]).max() < 4 / np.sqrt(n)  # 4 sigma: sampling noise only
    old = synthetic.attributes_from_states(np.arange(8)[:, None].repeat(4, 1), version=3)
    np.testing.assert_allclose(np.corrcoef(old[:, :4].T)[3, :3], 0.5)


def test_version_5_crosses_the_groups_over_the_visual_factors(tmp_path):
    """The held-out set: each group's three bits drive three different factors (every
    factor bit driven by exactly one group bit), the columns go rule by rule, the labels are
    pairwise uncorrelated, and the metadata's groups are the crossed ones."""
    placements = [p for bits in synthetic.CROSSED_BITS.values() for p in bits]
    assert sorted(placements) == [(f, b) for f in range(4) for b in range(3)]
    assert all(len({f for f, _ in bits}) == 3 for bits in synthetic.CROSSED_BITS.values())
    rng = np.random.default_rng(0)
    states = rng.integers(0, 8, (500, 4))
    factors = synthetic.factor_states(states)
    for g, bits in enumerate(synthetic.CROSSED_BITS.values()):
        for b, (factor, factor_bit) in enumerate(bits):
            np.testing.assert_array_equal(synthetic.state_bits(factors)[:, factor, factor_bit],
                                          synthetic.state_bits(states)[:, g, b])
    by_group = synthetic.attributes_from_states(states, version=4)
    crossed = synthetic.attributes_from_states(states, version=5)
    np.testing.assert_array_equal(crossed, by_group.reshape(500, 4, 3).swapaxes(1, 2)
                                  .reshape(500, 12))
    names = synthetic.attribute_names(5)
    assert names[:2] == ["wide_diagonal_bright_rule_1", "red_turned_contrasty_rule_1"]
    n = 1024
    meta = synthetic.generate(str(tmp_path / "v5"), seed=3, num_shards=1, image_size=8,
                              sizes={"train": n, "validation": 8, "test": 8}, version=5)
    assert meta.attribute_names == names and meta.extra["generator_version"] == 5
    assert meta.groups == list(synthetic.groups(5).values())
    r = np.corrcoef(_train_labels(str(tmp_path / "v5"), 12).T)
    assert np.abs(r[~np.eye(12, dtype=bool)]).max() < 4 / np.sqrt(n)


def test_attributes_of_a_group_depend_on_its_own_state_only():
    rng = np.random.default_rng(0)
    states = rng.integers(0, 8, (200, 4))
    labels = synthetic.attributes_from_states(states)
    for other in range(4):
        changed = states.copy()
        changed[:, other] = (changed[:, other] + rng.integers(1, 8, 200)) % 8
        new = synthetic.attributes_from_states(changed)
        for group in range(4):
            cols = slice(3 * group, 3 * group + 3)
            same = np.array_equal(new[:, cols], labels[:, cols])
            assert same == (group != other), (group, other)


def test_a_group_reads_three_multiplexers_and_in_version_3_the_majority():
    # state 6 = bits (x0, x1, x2) = (0, 1, 1): rule_1 = x2 (x0 off) = 1, rule_2 = x2 (x1 on)
    # = 1, rule_3 = x0 (x2 on) = 0, majority 1. State 1 = (1, 0, 0): rule_1 = x1 = 0,
    # rule_2 = x0 = 1, rule_3 = x1 = 0, majority 0. State 0: all 0; state 7: all 1.
    states = np.array([[6, 1, 0, 7]])
    labels = synthetic.attributes_from_states(states, version=3)
    np.testing.assert_array_equal(labels[0], [1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(synthetic.attributes_from_states(states)[0],
                                  [1, 1, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1])


@pytest.mark.parametrize("version", [3, 4])
def test_every_attribute_needs_all_three_bits_of_its_group(version):
    # Knowing any two bits of the group leaves the attribute undetermined, and the
    # attributes together determine the state (so a block must carry the whole state).
    states = np.arange(8)[:, None].repeat(4, axis=1)   # [8, 4], every state in every group
    per_group = len(synthetic.groups(version)["colour"])
    labels = synthetic.attributes_from_states(states, version)[:, :per_group]
    bits = synthetic.state_bits(np.arange(8))
    for attribute in range(per_group):
        for kept in itertools.combinations(range(3), 2):
            table = {}
            for state in range(8):
                table.setdefault(tuple(bits[state, list(kept)]), set()).add(
                    labels[state, attribute])
            assert any(len(v) == 2 for v in table.values()), (attribute, kept)
    assert len({tuple(row) for row in labels}) == 8


def _render(states, seed=0, noise=0.0):
    return synthetic.render(np.array(states), 32, np.random.default_rng(seed),
                            noise).astype(float)


def test_images_show_their_factors():
    # colour: the object's pixels have the colour levels of the state's bits.
    image = _render([[5, 7, 0, 0]])[0]  # colour bits (1, 0, 1), big filled object
    target = np.array([synthetic.COLOUR_LEVELS[b] for b in (1, 0, 1)]) * 255
    assert (np.abs(image - target).max(-1) < 1).sum() > 100
    # lighting: a bright background is brighter; contrast widens the stripes' spread.
    dark, bright = _render([[0, 0, 0, 0]]), _render([[0, 0, 0, 1]])
    assert bright.mean() - dark.mean() > 0.25 * 255
    flat, contrasty = _render([[0, 0, 0, 0]]), _render([[0, 0, 0, 2]])
    assert contrasty.std() > 1.5 * flat.std()
    # grain: more pixel noise at equal everything else.
    calm = _render([[0, 0, 0, 0]], noise=3.0)
    grainy = _render([[0, 0, 0, 4]], noise=3.0)
    assert np.abs(grainy - dark).mean() > 3 * np.abs(calm - dark).mean()


def test_texture_orientation_is_visible():
    # horizontal-axis stripes (0 degrees, coarse) vary along x, not y; 90 degrees the reverse.
    along_x = _render([[0, 0, 0, 2]])[0, ..., 0]  # texture state 0: not diagonal, not turned
    along_y = _render([[0, 0, 2, 2]])[0, ..., 0]  # texture state 2: turned (90 degrees)
    assert np.abs(np.diff(along_x, axis=1)).mean() > 3 * np.abs(np.diff(along_x, axis=0)).mean()
    assert np.abs(np.diff(along_y, axis=0)).mean() > 3 * np.abs(np.diff(along_y, axis=1)).mean()


def test_ensure_generated_replaces_an_older_version(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "DEFAULT_SIZES", SIZES)
    path = str(tmp_path / "f")
    synthetic.ensure_generated(path)
    meta = records.read_metadata(path)
    meta.extra["generator_version"] = 1
    with open(os.path.join(path, records.METADATA_FILE), "w") as f:
        f.write(meta.to_json())
    assert synthetic.ensure_generated(path).extra["generator_version"] == \
        synthetic.GENERATOR_VERSION
    # The version asked for is kept, the other one replaced: version 3 on request.
    assert len(synthetic.ensure_generated(path, version=3).attribute_names) == 16
    assert synthetic.ensure_generated(path, version=3).extra["generator_version"] == 3
    assert len(synthetic.ensure_generated(path).attribute_names) == 12
    with pytest.raises(ValueError, match="not synthetic seed 5"):
        synthetic.ensure_generated(path, seed=5)


def test_a_run_asks_for_the_version_it_wants(tmp_path, monkeypatch):
    # flags.search / flags.study: --synthetic_version reaches the generator.
    from gnas_keras_flags import common
    from gnas_keras.config import RunConfig
    monkeypatch.setattr(synthetic, "DEFAULT_SIZES", SIZES)
    config = RunConfig(dataset="synthetic", data_dir=str(tmp_path / "h"))
    common.generate_synthetic_if_wanted(config, True, 3)
    assert records.read_metadata(config.data_dir).extra["generator_version"] == 3
    common.generate_synthetic_if_wanted(config, True)
    assert records.read_metadata(config.data_dir).extra["generator_version"] == 4
