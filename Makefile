# Two entry points: `make run` (main job on the bundled examples) and `make test`.
# Both create/refresh .venv; the install step reruns only when a requirement file changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP_VERSION := 26.3

.PHONY: run features test test-fast lint venv clean browser

venv: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	# librosa compiles its numba kernels on first use (13 s); do it once here, not in the first test or command
	$(BIN)/python -c "import numpy, librosa; librosa.stft(numpy.zeros(4096, numpy.float32))"
	touch $(STAMP)

# Classify the example recordings with the bundled ESC-50 model: a table on the terminal,
# the same as out/predictions.txt, out/predictions.csv, and label timelines in out/timelines/.
run: $(STAMP)
	mkdir -p out
	$(BIN)/audiocnn predict examples/ --top-k 3 --timeline out/timelines --out out/predictions.txt
	cat out/predictions.txt
	$(BIN)/audiocnn predict examples/ --top-k 3 --format csv --out out/predictions.csv --no-progress
	@echo "report: out/predictions.txt, out/predictions.csv, out/timelines/*.png"

# The six feature images of each example (what the CNN sees), into out/features/.
features: $(STAMP)
	$(BIN)/audiocnn features examples/ --kind all --out out/features/

# The page's browser tests drive Debian's chromium (Playwright, with the system browser): installed
# once here, as root or through sudo without a password; nothing happens when it is there already.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  echo "installing Debian's chromium for the page's browser tests"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; }

# Everything: lint, the layering contracts (tests/test_architecture.py) and every test, on all the
# machine's cores: one pytest-xdist worker per core, each running torch on one thread (two workers
# with a thread per core each spin against each other: slower than one process; OMP_WAIT_POLICY=PASSIVE
# keeps a test that asks for more threads from spinning too). Every test works in
# its own temporary folder and on free ports, so any two may run at once.
test: $(STAMP) browser
	$(BIN)/ruff check src tests benchmarks
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q -n auto --dist worksteal

# The inner loop: everything but the tests marked slow (every test over ~0.2 s is), on the cores as
# `make test` runs: 24.8-26.2 s against 30.4-30.7 s in one process (2 cores, measured in one run). Each
# worker imports torch and the package again, but no longer waits for the shared tone model's training.
test-fast: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q -m "not slow" -n auto \
	  --dist worksteal --durations=5

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf out .pytest_cache
