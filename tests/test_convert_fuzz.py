"""Fuzz: every converter's readers fed seeded random truncations and byte flips of their
fixtures' annotation files. Every outcome is a success or one `ConversionError` line, never
another exception (a traceback for the user)."""

import os

import numpy as np
import pytest

from gnas_keras_pipelines import apy, awa, celeba, convert_common, folder, lfwa, market1501, records, sun
from gnas_keras_pipelines.convert_errors import ConversionError
from tests import fixtures_datasets as fx

MUTATIONS_PER_CONVERTER = 40


def _folder_source(root):
    fx.make_folder(root, ["a.jpg,1,0,1,train", "b.jpg,0,,1,test", "c.jpg,-1,1,0,validation",
                          "d.jpg,1,1,1,train"], header="image,Smiling,Eyeglasses,Hat,split")


def _out(source: str) -> str:
    return source + "_out"


# name -> (build the source, run the converter on it, annotation files relative to the source)
CONVERTERS = {
    "celeba": (fx.make_celeba, lambda s, **kw: celeba.convert(s, _out(s), **kw),
               ["list_attr_celeba.txt", "list_eval_partition.txt"]),
    "celeba_kaggle": (lambda r: fx.make_celeba(r, "kaggle"),
                      lambda s, **kw: celeba.convert(s, _out(s), **kw),
                      ["list_attr_celeba.csv", "list_eval_partition.csv"]),
    "lfwa_v7": (fx.make_lfwa, lambda s, **kw: lfwa.convert(s, _out(s), num_train=4, **kw),
                ["lfw_att_40.mat", "indices_train_test.mat"]),
    "lfwa_v73": (lambda r: fx.make_lfwa(r, "v73"),
                 lambda s, **kw: lfwa.convert(s, _out(s), num_train=4, **kw),
                 ["lfw_att_40.mat", "indices_train_test.mat"]),
    "market1501": (fx.make_market,
                   lambda s, **kw: market1501.convert(s, _out(s), val_identities=1, **kw),
                   ["Market-1501_Attribute/market_attribute.mat"]),
    "awa2": (fx.make_awa, lambda s, **kw: awa.convert(s, _out(s), **kw),
             [f"Animals_with_Attributes2/{f}" for f in (
                 "classes.txt", "predicates.txt", "predicate-matrix-binary.txt",
                 "trainclasses.txt", "testclasses.txt")]),
    "apy": (fx.make_apy, lambda s, **kw: apy.convert(s, _out(s), **kw),
            [f"attribute_data/{f}" for f in (
                "apascal_train.txt", "apascal_test.txt", "ayahoo_test.txt",
                "attribute_names.txt", "class_names.txt")]),
    "sun": (fx.make_sun, lambda s, **kw: sun.convert(s, _out(s), **kw),
            [f"SUNAttributeDB/{f}" for f in (
                "images.mat", "attributes.mat", "attributeLabels_continuous.mat")]),
    "folder": (_folder_source,
               lambda s, **kw: folder.convert(os.path.join(s, "images"), _out(s), name="mine",
                                              labels=os.path.join(s, "labels.csv"), **kw),
               ["labels.csv"]),
}


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """A truncation, a few flipped or replaced bytes, or both."""
    data = bytearray(data)
    kind = rng.integers(3)
    if kind != 1 and data:
        data = data[:rng.integers(len(data))]
    if kind != 0 and data:
        for _ in range(rng.integers(1, 5)):
            i = rng.integers(len(data))
            data[i] = (data[i] ^ (1 << rng.integers(8))) if rng.random() < 0.7 \
                else rng.integers(256)
    return bytes(data)


def _parse_only(*, attribute_names, items, **unused):
    """Stands in for `write_dataset`: checks what the readers produced, writes nothing."""
    n = len(attribute_names)
    assert n >= 1 and all(isinstance(a, str) for a in attribute_names)
    for item in items:
        assert item.split in records.SPLITS
        assert len(item.attributes) == n and set(item.attributes) <= {-1, 0, 1}
    return "converted"


@pytest.mark.parametrize("name", sorted(CONVERTERS))
def test_mutated_annotations_give_success_or_one_line(tmp_path, monkeypatch, name):
    build, run, files = CONVERTERS[name]
    src = str(tmp_path / "src")
    build(src)
    monkeypatch.setattr(convert_common, "write_dataset", _parse_only)
    originals = {f: open(os.path.join(src, f), "rb").read() for f in files}
    assert run(src) == "converted"  # the unmutated fixture converts
    rng = np.random.default_rng(sorted(CONVERTERS).index(name))
    outcomes = {"converted": 0, "error": 0}
    for trial in range(MUTATIONS_PER_CONVERTER):
        target = files[rng.integers(len(files))]
        with open(os.path.join(src, target), "wb") as f:
            f.write(_mutate(originals[target], rng))
        try:
            # Half the trials with --skip_bad: bad lines are then counted, not fatal.
            outcomes[run(src, skip_bad=bool(trial % 2))] += 1
        except ConversionError as err:
            message = str(err)
            assert message and "\n" not in message and "\r" not in message, (trial, message)
            outcomes["error"] += 1
        except Exception as err:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{name}, trial {trial}, {target}: {type(err).__name__}: {err}")
        finally:
            with open(os.path.join(src, target), "wb") as f:
                f.write(originals[target])
    assert outcomes["error"] > 0  # the mutations do reach the readers


def test_mutated_images_and_csv_of_the_folder_converter(tmp_path):
    """The folder converter for real (images read, records written): seeded truncations and
    byte flips of its images (JPEG, PNG, 16-bit PNG, GIF) and of its CSV end in a dataset
    whose every record decodes as training decodes it, or in one `ConversionError` line;
    nothing is left beside the output folder either way."""
    src = tmp_path / "src"
    _folder_source(str(src))
    images = src / "images"
    rng_pixels = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    extra = {"e.png": (rng_pixels, "PNG"), "f.png": (np.uint16(rng_pixels[..., 0]) * 257,
                                                     "PNG"), "g.gif": (rng_pixels, "GIF")}
    for name, (pixels, fmt) in extra.items():
        image = fx.Image.fromarray(pixels)
        image.save(images / name, format=fmt)
    with open(src / "labels.csv", "a") as f:
        f.write("".join(f"{name},1,0,1,train\n" for name in extra))
    targets = ["labels.csv"] + [f"images/{n}" for n in sorted(os.listdir(images))]
    originals = {t: (src / t).read_bytes() for t in targets}
    out = str(tmp_path / "out")

    def convert(trial):
        return folder.convert(str(images), out, name="mine", labels=str(src / "labels.csv"),
                              num_shards=1, overwrite=True, skip_bad=bool(trial % 2))

    convert(0)
    rng = np.random.default_rng(99)
    outcomes = {"converted": 0, "error": 0}
    for trial in range(MUTATIONS_PER_CONVERTER):
        target = targets[rng.integers(len(targets))]
        (src / target).write_bytes(_mutate(originals[target], rng))
        try:
            convert(trial)
            records.check_dataset(out)  # every record written decodes
            outcomes["converted"] += 1
        except ConversionError as err:
            assert str(err) and "\n" not in str(err), (trial, str(err))
            outcomes["error"] += 1
        except Exception as err:  # noqa: BLE001 - the point of the test
            pytest.fail(f"folder, trial {trial}, {target}: {type(err).__name__}: {err}")
        finally:
            (src / target).write_bytes(originals[target])
        assert sorted(os.listdir(tmp_path)) == ["out", "src"], trial
    assert outcomes["error"] > 0 and outcomes["converted"] > 0, outcomes
