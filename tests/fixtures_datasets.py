"""Tiny on-disk copies of the six datasets' native layouts, for the converter tests.

Every builder writes the files exactly as the public downloads have them (whitespace quirks,
MATLAB flavours, folder names) but with a handful of small JPEGs. Builders return what the
tests need to check the converted records (expected splits and labels).
"""

from __future__ import annotations

import io
import os
from typing import Dict, List, Sequence, Tuple

import h5py
import numpy as np
import scipy.io
import tensorflow as tf
from PIL import Image

from gnas_keras_pipelines import records

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses "
    "Goatee Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache "
    "Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks "
    "Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick "
    "Wearing_Necklace Wearing_Necktie Young").split()


# ----------------------------------------------------------------------------- generic

def write_jpeg(path: str, height: int = 12, width: int = 10, seed: int = 0) -> bytes:
    """Writes a small JPEG of smooth deterministic content; returns its bytes."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x * 255 // max(width - 1, 1) + seed * 37) % 256,
                    (y * 255 // max(height - 1, 1) + seed * 91) % 256,
                    np.full_like(x, (seed * 53) % 256)], axis=-1).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=95)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(out.getvalue())
    return out.getvalue()


def truncate(path: str) -> None:
    """Cuts a file to half its size (a broken download)."""
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])


def read_records(data_dir: str, split: str) -> List[Tuple[bytes, List[int], str]]:
    """``(image_bytes, attributes, key)`` of every record of a split, in shard order, with
    records interleaved back into writing order (DatasetWriter writes round-robin)."""
    meta = records.read_metadata(data_dir)
    files = sorted(tf.io.gfile.glob(records.shard_pattern(data_dir, split)))
    per_shard = []
    for path in files:
        shard = []
        for raw in tf.data.TFRecordDataset(path):
            ex = tf.io.parse_single_example(raw, records.feature_spec(meta.num_attributes))
            shard.append((ex["image"].numpy(), ex["attributes"].numpy().tolist(),
                          ex["key"].numpy().decode()))
        per_shard.append(shard)
    out = []
    for i in range(max((len(s) for s in per_shard), default=0)):
        out += [s[i] for s in per_shard if i < len(s)]
    return out


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def write_text(path: str, text: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write(text)
    return path


def replace_line(path: str, line_number: int, new_line: str) -> None:
    """Replaces 1-based line `line_number` (keeps the file's line endings)."""
    with open(path, newline="") as f:
        lines = f.read().split("\n")
    lines[line_number - 1] = new_line
    with open(path, "w", newline="") as f:
        f.write("\n".join(lines))


# ----------------------------------------------------------------------------- MATLAB files

def savemat_v7(path: str, variables: Dict[str, object]) -> None:
    """MATLAB -v7 file (what ``save(..., '-v7')`` writes; scipy writes the same format)."""
    scipy.io.savemat(path, variables, do_compression=True)


def savemat_v73(path: str, variables: Dict[str, object]) -> None:
    """MATLAB -v7.3 file, laid out the way MATLAB writes it.

    An HDF5 file with a 512-byte user block holding the MATLAB header text. Numeric arrays are
    stored transposed (HDF5 is row-major, MATLAB column-major) with a ``MATLAB_class``
    attribute. Strings are uint16 char arrays of shape (len, 1). Cell arrays are arrays of
    object references (transposed) to datasets in the ``#refs#`` group.

    `variables` values: 2-D numeric numpy arrays, `str`, or object arrays (cells) of those.
    """
    counter = [0]
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")

        def write(group, name, value):
            if isinstance(value, str):
                codes = np.array([[ord(c)] for c in value], dtype=np.uint16)  # (len, 1)
                ds = group.create_dataset(name, data=codes)
                ds.attrs["MATLAB_class"] = np.bytes_(b"char")
                ds.attrs["MATLAB_int_decode"] = np.int32(2)
                return ds
            value = np.asarray(value)
            if value.dtype == object:
                cells = np.empty(value.T.shape, dtype=h5py.ref_dtype)
                for index in np.ndindex(value.shape):
                    counter[0] += 1
                    target = write(refs, _ref_name(counter[0]), value[index])
                    cells[index[::-1]] = target.ref
                ds = group.create_dataset(name, data=cells)
                ds.attrs["MATLAB_class"] = np.bytes_(b"cell")
                return ds
            ds = group.create_dataset(name, data=value.T)
            ds.attrs["MATLAB_class"] = np.bytes_(
                b"double" if value.dtype == np.float64 else str(value.dtype).encode())
            return ds

        for name, value in variables.items():
            write(f, name, value)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 " \
             b"HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")


def _ref_name(i: int) -> str:
    # MATLAB names referenced datasets a, b, ..., z, ba, bb, ...
    letters = "abcdefghijklmnopqrstuvwxyz"
    name = ""
    while True:
        name = letters[i % 26] + name
        i //= 26
        if i == 0:
            return name


def cell(values: Sequence, column: bool = True) -> np.ndarray:
    """A MATLAB cell array (N x 1 or 1 x N) of the given values."""
    out = np.empty((len(values), 1) if column else (1, len(values)), dtype=object)
    for i, v in enumerate(values):
        out.flat[i] = v
    return out


# ----------------------------------------------------------------------------- CelebA

def celeba_labels(i: int) -> List[int]:
    """Deterministic 1/-1 pattern for image i (1-based)."""
    return [1 if (i * 7 + j * 3) % 5 < 2 else -1 for j in range(len(CELEBA_ATTRIBUTES))]


CELEBA_PARTITION = [0, 0, 0, 0, 1, 1, 2, 2]


def make_celeba(root: str, layout: str = "flat", height: int = 22, width: int = 18) -> Dict:
    """CelebA files: ``flat`` (all in `root`), ``official`` (``Img/ Anno/ Eval/``) or ``kaggle``
    (CSV files, images in ``img_align_celeba/img_align_celeba/``).

    Returns {"images": {name: jpeg bytes}, "labels": {name: [1/-1]*40}, "splits": {name: split}}
    """
    n = len(CELEBA_PARTITION)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    image_dir = {"flat": "img_align_celeba", "official": "Img/img_align_celeba",
                 "kaggle": "img_align_celeba/img_align_celeba"}[layout]
    images = {name: write_jpeg(os.path.join(root, image_dir, name), height, width, seed=i)
              for i, name in enumerate(names, start=1)}
    labels = {name: celeba_labels(i) for i, name in enumerate(names, start=1)}
    if layout == "kaggle":
        write_text(os.path.join(root, "list_attr_celeba.csv"),
                   "image_id," + ",".join(CELEBA_ATTRIBUTES) + "\n" + "".join(
                       name + "," + ",".join(str(v) for v in labels[name]) + "\n"
                       for name in names))
        write_text(os.path.join(root, "list_eval_partition.csv"), "image_id,partition\n" +
                   "".join(f"{name},{p}\n" for name, p in zip(names, CELEBA_PARTITION)))
    else:
        anno, ev = ("Anno", "Eval") if layout == "official" else ("", "")
        # Real quirks: trailing space after the names; values as %2d joined by one space, so
        # 1 is preceded by two spaces and -1 by one.
        write_text(os.path.join(root, anno, "list_attr_celeba.txt"),
                   f"{n}\n" + " ".join(CELEBA_ATTRIBUTES) + " \n" + "".join(
                       name + " " + " ".join(f"{v:2d}" for v in labels[name]) + "\n"
                       for name in names))
        write_text(os.path.join(root, ev, "list_eval_partition.txt"),
                   "".join(f"{name} {p}\n" for name, p in zip(names, CELEBA_PARTITION)))
    splits = {name: records.SPLITS[p] for name, p in zip(names, CELEBA_PARTITION)}
    return {"images": images, "labels": labels, "splits": splits}


def make_celeba_tfds(tmp: str) -> Dict:
    """A tensorflow-datasets ``celeb_a`` directory, prepared by the real tfds builder.

    The builder's downloads are replaced by a CelebA fixture (an ``img_align_celeba.zip`` and
    the annotation text files incl. landmarks and identities), so tfds' own code writes the
    prepared files exactly as `tfds.load('celeb_a')` would. Returns make_celeba's dict plus
    "data_dir" (the tfds data dir holding ``celeb_a/2.1.0``).
    """
    import zipfile
    from unittest import mock

    import tensorflow_datasets as tfds

    raw = os.path.join(tmp, "raw")
    fixture = make_celeba(raw, "flat")
    names = sorted(fixture["images"])
    with zipfile.ZipFile(os.path.join(raw, "img_align_celeba.zip"), "w") as z:
        for name in names:
            z.writestr(f"img_align_celeba/{name}", fixture["images"][name])
    landmarks = ("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x "
                 "leftmouth_y rightmouth_x rightmouth_y")
    write_text(os.path.join(raw, "list_landmarks_align_celeba.txt"),
               f"{len(names)}\n{landmarks}\n" + "".join(
                   f"{name} " + " ".join(str(60 + k) for k in range(10)) + "\n"
                   for name in names))
    write_text(os.path.join(raw, "identity_CelebA.txt"),
               "".join(f"{name} {i}\n" for i, name in enumerate(names, start=1)))
    downloads = {
        "img_align_celeba": os.path.join(raw, "img_align_celeba.zip"),
        "list_eval_partition": os.path.join(raw, "list_eval_partition.txt"),
        "list_attr_celeba": os.path.join(raw, "list_attr_celeba.txt"),
        "landmarks_celeba": os.path.join(raw, "list_landmarks_align_celeba.txt"),
        "identity_celeba": os.path.join(raw, "identity_CelebA.txt"),
    }
    data_dir = os.path.join(tmp, "tensorflow_datasets")
    builder = tfds.builder("celeb_a", data_dir=data_dir)
    with mock.patch.object(tfds.download.DownloadManager, "download",
                           lambda self, urls: {k: downloads[k] for k in urls}):
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
            compute_stats=tfds.download.ComputeStatsMode.SKIP))
    fixture["data_dir"] = data_dir
    return fixture


