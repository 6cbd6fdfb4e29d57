"""Issue 30, serving side: an empty batch is answered with empty outputs by both exported graphs
and the bytes signature (case 14); ``serving_bytes`` refuses an image above the export's pixel
limit before decoding it (case 7); `flags.export` on a damaged export or with a bad flag is
one line naming it, exit 2 (cases 12, 14, 15)."""

import io
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from gnas_keras.export import saved_model as export_module
from gnas_keras.export.saved_model import export_saved_model
from tests.test_export import NAMES, trained_supernet
from tests.test_run_safety import in_process
from tests.test_serving import PREP

LIMIT = 64 * 64  # pixels: small enough to test without big images


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """{graph: version directory}: the per-block and the fused graph of one trained supernet,
    both with the bytes signature and a pixel limit of `LIMIT`."""
    base = tmp_path_factory.mktemp("limits")
    model, architecture, _ = trained_supernet()
    exported = {graph: export_saved_model(model, architecture, NAMES, str(base), graph,
                                          preprocessing=PREP, fused=graph == "fused",
                                          max_pixels=LIMIT)
                for graph in ("per_block", "fused")}
    exported["model"] = (model, architecture)
    return exported


# PIL format and options -> the header `encoded_pixels` reads (WebP: VP8, VP8L, VP8X).
FORMATS = {"PNG": ("PNG", {}), "JPEG": ("JPEG", {}), "GIF": ("GIF", {}), "BMP": ("BMP", {}),
           "WEBP": ("WEBP", {}), "WEBP_LOSSLESS": ("WEBP", {"lossless": True}),
           "WEBP_ALPHA": ("WEBP", {})}


def encoded(fmt: str, height: int, width: int) -> bytes:
    out = io.BytesIO()
    name, options = FORMATS[fmt]
    mode, colour = ("RGBA", (90, 120, 30, 128)) if fmt == "WEBP_ALPHA" else ("RGB", (90, 120, 30))
    Image.new(mode, (width, height), colour).save(out, name, **options)
    return out.getvalue()


@pytest.mark.parametrize("graph", ["per_block", "fused"])
def test_an_empty_batch_gets_empty_outputs(exports, graph):
    loaded = tf.saved_model.load(exports[graph])
    plain = loaded.signatures["serving_default"](image=tf.zeros([0, 32, 32, 3]))
    assert sorted(plain) == sorted(NAMES)
    assert all(v.shape == (0,) and v.dtype == tf.float32 for v in plain.values())
    decoded = loaded.signatures["serving_bytes"](image_bytes=tf.constant([], tf.string))
    assert sorted(decoded) == sorted(NAMES + [n + "_present" for n in NAMES])
    assert all(v.shape == (0,) for v in decoded.values())
    assert all(decoded[n + "_present"].dtype == tf.bool for n in NAMES)
    # a batch of one still gets its own answer (the empty-batch filler is not added)
    one = loaded.signatures["serving_default"](image=tf.fill([1, 32, 32, 3], 100.0))
    assert all(v.shape == (1,) for v in one.values())


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_the_pixel_limit_is_read_from_the_header_of_every_format(fmt):
    for height, width in ((1, 1), (64, 64), (65, 64), (3000, 5)):
        data = encoded(fmt, height, width)
        assert int(export_module.encoded_pixels(tf.constant(data))) == height * width
    if fmt.startswith("WEBP"):
        chunk = {"WEBP": b"VP8 ", "WEBP_LOSSLESS": b"VP8L", "WEBP_ALPHA": b"VP8X"}[fmt]
        assert data[12:16] == chunk
    for other in (b"no image", b"", b"\x89PN"):
        assert int(export_module.encoded_pixels(tf.constant(other))) == -1


def test_bytes_signature_refuses_an_image_above_the_pixel_limit(exports):
    loaded = tf.saved_model.load(exports["fused"])
    fits = loaded.signatures["serving_bytes"](image_bytes=tf.constant(
        [encoded("PNG", 64, 64), encoded("JPEG", 40, 36)]))
    assert all(v.shape == (2,) for v in fits.values())
    for fmt in FORMATS:
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=f"image_bytes: an image has more than {LIMIT} pixels"):
            loaded.signatures["serving_bytes"](image_bytes=tf.constant(
                [encoded("PNG", 8, 8), encoded(fmt, 65, 64)]))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="image_bytes: an image is not an encoded JPEG, PNG, GIF, BMP or "
                             "WebP image"):
        loaded.signatures["serving_bytes"](image_bytes=tf.constant([b"\0\0\0\x0cJXL "]))
    info = json.load(open(os.path.join(exports["fused"], "export.json")))
    assert info["max_pixels"] == LIMIT and f"at most {LIMIT} pixels" in \
        info["input"]["image_bytes"]


