r"""Screenshots of TensorBoard's Scalars, Images, HParams and Text tabs for the README.

    python docs/make_screenshots.py --logdir=runs --out_dir=docs

Starts TensorBoard on loopback (127.0.0.1, a free port) over `--logdir` (a folder of run
directories: each run is named after its directory), waits until it lists the runs, opens each
tab in headless Chromium (Debian's ``chromium``: ``apt-get install chromium``) and writes
``docs/tensorboard_<tab>.png`` (palette PNG, well under 300 KB). TensorBoard is stopped at the
end. It lives in docs/ beside the pictures it makes (not in benchmarks/: it measures nothing).

Exit 2 with one line when Chromium or the log directory is missing.

The committed docs/tensorboard_*.png (2026-12-04) show two small finished synthetic runs,
made on 2 CPU cores with (``S`` = the small set and short schedule)::

    python -c "from gnas_keras_pipelines import synthetic; synthetic.generate('/tmp/synth', seed=0,
        sizes={'train': 512, 'validation': 256, 'test': 256}, num_shards=2)"
    S="--data_dir=/tmp/synth --export_dir=/tmp/saved --warmup_steps=100 --train_steps=5
       --val_batches=2 --finetune_steps=100 --compare=shared --compare_steps=20
       --batch_size=32 --eval_batch_size=64"
    python -m flags.search --flagfile=flagfiles/synthetic_plus.flags \
        --workdir=/tmp/shots/synthetic_gnas_plus --max_rounds=4 $S
    python -m flags.search --flagfile=flagfiles/synthetic.flags --method=random \
        --workdir=/tmp/shots/synthetic_random --export_name=synthetic_random \
        --random_trials=6 $S
    python docs/make_screenshots.py --logdir=/tmp/shots --out_dir=docs
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

# tab -> (URL fragment, JavaScript run once the page is up: settings a reader would choose)
TABS = {
    "scalars": ("#scalars&tagFilter=search%2F%7Ctrain%2F%7Cfinetune%2F&_smoothingWeight=0",
                "localStorage.setItem('_ignoreYOutliers', 'false'); location.reload();"),
    "images": ("#images&tagFilter=rewards%2Ffc1", "click('Show actual image size');"),
    "hparams": ("#hparams", "document.body.style.zoom = '0.75';"),  # every column in view
    "text": ("#text&tagFilter=%5Efinal%24", ""),
}
# Finds an element by its text through every shadow root (TensorBoard is Polymer) and clicks it.
CLICK = """
function click(label, root) {
  root = root || document;
  for (const el of root.querySelectorAll('*')) {
    if (el.tagName === 'PAPER-CHECKBOX' && el.textContent.includes(label)) {
      el.click();
      return true;
    }
    if (el.shadowRoot && click(label, el.shadowRoot)) return true;
  }
  return false;
}
"""
MAX_BYTES = 300_000


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe
    (``--remote-debugging-pipe``: JSON messages ending in NUL on its fds 3 and 4), so no
    network port and no package beyond the standard library."""

    def __init__(self, executable: str, profile: str):
        to_child, self._to = os.pipe()
        self._from, from_child = os.pipe()
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child)]

        def child_fds():
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(3, 4, *high), preexec_fn=child_fds,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in (to_child, from_child, *high):
            os.close(fd)
        self._id, self._buffer = 0, b""

    def send(self, method: str, session: str = "", **params) -> dict:
        """One command; returns its result (events that arrive meanwhile are dropped)."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed its DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def screenshot(self, url: str, script: str, width: int, height: int,
                   wait_seconds: float) -> bytes:
        """`url` in a new tab of `width` x `height` pixels, `script` run once it has loaded
        (then `wait_seconds` more), as PNG bytes."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride", session, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.send("Page.navigate", session, url=url)
        time.sleep(wait_seconds)
        if script:
            self.send("Runtime.evaluate", session, expression=CLICK + script)
            time.sleep(wait_seconds)
        png = self.send("Page.captureScreenshot", session, format="png")["data"]
        self.send("Target.closeTarget", targetId=target)
        return base64.b64decode(png)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_runs(url: str, seconds: float) -> list:
    """The runs TensorBoard lists once it has read the log directory."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/data/runs", timeout=5) as answer:
                runs = json.load(answer)
            if runs:
                return runs
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"TensorBoard at {url} listed no run within {seconds:.0f} s")


def shrink(path: str) -> int:
    """Rewrites the PNG with a 256-colour palette (screenshots of charts lose nothing
    visible); returns its size in bytes."""
    from PIL import Image
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256)
    tmp = path + ".tmp.png"
    small.save(tmp, optimize=True)
    os.replace(tmp, path)
    return os.path.getsize(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default="runs", help="folder of run directories")
    parser.add_argument("--out_dir", default="docs", help="where the PNGs go")
    parser.add_argument("--chromium", default="chromium", help="Chromium's executable")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--wait_seconds", type=float, default=8,
                        help="how long a page gets to load its data (and again after a setting)")
    args = parser.parse_args()
    chromium = shutil.which(args.chromium)
    if chromium is None:
        print(f"--chromium: {args.chromium} not found (apt-get install chromium)",
              file=sys.stderr)
        return 2
    if not os.path.isdir(args.logdir):
        print(f"--logdir: {args.logdir} is not a directory", file=sys.stderr)
        return 2
    os.makedirs(args.out_dir, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    board = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", f"--logdir={args.logdir}",
         "--host=127.0.0.1", f"--port={port}", "--load_fast=false", "--reload_interval=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    browser = None
    try:
        runs = wait_for_runs(url, 120)
        print(f"TensorBoard at {url}: runs {', '.join(runs)}", file=sys.stderr)
        with tempfile.TemporaryDirectory() as profile:
            browser = Chromium(chromium, profile)
            for tab, (fragment, script) in TABS.items():
                path = os.path.join(args.out_dir, f"tensorboard_{tab}.png")
                png = browser.screenshot(f"{url}/{fragment}", script, args.width,
                                         args.height, args.wait_seconds)
                with open(path + ".tmp", "wb") as f:
                    f.write(png)
                os.replace(path + ".tmp", path)
                size = shrink(path)
                print(f"wrote {path} ({size // 1000} kB)", file=sys.stderr)
                if size > MAX_BYTES:
                    print(f"{path}: {size} bytes, more than {MAX_BYTES}", file=sys.stderr)
                    return 1
            browser.close()
            browser = None
    finally:
        if browser is not None:
            browser.close()
        board.terminate()
        board.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