# ----------------------------------------------------------------------------- LFWA

LFWA_PEOPLE = ["Aaron_Eckhart", "Abdullah_Gul", "Ai_Sugiyama", "Alan_Ball"]


def make_lfwa(root: str, flavour: str = "v7", size: int = 25) -> Dict:
    """LFWA: ``lfw/<Person>/<Person>_NNNN.jpg``, ``lfw_att_40.mat`` and
    ``indices_train_test.mat`` in MATLAB `flavour` ``v7`` or ``v73``.

    Nine images; training indices (1-based, file order) 5 1 7 2 9 3, test 4 6 8. With
    num_train=4 the expected split is train = rows 5 1 7 2, validation = 9 3, test = 4 6 8.
    """
    names, images = [], {}
    for p, person in enumerate(LFWA_PEOPLE):
        for k in range(1, 4 if p < 2 else 2 + (p == 2)):
            rel = f"{person}/{person}_{k:04d}.jpg"
            images[rel] = write_jpeg(os.path.join(root, "lfw", rel), size, size,
                                     seed=len(names))
            names.append(rel.replace("/", "\\"))
    assert len(names) == 9
    label = np.array([[(i + j) % 3 == 0 for j in range(40)] for i in range(len(names))],
                     dtype=np.float64)
    save = savemat_v7 if flavour == "v7" else savemat_v73
    save(os.path.join(root, "lfw_att_40.mat"), {
        "name": cell(names), "label": label,
        "AttrName": cell(CELEBA_ATTRIBUTES, column=False)})
    save(os.path.join(root, "indices_train_test.mat"), {
        "indices_img_train": np.array([[5.0], [1], [7], [2], [9], [3]]),
        "indices_img_test": np.array([[4.0], [6], [8]]),
        "indices_identity_train": np.array([[1.0], [2]]),
        "indices_identity_test": np.array([[3.0], [4]])})
    rel_names = [n.replace("\\", "/") for n in names]
    splits = {"train": [5, 1, 7, 2], "validation": [9, 3], "test": [4, 6, 8]}
    return {"images": images, "names": rel_names, "label": label.astype(int),
            "splits": {s: [rel_names[i - 1] for i in rows] for s, rows in splits.items()}}


