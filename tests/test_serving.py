"""Serving: the bytes signature equals the float one on the same decoded pixels, the README's
REST bodies run, bad input is an InvalidArgumentError (never a crash), all in a fresh
TensorFlow-only process; an export's version belongs to its run."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gnas_keras.export import saved_model as export_module
from gnas_keras.export.saved_model import export_saved_model, find_owned_version
from gnas_keras_pipelines.input import Preprocessing
from tests.test_export import NAMES, trained_supernet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREP = Preprocessing(40, 36, 32, 32)
THRESHOLDS = [0.5, 0.3, 0.7, 0.45, 0.55]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("serving")
    model, architecture, _ = trained_supernet()
    path = export_saved_model(model, architecture, NAMES, str(base), "faces", owner="run-a",
                              preprocessing=PREP, thresholds=THRESHOLDS,
                              fused=True)  # what a run exports by default
    return base, path, model, architecture


def real_jpeg(path, height=50, width=45):
    """A photo-like JPEG: smooth gradients plus noise, JPEG-compressed."""
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(3)
    image = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (height + width)], -1)
    image = np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=85)
    with open(path, "wb") as f:
        f.write(out.getvalue())


def readme_block(marker: str) -> str:
    text = open(os.path.join(ROOT, "README.md")).read()
    start = text.index(marker)
    return text[start:text.index("```", start)]


# Runs in a fresh process with TensorFlow, NumPy and PIL only (what a client has).
CLIENT = r"""
import base64, json, os, sys
import numpy as np
import tensorflow as tf

export, workdir, readme_code = sys.argv[1], sys.argv[2], sys.argv[3]
model = tf.saved_model.load(export)
info = json.load(open(os.path.join(export, "export.json")))
names, prep = info["attribute_names"], info["preprocessing"]
floats, from_bytes = model.signatures["serving_default"], model.signatures["serving_bytes"]
jpeg = open(os.path.join(workdir, "face.jpg"), "rb").read()

# The same decode -> resize -> centre crop, by hand, into the float signature.
pixels = tf.image.resize(tf.cast(tf.io.decode_jpeg(jpeg, channels=3), tf.float32),
                         [prep["height"], prep["width"]])
top = (prep["height"] - prep["crop_height"]) // 2
left = (prep["width"] - prep["crop_width"]) // 2
pixels = pixels[top:top + prep["crop_height"], left:left + prep["crop_width"]][None]
a = from_bytes(image_bytes=tf.constant([jpeg, jpeg]))
b = floats(image=pixels)
out = {"max_abs_diff": max(float(np.max(np.abs(a[n].numpy()[:1] - b[n].numpy())))
                           for n in names),
       "keys": sorted(a),
       "decisions_match": all(bool(np.array_equal(a[n + "_present"].numpy(),
                                                  a[n].numpy() > info["thresholds"][n]))
                              for n in names),
       "present_dtype": a[names[0] + "_present"].dtype.name}

# Bad input: an InvalidArgumentError each, and the process (a server) lives on.
errors = []
for bad in (tf.zeros([2, 16, 64, 3]), tf.zeros([32, 32, 3]),
            tf.fill([1, 32, 32, 3], float("nan"))):
    try:
        floats(image=bad)
        errors.append("no error")
    except tf.errors.InvalidArgumentError as err:
        errors.append(" ".join(l for l in err.message.splitlines() if "image" in l)[:300])
try:
    from_bytes(image_bytes=tf.constant(["not an image"]))
    errors.append("no error")
except tf.errors.InvalidArgumentError as err:
    errors.append("bytes: InvalidArgumentError")
out["errors"] = errors
out["still_serving"] = float(floats(image=pixels)[names[0]].numpy()[0])

# The README's request bodies, decoded as TF Serving's REST API does ("instances": one
# value per instance of the single input; {"b64": ...} is base64 bytes).
os.chdir(workdir)
scope = {}
exec(readme_code, scope)
answers = {}
for body in (scope["bytes_body"], scope["pixels_body"]):
    request = json.loads(body)
    signature = model.signatures[request["signature_name"]]
    instances = request["instances"]
    if isinstance(instances[0], dict) and set(instances[0]) == {"b64"}:
        value = tf.constant([base64.b64decode(i["b64"]) for i in instances])
    else:
        value = tf.constant(instances, tf.float32)
    (key,) = signature.structured_input_signature[1]
    result = signature(**{key: value})
    answers[request["signature_name"]] = {k: v.numpy().tolist() for k, v in result.items()}
