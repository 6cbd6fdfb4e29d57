"""What a person reads on the terminal (issue 29 part 6): the progress bar (live on a
terminal, plain lines elsewhere, time left), short sizes, and flags.describe in words.
In-process, without TensorFlow."""

import io

import pytest

from gnas_keras.reporting import units
from gnas_keras.reporting.progress import Progress


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_plain_lines_when_not_a_terminal_one_per_tenth_with_time_left():
    clock, lines = Clock(), []
    with Progress("fine-tune", 40, lines.append, clock=clock) as bar:
        assert not bar.live
        for step in range(1, 41):
            clock.now += 0.5          # 2 steps a second
            bar.update(step, note=f"train loss {1 / step:.2f}")
    assert len(lines) == 11 and not any("\r" in line for line in lines)
    assert lines[0].startswith("fine-tune  [--------------------]  1/40  2 %  elapsed 0m00s  "
                               "left 0m20s")  # the first update: the phase has begun
    assert lines[1] == ("fine-tune  [##------------------]  4/40  10 %  elapsed 0m02s  "
                        "left 0m18s  train loss 0.25")
    assert lines[-1].startswith("fine-tune  [####################]  40/40  100 %  "
                                "elapsed 0m20s  left 0m00s")


def test_time_left_counts_only_this_process_and_a_bound_says_so():
    clock = Clock()
    bar = Progress("search", 100, lambda line: None, done=60, upper_bound=True, clock=clock)
    assert bar.seconds_left() is None and "left" not in bar.text()
    clock.now += 30
    bar.update(70)                    # 10 units in 30 s here; the 60 before do not count
    assert bar.seconds_left() == pytest.approx(90.0)
    assert "left <= 1m30s" in bar.text()


def test_live_bar_redraws_in_place_and_lines_print_above_it():
    clock, tty = Clock(), FakeTerminal(tty=True)
    bar = Progress("warm-up", 10, Progress.write, clock=clock, stream=tty, redraw_seconds=1)
    assert bar.live
    clock.now += 2
    bar.update(5, "train loss 0.69")
    bar.update(6)                     # within redraw_seconds: not drawn
    Progress.write("round 1 of 4 done")
    clock.now += 2
    bar.update(10)
    bar.close()
    out = tty.getvalue()
    assert out.count("\r") == 4 and out.endswith("\n")
    assert "\r\x1b[Kround 1 of 4 done\n\rwarm-up  [############--------]  6/10" in out
    assert "10/10  100 %" in out.splitlines()[-1]
    assert Progress._live is None


def test_a_terminal_stream_with_another_out_gets_plain_lines():
    lines = []
    bar = Progress("x", 2, lines.append, stream=FakeTerminal(tty=True))
    assert not bar.live
    bar.update(2)
    bar.close()                       # the last line is not repeated
    assert len(lines) == 1


@pytest.mark.parametrize("value, text", [
    (999, "999"), (11_884, "11.9 k"), (2_310_000_000, "2.31 G"),
    (4_203_000 * 10 ** 51, "4.20e+57"),
])
def test_counts_in_short_form(value, text):
    assert units.count(value) == text


def test_bytes_and_durations():
    assert units.size_in_bytes(512) == "512 B"
    assert units.size_in_bytes(3_500_000) == "3.3 MiB"
    assert units.duration(59.6) == "1m00s" and units.duration(3725) == "1h02m05s"


def test_describe_prints_words_and_short_sizes():
    from gnas_keras_flags.describe import describe_text
    from gnas_keras.space import cost
    from gnas_keras.space.search_space import get_space
    text = describe_text(cost.describe(get_space("shallow_thin"), 40, 192, 168).to_dict())
    assert "exported full tree: 1.58 M parameters, 198 M MACs per image" in text
    assert "6.28e+57 possible trees" in text
    assert not any(len(word) > 20 for word in text.split())  # no 58-digit integer


def test_screenshot_script_needs_chromium_and_says_so_in_one_line(tmp_path, capsys,
                                                                   monkeypatch):
    import importlib.util
    import os
    import sys
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "make_screenshots.py")
    spec = importlib.util.spec_from_file_location("make_screenshots", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(sys, "argv", ["make_screenshots", "--chromium=no-such-browser",
                                      f"--logdir={tmp_path}"])
    assert script.main() == 2
    assert capsys.readouterr().err == ("--chromium: no-such-browser not found "
                                       "(apt-get install chromium)\n")