# ----------------------------------------------------------------------------- Market-1501

MARKET_BINARY = (
    "backpack", "bag", "handbag", "clothes", "down", "up", "hair", "hat", "gender",
    "upblack", "upwhite", "upred", "uppurple", "upyellow", "upgray", "upblue", "upgreen",
    "downblack", "downwhite", "downpink", "downpurple", "downyellow", "downgray", "downblue",
    "downgreen", "downbrown")

MARKET_TRAIN_IDS = ["0002", "0007", "0010", "0011"]
MARKET_TEST_IDS = ["0001", "0003"]


def market_values(identity: str) -> Dict[str, int]:
    """Source encoding per field: age 1..4, others 1 (no) / 2 (yes)."""
    i = int(identity)
    values = {f: 1 + (i + j) % 2 for j, f in enumerate(MARKET_BINARY)}
    values["age"] = 1 + i % 4
    return values


def make_market(root: str, height: int = 16, width: int = 8) -> Dict:
    """Market-1501 + attributes: ``Market-1501_Attribute/market_attribute.mat`` (struct with
    ``train`` and ``test`` whose field orders differ) and
    ``Market-1501-v15.09.15/bounding_box_{train,test}/`` with junk (0000), distractor (-1)
    and Thumbs.db entries. Returns {"train": {file: identity}, "test": {...}, "images": ...}.
    """
    def struct(ids, reverse):
        fields = ["image_index", "age", *MARKET_BINARY]
        if reverse:
            fields = fields[::-1]
        out = {}
        for f in fields:
            if f == "image_index":
                out[f] = cell(ids, column=False)
            else:
                out[f] = np.array([[market_values(i)[f] for i in ids]], dtype=np.uint8)
        return out

    os.makedirs(os.path.join(root, "Market-1501_Attribute"))
    savemat_v7(os.path.join(root, "Market-1501_Attribute", "market_attribute.mat"),
               {"market_attribute": {"test": struct(MARKET_TEST_IDS, True),
                                     "train": struct(MARKET_TRAIN_IDS, False)}})
    base = os.path.join(root, "Market-1501-v15.09.15")
    files = {
        "bounding_box_train": [f"{i}_c{c}s1_00{k}451_0{c}.jpg" for i in MARKET_TRAIN_IDS
                               for c, k in ((1, 1), (3, 2))],
        "bounding_box_test": ["0000_c1s1_000000_01.jpg", "-1_c1s1_000401_03.jpg"] + [
            f"{i}_c2s1_00{k}151_01.jpg" for i in MARKET_TEST_IDS for k in (1, 2, 3)],
    }
    images = {}
    n = 0
    for folder, names in files.items():
        for name in names:
            images[f"{folder}/{name}"] = write_jpeg(os.path.join(base, folder, name), height,
                                                    width, seed=n)
            n += 1
        write_text(os.path.join(base, folder, "Thumbs.db"), "not an image")
    return {"images": images, "base": base}


