"""Images are read as serving reads them (issue 30, part 2): every converted record decodes in
the input pipeline to exactly the pixels the export's bytes signature decodes from the source
file, for 8- and 16-bit PNG, palette, alpha, CMYK and progressive JPEG; a JPEG missing its
last bytes (which PIL accepts) fails the converter with one line naming the file and the CSV
line."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageFile

from gnas_keras.export import saved_model as export
from gnas_keras_pipelines import folder
from gnas_keras_pipelines import input as pipeline_input
from gnas_keras_pipelines.convert_errors import ConversionError
from tests import fixtures_datasets as fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEIGHT, WIDTH = 16, 12


def _rgb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


# A 16-bit grey ramp over the whole 0..65535 range: PIL's convert("RGB") made it 97 % white.
RAMP_16 = (np.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH) * 65535 // (HEIGHT * WIDTH - 1)
           ).astype(np.uint16)

FIXTURES = {
    "png8.png": lambda: _encoded(Image.fromarray(_rgb(1)), "PNG"),
    "png16.png": lambda: _encoded(Image.fromarray(RAMP_16), "PNG"),
    "palette.png": lambda: _encoded(Image.fromarray(_rgb(2)).convert("P"), "PNG"),
    "alpha.png": lambda: _encoded(Image.fromarray(np.dstack([_rgb(3), _rgb(4)[..., 0]])),
                                  "PNG"),
    "cmyk.jpg": lambda: _encoded(Image.fromarray(_rgb(5)).convert("CMYK"), "JPEG"),
    "progressive.jpg": lambda: _encoded(Image.fromarray(_rgb(6)), "JPEG", progressive=True),
    "grey.jpg": lambda: _encoded(Image.fromarray(_rgb(7)[..., 0]), "JPEG"),
    "frame.gif": lambda: _encoded(Image.fromarray(_rgb(8)).convert("P"), "GIF"),
    "bitmap.bmp": lambda: _encoded(Image.fromarray(_rgb(9)), "BMP"),
}


def _serving_pixels(data: bytes) -> np.ndarray:
    """What the export's bytes signature feeds the model for `data` (no resize, no crop)."""
    return export.decode_images(np.array([data], object), HEIGHT, WIDTH, HEIGHT,
                                WIDTH).numpy()[0]


def _source(tmp_path, files):
    os.makedirs(tmp_path / "images", exist_ok=True)
    for name, data in files.items():
        with open(tmp_path / "images" / name, "wb") as f:
            f.write(data)
    fx.write_text(str(tmp_path / "labels.csv"), "image,Smiling,split\n" + "".join(
        f"{name},1,train\n" for name in files))


def _convert(tmp_path):
    return folder.convert(str(tmp_path / "images"), str(tmp_path / "out"), name="mine",
                          labels=str(tmp_path / "labels.csv"), num_shards=1)


def test_training_sees_the_pixels_serving_sees(tmp_path):
    files = {name: make() for name, make in FIXTURES.items()}
    _source(tmp_path, files)
    meta = _convert(tmp_path)
    assert meta.split_sizes["train"] == len(files)
    prep = pipeline_input.Preprocessing(HEIGHT, WIDTH, HEIGHT, WIDTH, flip=False)
    batches = pipeline_input.make_dataset(str(tmp_path / "out"), "train", 1, training=False,
                                          prep=prep)
    for name, (images, _) in zip(files, batches):  # one shard: records in CSV order
        np.testing.assert_array_equal(images.numpy()[0], _serving_pixels(files[name]),
                                      err_msg=name)
    stored = {key: data for data, _, key in fx.read_records(str(tmp_path / "out"), "train")}
    for name in files:  # JPEG and PNG byte for byte; GIF and BMP as a PNG of their pixels
        assert (stored[name] == files[name]) == name.endswith((".png", ".jpg")), name
    assert meta.extra["reencoded_images"] == 2


