# Quick start: `make search` (virtualenv, install, GNAS on the built-in synthetic set), then
# `make test`. The virtualenv holds the project installed in editable mode (pyproject.toml):
# the console scripts gnas-search, gnas-convert, ... and `python -m flags.search` both work.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: search compare test clean gpu-wheels

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# The main job: generates data/synthetic once, searches (task-transfer grouping, the
# configuration that recovers the set's groups: flagfiles/make_search.flags),
# fine-tunes, tests, exports. GNAS with the GNAS+ options: flagfiles/synthetic_plus.flags.
# Run again, it resumes (or reprints a finished run); `make search ARGS=--restart` starts over.
search: $(VENV)/.installed
	$(VENV)/bin/gnas-search --flagfile=flagfiles/make_search.flags $(ARGS)

# The README's comparison: every method on the synthetic set with the same budget, then one
# report (runs/compare/evaluation.md) with errors, AUC, ARI, parameters, MACs and latency.
# A method with a flagfile of its own (flagfiles/synthetic_<method>.flags) runs with it.
COMPARE_METHODS := transfer gnas random branching shared independent
compare: $(VENV)/.installed
	for m in $(COMPARE_METHODS); do \
	  f=flagfiles/synthetic.flags; [ -f flagfiles/synthetic_$$m.flags ] && f=flagfiles/synthetic_$$m.flags; \
	  $(VENV)/bin/gnas-search --flagfile=$$f --method=$$m --compare= \
	    --workdir=runs/compare/$$m --export_name=synthetic_$$m $(ARGS) || exit 1; \
	done
	$(VENV)/bin/gnas-evaluate --workdir=runs/compare

# Two worker processes (CI has 2 cores; most tests are single-threaded subprocess runs);
# `--dist loadfile` keeps a file's tests, and its module fixtures, on one worker.
# Files are handed out slowest first (tests/conftest.py: SLOWEST_FIRST). The fonts set's
# tests need Debian's fonts (`make fonts`).
test: $(VENV)/.installed fonts
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15 tests

clean:
	rm -rf runs saved_models/*/ data/synthetic

# The fonts set's TrueType files (pipelines/fonts.py, flags/make_fonts.py): Debian's
# fonts-dejavu-core and fonts-liberation, installed only where missing (sudo unless root).
FONT_DIRS := /usr/share/fonts/truetype/dejavu /usr/share/fonts/truetype/liberation
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
.PHONY: fonts
fonts:
	@ls $(FONT_DIRS:=/*.ttf) >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y fonts-dejavu-core fonts-liberation; }
	@echo "fonts: $$(ls $(FONT_DIRS:=/*.ttf) | wc -l) TrueType files under /usr/share/fonts/truetype"

# Keras and what it needs besides JAX (numpy and ml_dtypes come with JAX), as
# wheels for a GPU machine that has only JAX: benchmarks/gpu.sh installs them there. They
# are this machine's builds (platform, Python version): make them with the GPU machine's.
GPU_WHEELS := keras==3.15.1 absl-py==2.5.1 namex==0.1.0 optree==0.20.0 rich==15.0.0 \
  markdown-it-py==4.3.0 mdurl==0.1.2 Pygments==2.21.0 h5py==3.14.0 typing_extensions==4.16.0 \
  packaging==26.4
gpu-wheels: $(VENV)/.installed
	$(PY) -m pip download --quiet --no-deps --dest benchmarks/wheels $(GPU_WHEELS)
	@du -sh benchmarks/wheels