# ----------------------------------------------------------------------------- AwA

AWA_CLASSES = ["antelope", "grizzly+bear", "chimpanzee", "giant+panda", "killer+whale"]
AWA_PREDICATES = ["black", "white", "blue", "brown", "gray", "orange"]
AWA_TRAIN = ["antelope", "grizzly+bear", "killer+whale"]
AWA_TEST = ["chimpanzee", "giant+panda"]


def make_awa(root: str, folder: str = "Animals_with_Attributes2", per_class: int = 4) -> Dict:
    """AwA2 (or AwA1 with folder ``Animals_with_Attributes``): the text files in their real
    format (``     1\\tantelope``) and ``JPEGImages/<class>/<class>_10001.jpg``."""
    base = os.path.join(root, folder)
    write_text(os.path.join(base, "classes.txt"),
               "".join(f"{i:6d}\t{c}\n" for i, c in enumerate(AWA_CLASSES, start=1)))
    write_text(os.path.join(base, "predicates.txt"),
               "".join(f"{i:6d}\t{p}\n" for i, p in enumerate(AWA_PREDICATES, start=1)))
    matrix = [[(c + p) % 2 for p in range(len(AWA_PREDICATES))]
              for c in range(len(AWA_CLASSES))]
    write_text(os.path.join(base, "predicate-matrix-binary.txt"),
               "".join(" ".join(map(str, row)) + "\n" for row in matrix))
    write_text(os.path.join(base, "trainclasses.txt"), "".join(c + "\n" for c in AWA_TRAIN))
    write_text(os.path.join(base, "testclasses.txt"), "".join(c + "\n" for c in AWA_TEST))
    images = {}
    for c, cls in enumerate(AWA_CLASSES):
        for k in range(per_class):
            rel = f"JPEGImages/{cls}/{cls}_{10001 + k}.jpg"
            images[rel] = write_jpeg(os.path.join(base, rel), 14, 20, seed=c * 10 + k)
    return {"base": base, "matrix": matrix, "images": images}


