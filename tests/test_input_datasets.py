"""`pipelines.input`: preprocessing for any converted dataset (table rows, metadata, resize)
and several converted datasets read as one (labels of the other datasets unknown)."""

import numpy as np
import pytest

from gnas_keras_pipelines import input as pipeline_input
from gnas_keras_pipelines import records
from tests.fixtures_datasets import write_tiny


A_LABELS = [[1, 0], [0, 1], [1, 1], [0, 0]]
B_LABELS = [[1, -1, 0], [0, 1, 1]]


@pytest.fixture
def two(tmp_path):
    a = str(tmp_path / "a")
    b = str(tmp_path / "b")
    write_tiny(a, "faces", ["Smiling", "Hat"], {s: A_LABELS for s in records.SPLITS},
               shade=0)
    write_tiny(b, "people", ["Hat", "Bag", "Coat"], {s: B_LABELS for s in records.SPLITS},
               size=(20, 12), shade=100)
    return a, b


def test_combined_metadata_prefixes_only_clashing_names(two):
    meta = records.check_dataset(list(two))
    assert meta.name == "faces+people"
    assert meta.attribute_names == ["Smiling", "faces/Hat", "people/Hat", "Bag", "Coat"]
    assert meta.split_sizes == {"train": 6, "validation": 6, "test": 6}
    assert [(p["name"], p["attribute_offset"], p["num_attributes"])
            for p in meta.extra["combined"]] == [("faces", 0, 2), ("people", 2, 3)]
    # The same dataset twice: the second copy gets its own prefix.
    twice = records.combine_metadata([records.read_metadata(two[0])] * 2, [two[0]] * 2)
    assert twice.attribute_names == ["faces/Smiling", "faces/Hat", "faces_2/Smiling",
                                     "faces_2/Hat"]


def test_combined_labels_are_unknown_for_the_other_dataset(two):
    prep = pipeline_input.Preprocessing(10, 8, 10, 8)
    batches = list(pipeline_input.make_dataset(list(two), "test", 4, training=False,
                                               prep=prep))
    labels = np.concatenate([b[1].numpy() for b in batches]).tolist()
    assert labels == [row + [-1, -1, -1] for row in A_LABELS] + [
        [-1, -1] + row for row in B_LABELS]
    assert all(b[0].shape[1:] == (10, 8, 3) for b in batches)  # both resized to one size
    # Training and reward streams draw from both, every row from exactly one dataset.
    for training, shuffled in ((True, False), (False, True)):
        ds = pipeline_input.make_dataset(list(two), "train", 6, training=training, prep=prep,
                                         seed=1, shuffled_evaluation=shuffled)
        rows = np.concatenate([b[1].numpy() for b in ds.take(8)]).tolist()
        from_a = [r for r in rows if r[2:] == [-1, -1, -1]]
        from_b = [r for r in rows if r[:2] == [-1, -1]]
        assert len(from_a) + len(from_b) == len(rows) == 48
        assert {tuple(r[:2]) for r in from_a} == {tuple(r) for r in A_LABELS}
        assert {tuple(r[2:]) for r in from_b} == {tuple(r) for r in B_LABELS}
        # In proportion to the split sizes (4 : 2), within sampling noise.
        assert 20 < len(from_a) < 44


def test_read_labels_gives_every_label_in_file_order_with_the_others_unknown(two):
    """The labels alone (no image decoded) of one split, one dataset after the other, as
    `make_dataset` reads them."""
    labels = pipeline_input.read_labels(list(two), "test")
    assert labels.dtype == np.int32
    assert labels.tolist() == [row + [-1, -1, -1] for row in A_LABELS] + [
        [-1, -1] + row for row in B_LABELS]
    assert pipeline_input.read_labels(two[1], "train").tolist() == B_LABELS


def test_single_folder_in_a_list_reads_like_the_folder(two):
    prep = pipeline_input.Preprocessing(10, 8, 8, 6)
    one = next(iter(pipeline_input.make_dataset(two[0], "train", 4, True, prep, seed=2)))
    listed = next(iter(pipeline_input.make_dataset([two[0]], "train", 4, True, prep, seed=2)))
    assert np.array_equal(one[0], listed[0]) and np.array_equal(one[1], listed[1])


def _meta(name, height, width, **extra):
    return records.Metadata(name=name, source="", attribute_names=["x"], split_sizes={},
                            image_height=height, image_width=width, extra=extra)


def test_preprocessing_known_sets_keep_their_table_rows():
    assert pipeline_input.preprocessing_for(_meta("celeba", 1, 1)) == \
        pipeline_input.PREPROCESSING["celeba"] == pipeline_input.preprocessing_for("celeba")
    # Resize for a known set: the crop scales along (192/218*64 = 56.4, 168/178*64 = 60.4).
    assert pipeline_input.preprocessing_for("celeba", image_height=64, image_width=64) == \
        pipeline_input.Preprocessing(64, 64, 56, 60, True)
    assert pipeline_input.preprocessing_for("synthetic", 20, 24, True, image_height=24) == \
        pipeline_input.Preprocessing(24, 24, 20, 24, True)


def test_preprocessing_of_other_datasets_comes_from_the_metadata():
    # Own data: no flips unless asked for (a mirror image changes orientation-dependent
    # labels, which only the user can rule out).
    assert pipeline_input.preprocessing_for(_meta("faces", 64, 48)) == \
        pipeline_input.Preprocessing(64, 48, 56, 42, False)
    assert pipeline_input.preprocessing_for(_meta("faces", 64, 48), flip=True).flip
    # Large photos: the longer side is brought down to 256, aspect kept.
    assert pipeline_input.preprocessing_for(_meta("photos", 1024, 768)) == \
        pipeline_input.Preprocessing(256, 192, 224, 168, False)
    assert pipeline_input.preprocessing_for(_meta("photos", 1024, 768), 100, 100, False,
                                            image_height=128, image_width=128) == \
        pipeline_input.Preprocessing(128, 128, 100, 100, False)
    combined = _meta("celeba+faces", 64, 48, combined=[
        {"name": "celeba", "image_height": 218, "image_width": 178}])
    assert pipeline_input.preprocessing_for(combined) == pipeline_input.PREPROCESSING["celeba"]
    with pytest.raises(ValueError, match="pass its metadata"):
        pipeline_input.preprocessing_for("faces")
    with pytest.raises(ValueError, match="larger than the image"):
        pipeline_input.preprocessing_for("celeba", 200, 0, image_height=64)