def damaged_copies(path, tmp_path):
    """Copies of export `path`, each damaged one way: {name: directory}."""
    copies = {}
    for name in ("no_pb", "cut_pb", "flipped_pb", "no_variables"):
        copies[name] = str(tmp_path / name)
        shutil.copytree(path, copies[name])
    pb = os.path.join(copies["no_pb"], "saved_model.pb")
    os.remove(pb)
    data = open(os.path.join(path, "saved_model.pb"), "rb").read()
    with open(os.path.join(copies["cut_pb"], "saved_model.pb"), "wb") as f:
        f.write(data[:len(data) // 2])
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    with open(os.path.join(copies["flipped_pb"], "saved_model.pb"), "wb") as f:
        f.write(bytes(flipped))
    shutil.rmtree(os.path.join(copies["no_variables"], "variables"))
    return copies


def test_export_binary_on_damaged_exports_and_bad_flags_is_one_line(exports, tmp_path):
    good = exports["per_block"]
    damaged = damaged_copies(good, tmp_path)
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    cases = [
        ([f"--saved_model={damaged['no_pb']}"],
         f"export: error: {damaged['no_pb']}: no saved_model.pb (not an export, or an "
         "incomplete copy of one)"),
        ([f"--saved_model={damaged['cut_pb']}"],
         f"export: error: {damaged['cut_pb']}: damaged export, it does not load (Cannot "
         "parse file saved_model.pb: Error parsing message with type "
         "'tensorflow.SavedModel': Wire format was corrupt); export it again"),
        ([f"--saved_model={damaged['flipped_pb']}"],
         f"export: error: {damaged['flipped_pb']}: damaged export, it does not load"),
        ([f"--saved_model={damaged['no_variables']}"],
         f"export: error: {damaged['no_variables']}: damaged export, it does not load"),
        ([f"--saved_model={good}", "--parity_images=0"],
         "export: error: flag --parity_images=0: 0 is not a positive integer"),
        ([f"--saved_model={good}", "--parity_images=-3"],
         "export: error: flag --parity_images=-3: -3 is not a positive integer"),
        ([f"--saved_model={good}", "--tolerance=nan"],
         "export: error: --tolerance=nan: must be a finite number >= 0"),
        ([f"--saved_model={good}", "--formats=litert", f"--output_dir={a_file}"],
         f"export: error: {a_file}: is a file, where a folder is needed (EEXIST)"),
    ]
    outcomes = in_process("export", [args for args, _ in cases])
    for (args, message), (code, stderr) in zip(cases, outcomes):
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith(message), (args, lines)
    assert a_file.read_text() == "not a folder"
    assert sorted(os.listdir(good)) == sorted(os.listdir(damaged["cut_pb"]))  # none written
    assert os.listdir(tmp_path / "no_pb") and not os.path.exists(
        os.path.join(damaged["no_pb"], "model.tflite"))


def test_an_export_removes_only_temporaries_of_dead_exports(exports, tmp_path):
    """The export step cleans up after an export that was killed, and nothing else: not a
    live export's temporary folder, not the user's own hidden files."""
    model, architecture = exports["model"]
    gone = subprocess.Popen(["true"])
    gone.wait()
    model_dir = tmp_path / "faces"
    entries = {f".export.tmp-{gone.pid}-abc": False, f".export.tmp-{os.getppid()}-live": True,
               ".notes.tmp-1": True, ".x.tmp-2": True}
    for entry in entries:
        (model_dir / entry).mkdir(parents=True)
    path = export_saved_model(model, architecture, NAMES, str(tmp_path), "faces")
    assert path == str(model_dir / "1")
    assert sorted(os.listdir(model_dir)) == sorted(["1"] + [e for e, kept in entries.items()
                                                            if kept])
    with pytest.raises(ValueError, match="export_name: '../x' cannot name an export"):
        export_saved_model(model, architecture, NAMES, str(tmp_path), "../x")
    assert not (tmp_path.parent / "x").exists()