# ----------------------------------------------------------------------------- aPY

APY_ATTRIBUTES = [
    "2D Boxy", "3D Boxy", "Round", "Vert Cyl", "Horiz Cyl", "Occluded", "Tail", "Beak", "Head",
    "Ear", "Snout", "Nose", "Mouth", "Hair", "Face", "Eye", "Torso", "Hand", "Arm", "Leg",
    "Foot/Shoe", "Wing", "Propeller", "Jet engine", "Window", "Row Wind", "Wheel", "Door",
    "Headlight", "Taillight", "Side mirror", "Exhaust", "Pedal", "Handlebars", "Engine",
    "Sail", "Mast", "Text", "Label", "Furn. Leg", "Furn. Back", "Furn. Seat", "Furn. Arm",
    "Horn", "Rein", "Saddle", "Leaf", "Flower", "Stem/Trunk", "Pot", "Screen", "Skin", "Metal",
    "Plastic", "Wood", "Cloth", "Furry", "Glass", "Feather", "Wool", "Clear", "Shiny",
    "Vegetation", "Leather"]
APY_CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor", "donkey", "monkey", "goat", "wolf", "jetski", "zebra", "centaur",
    "mug", "statue", "building", "bag", "carriage"]

# (file, image, class, x1, y1, x2, y2); image sizes are 40 wide x 30 high.
APY_BOXES = {
    "apascal_train.txt": [("2008_000001.jpg", "person", 3, 2, 20, 28),
                          ("2008_000001.jpg", "dog", 21, 11, 40, 30),
                          ("2008_000002.jpg", "tvmonitor", 5, 5, 35, 25),
                          ("2008_000002.jpg", "chair", 10, 10, 10, 20),  # zero area
                          ("2008_000003.jpg", "car", 1, 1, 40, 30),
                          ("2008_000004.jpg", "cat", 8, 3, 30, 18)],
    "apascal_test.txt": [("2008_000005.jpg", "bus", 2, 4, 38, 26)],
    "ayahoo_test.txt": [("bag_227.jpg", "bag", 6, 6, 25, 29)],
}


def apy_labels(file_index: int, line: int) -> List[int]:
    return [int((file_index * 5 + line * 3 + j) % 4 == 0) for j in range(len(APY_ATTRIBUTES))]