def test_a_16_bit_png_keeps_its_range(tmp_path):
    _source(tmp_path, {"ramp.png": FIXTURES["png16.png"]()})
    _convert(tmp_path)
    [(data, _, _)] = fx.read_records(str(tmp_path / "out"), "train")
    pixels = _serving_pixels(data)[..., 0]
    # TensorFlow keeps the high byte: the ramp runs 0..255, not 97 % white.
    assert pixels.min() == 0 and pixels.max() == 255
    assert np.abs(pixels - (RAMP_16 >> 8)).max() <= 1
    assert (pixels == 255).mean() < 0.02


def test_tiff_is_stored_as_png_of_its_pixels_16_bit_included(tmp_path):
    rgb = _rgb(10)
    _source(tmp_path, {"colour.tif": _encoded(Image.fromarray(rgb), "TIFF"),
                       "ramp.tif": _encoded(Image.fromarray(RAMP_16), "TIFF")})
    meta = _convert(tmp_path)
    assert meta.extra["reencoded_images"] == 2
    stored = {key: data for data, _, key in fx.read_records(str(tmp_path / "out"), "train")}
    np.testing.assert_array_equal(_serving_pixels(stored["colour.tif"]), rgb)
    ramp = _serving_pixels(stored["ramp.tif"])[..., 0]
    np.testing.assert_array_equal(ramp, (RAMP_16 >> 8).astype(np.float32))


def _truncated_jpeg() -> bytes:
    """A JPEG missing its last two bytes (the end-of-image marker)."""
    y, x = np.mgrid[0:96, 0:96]
    return _encoded(Image.fromarray(((x * 7 + y * 3) % 256).astype(np.uint8)), "JPEG")[:-2]


def test_a_jpeg_missing_its_end_fails_conversion_naming_file_and_line(tmp_path, monkeypatch):
    # PIL accepts it once anything in the process has set LOAD_TRUNCATED_IMAGES (importing
    # tensorflow_datasets does, for the CelebA tfds source): the converter must not care.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    Image.open(io.BytesIO(_truncated_jpeg())).load()
    _source(tmp_path, {"a.jpg": FIXTURES["grey.jpg"](), "cut.jpg": _truncated_jpeg()})
    err = fx.conversion_error(lambda: _convert(tmp_path), "cut.jpg: unreadable or truncated "
                              "image", "labels.csv:3")
    assert "\n" not in str(err) and "function_node" not in str(err)
    assert sorted(os.listdir(tmp_path)) == ["images", "labels.csv"]


def _user_env():
    """The environment of a user's shell: no TF_CPP_MIN_LOG_LEVEL of the test run's."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return dict(env, PYTHONPATH=ROOT)


def test_binary_names_the_truncated_jpeg_in_one_line(tmp_path):
    _source(tmp_path, {"a.jpg": FIXTURES["grey.jpg"](), "cut.jpg": _truncated_jpeg()})
    result = subprocess.run(
        [sys.executable, "-m", "flags.convert", "--dataset=folder", "--name=mine",
         f"--source_dir={tmp_path / 'images'}", f"--labels={tmp_path / 'labels.csv'}",
         f"--output_dir={tmp_path / 'out'}"],
        cwd=ROOT, env=_user_env(), capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and lines[-1].startswith("convert: error: "), result.stderr
    assert "cut.jpg: unreadable or truncated image" in lines[-1]
    # Nothing but the choice of value encoding (and the progress bar's plain lines) is printed
    # before it: no native log lines.
    lines = [line for line in lines if " elapsed " not in line]
    assert len(lines) == 2 and "values read as" in lines[0], result.stderr
    assert sorted(os.listdir(tmp_path)) == ["images", "labels.csv"]


@pytest.mark.parametrize("skip_bad", [False, True])
def test_skip_bad_counts_an_undecodable_image(tmp_path, skip_bad):
    _source(tmp_path, {"a.jpg": FIXTURES["grey.jpg"](), "cut.jpg": _truncated_jpeg(),
                       "b.png": FIXTURES["png8.png"]()})
    if not skip_bad:
        with pytest.raises(ConversionError, match="cut.jpg"):
            _convert(tmp_path)
        return
    meta = folder.convert(str(tmp_path / "images"), str(tmp_path / "out"), name="mine",
                          labels=str(tmp_path / "labels.csv"), num_shards=1, skip_bad=True)
    assert meta.skipped == {"bad_image": 1} and meta.split_sizes["train"] == 2