out["rest"] = answers
out["modules"] = sorted(m for m in ("gnas_keras", "pipelines", "flags") if m in sys.modules)
print(json.dumps(out))
"""


def test_bytes_signature_rest_bodies_and_bad_input_in_a_fresh_process(exported, tmp_path):
    _, path, _, _ = exported
    real_jpeg(str(tmp_path / "face.jpg"))
    Image.new("RGB", (32, 32), (120, 80, 40)).save(tmp_path / "face_cropped.png")
    result = subprocess.run([sys.executable, "-c", CLIENT, path, str(tmp_path),
                             readme_block("# rest-request-bodies")],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["modules"] == []  # TensorFlow only, none of the project's code
    assert out["max_abs_diff"] < 1e-4
    assert out["keys"] == sorted(NAMES + [n + "_present" for n in NAMES])
    assert out["decisions_match"] and out["present_dtype"] == "bool"
    assert ("Shape of tensor image [2,16,64,3] is not compatible with expected shape "
            "[?,32,32,3]") in out["errors"][0]
    assert "Shape of tensor image [32,32,3] is not compatible" in out["errors"][1]
    assert "image: pixels must be finite numbers in [0, 255]" in out["errors"][2]
    assert out["errors"][3] == "bytes: InvalidArgumentError"
    assert 0.0 <= out["still_serving"] <= 1.0
    assert set(out["rest"]["serving_bytes"]) == set(out["keys"])
    assert all(len(v) == 1 for v in out["rest"]["serving_bytes"].values())
    assert sorted(out["rest"]["serving_default"]) == sorted(NAMES)
    info = json.load(open(os.path.join(path, "export.json")))
    assert info["thresholds"] == dict(zip(NAMES, THRESHOLDS)) and info["run_id"] == "run-a"


def test_an_export_version_belongs_to_its_run(exported, monkeypatch):
    base, first, model, architecture = exported
    model_dir = os.path.join(str(base), "faces")
    assert find_owned_version(model_dir, "run-a") == first
    assert find_owned_version(model_dir, "run-b") is None  # never another run's version
    assert find_owned_version(os.path.join(str(base), "elsewhere"), "run-a") is None
    # Another run picked the same next version a moment earlier: this one takes the next.
    real = export_module.next_version
    answers = iter([1])
    monkeypatch.setattr(export_module, "next_version",
                        lambda d: next(answers, None) or real(d))
    second = export_saved_model(model, architecture, NAMES, str(base), "faces",
                                owner="run-b")
    assert second == os.path.join(model_dir, "2")
    assert find_owned_version(model_dir, "run-b") == second
    assert find_owned_version(model_dir, "run-a") == first
    assert sorted(os.listdir(model_dir)) == ["1", "2"]


def test_litert_and_onnx_files_from_the_export_binary_match_the_saved_model(exported,
                                                                           tmp_path):
    """flags.export writes model.tflite and model.onnx (here into --output_dir) in a fresh
    process and checks parity; both then run in this process with the SavedModel's
    probabilities (max abs difference < 1e-4). A wrong directory is one line, exit 2."""
    _, path, _, _ = exported
    env = {**os.environ, "PYTHONPATH": ROOT}
    result = subprocess.run([sys.executable, "-m", "flags.export", f"--saved_model={path}",
                             f"--output_dir={tmp_path}"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("max abs difference to the SavedModel") == 2
    images = np.random.default_rng(5).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    expected = export_module.serving_probabilities(path, images)
    assert export_module.litert_max_abs_difference(
        expected, str(tmp_path / "model.tflite"), images) < 1e-4
    assert export_module.onnx_max_abs_difference(
        expected, str(tmp_path / "model.onnx"), images) < 1e-4
    bad = subprocess.run([sys.executable, "-m", "flags.export", f"--saved_model={tmp_path}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "no export.json" in bad.stderr