def make_apy(root: str) -> Dict:
    """aPY: ``attribute_data/*.txt`` plus ``VOCdevkit/VOC2008/JPEGImages`` and
    ``ayahoo_test_images``. Returns {"lines": {file: [(image_path, box, labels) or None for
    zero-area]}}."""
    data = os.path.join(root, "attribute_data")
    write_text(os.path.join(data, "attribute_names.txt"), "\n".join(APY_ATTRIBUTES) + "\n")
    write_text(os.path.join(data, "class_names.txt"), "\n".join(APY_CLASSES) + "\n")
    lines = {}
    written = set()
    for f, (file_name, boxes) in enumerate(APY_BOXES.items()):
        image_dir = os.path.join(root, "ayahoo_test_images" if file_name.startswith("ayahoo")
                                 else "VOCdevkit/VOC2008/JPEGImages")
        text, lines[file_name] = "", []
        for k, (image, cls, x1, y1, x2, y2) in enumerate(boxes, start=1):
            labels = apy_labels(f, k)
            text += f"{image} {cls} {x1} {y1} {x2} {y2} " + " ".join(map(str, labels)) + "\n"
            path = os.path.join(image_dir, image)
            if path not in written:
                write_jpeg(path, 30, 40, seed=len(written))
                written.add(path)
            lines[file_name].append((path, (x1, y1, x2, y2), labels))
        write_text(os.path.join(data, file_name), text)
    return {"lines": lines}


# ----------------------------------------------------------------------------- SUN

SUN_ATTRIBUTES = ["sailing/ boating", "driving", "biking", "no horizon", "man-made"]
SUN_PATHS = [
    "a/abbey/sun_aaalbzqrimafwbiv.jpg", "a/abbey/sun_aacphuqeqnzkzqvs.jpg",
    "a/apartment_building/outdoor/sun_aabhjwfgahydjjme.jpg",
    "a/apartment_building/outdoor/sun_aaghwofwbvptbjil.jpg",
    "b/beach/sun_aabcnfapicwqeibn.jpg", "b/bedroom/sun_aaajwnfblludyasb.jpg",
    "b/bedroom/sun_aabfiyvjhgxnmxso.jpg", "c/canyon/sun_aacdnxwzhfnmsrrw.jpg",
    "c/castle/sun_aaaqgqivsdhxrycm.jpg", "c/castle/sun_aabgpadbnaqhqvge.jpg",
]


def make_sun(root: str) -> Dict:
    """SUN Attribute: ``SUNAttributeDB/{images,attributes,attributeLabels_continuous}.mat``
    (MATLAB v7 cells and a double matrix) and ``images/<path>``. Vote fractions cycle through
    0, 1/3, 0.5, 2/3, 1 (0.5 does not occur in the real data; it tests ``>=``)."""
    db = os.path.join(root, "SUNAttributeDB")
    os.makedirs(db)
    fractions = [0.0, 1 / 3, 0.5, 2 / 3, 1.0]
    labels = np.array([[fractions[(i + 2 * j) % 5] for j in range(len(SUN_ATTRIBUTES))]
                       for i in range(len(SUN_PATHS))])
    savemat_v7(os.path.join(db, "images.mat"), {"images": cell(SUN_PATHS)})
    savemat_v7(os.path.join(db, "attributes.mat"), {"attributes": cell(SUN_ATTRIBUTES)})
    savemat_v7(os.path.join(db, "attributeLabels_continuous.mat"), {"labels_cv": labels})
    images = {p: write_jpeg(os.path.join(root, "images", p), 16, 20, seed=i)
              for i, p in enumerate(SUN_PATHS)}
    return {"labels": labels, "images": images}


# ----------------------------------------------------------------------------- test helpers

def all_records(data_dir: str) -> Dict[str, List[Tuple[bytes, List[int], str]]]:
    return {split: read_records(data_dir, split) for split in records.SPLITS}


def conversion_error(fn, *fragments: str):
    """Runs `fn`, expects a ConversionError whose message contains every fragment."""
    import pytest

    from gnas_keras_pipelines.convert_errors import ConversionError

    with pytest.raises(ConversionError) as info:
        fn()
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    return info.value


def check_interrupted_then_rerun(convert, output_dir: str, monkeypatch, after: int = 2):
    """Makes the writer fail after `after` records: no output_dir and no temporary folder
    may remain; then a normal run succeeds. `convert(output_dir)` runs the converter."""
    import pytest

    original = records.DatasetWriter.add
    calls = [0]

    def failing_add(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] > after:
            raise KeyboardInterrupt("simulated interrupt")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(records.DatasetWriter, "add", failing_add)
    with pytest.raises(KeyboardInterrupt):
        convert(output_dir)
    parent = os.path.dirname(os.path.abspath(output_dir))
    assert not os.path.exists(output_dir)
    assert not [n for n in os.listdir(parent) if ".tmp-" in n]
    monkeypatch.setattr(records.DatasetWriter, "add", original)
    meta = convert(output_dir)
    assert os.path.isfile(os.path.join(output_dir, records.METADATA_FILE))
    return meta


# ----------------------------------------------------------------------------- own folder

FOLDER_ATTRIBUTES = ["Smiling", "Eyeglasses", "Hat"]


def make_folder(root: str, rows: Sequence[str], header: str = "image,Smiling,Eyeglasses,Hat",
                bom: bool = False, crlf: bool = False, size: Tuple[int, int] = (14, 12)
                ) -> str:
    """An own dataset: ``images/<name>.jpg`` for every row's first field and ``labels.csv``
    with `header` and `rows` (as written, so tests control every cell). Returns the CSV path.
    """
    for i, row in enumerate(rows):
        image = row.split(",")[0].strip('"')
        if image:
            write_jpeg(os.path.join(root, "images", image), *size, seed=i)
    end = "\r\n" if crlf else "\n"
    return write_text(os.path.join(root, "labels.csv"),
                      ("\ufeff" if bom else "") + end.join([header, *rows]) + end)


# ----------------------------------------------------------------------------- converted sets

def write_tiny(path, name, attribute_names, labels_by_split, size=(10, 8), shade=0,
               num_shards=1):
    """A converted dataset of flat-colour PNGs; record i of a split has labels_by_split[i]."""
    shards = {s: num_shards for s in records.SPLITS}
    with records.DatasetWriter(path, shards) as writer:
        for split in records.SPLITS:
            for i, labels in enumerate(labels_by_split.get(split, [])):
                out = io.BytesIO()
                Image.fromarray(np.full((*size, 3), shade + i, np.uint8)).save(out, "PNG")
                writer.add(split, out.getvalue(), labels, key=f"{split}/{i}")
        meta = records.Metadata(name=name, source="test", attribute_names=attribute_names,
                                split_sizes={}, image_height=size[0], image_width=size[1])
        writer.finish(meta)
    return meta


# ----------------------------------------------------------------------------- real tools' quirks

def windows_text(root: str, suffixes=(".txt", ".csv")) -> List[str]:
    """Rewrites every text file below `root` as Windows tools leave it: UTF-8 byte-order mark,
    CRLF line ends and trailing spaces on every line. Returns the files changed."""
    changed = []
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            if not name.endswith(suffixes):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8", newline="") as f:
                lines = f.read().splitlines()
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write("\ufeff" + "".join(line + "  \r\n" for line in lines))
            changed.append(path)
    return changed


def padded_cell(values: Sequence[str], column: bool = True) -> np.ndarray:
    """A cell of strings as a careless export writes them: a byte-order mark on the first,
    trailing spaces (MATLAB char-matrix padding) and a CR on every one."""
    return cell([("\ufeff" if i == 0 else "") + v + "  \r" for i, v in enumerate(values)],
                column)
