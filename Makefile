# make perform: the main job on the bundled model; make test: the whole suite.
# Both build on make install, which does nothing when .venv is up to date.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: install system-deps test perform lint data checkpoints bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: 2.13 is the CPU wheel; letting a resolver pick pulls a CUDA build
	$(BIN)/pip install -q 'torch==2.13.*'
	$(BIN)/pip install -q -e '.[dev,link,ray,research]'  # the optional extras too, so the tests run them
	touch $(STAMP)

# JACK (dummy driver) and jack_midi_clock give real MIDI ports and a real external clock
# on machines without a sound card; the performer's integration tests use them.
system-deps:
	@if ! command -v jackd >/dev/null || ! command -v jack_midi_clock >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jackd2 jack-midi-clock >/dev/null; \
	fi

# lint first: ruff and mypy on the code, then every test (slow ones too: JACK, Link, Ray, training).
# Each realtime module (a JACK server or a Link peer) runs in a pytest process of its own:
# libjack keeps one server's state per process, and a process that had outlived a dozen test
# servers lost CCs and missed a restart that its module alone never did; a Link player timed
# in the suite's big process once sent a pulse 6 ms late (docs/design.md). Every part runs;
# any failure fails.
JACK_TESTS := $(filter-out tests/conftest.py,$(shell grep -l "jack_server\|LinkPeer" tests/*.py))
test: lint
	@status=0; \
	$(BIN)/pytest -q $(addprefix --ignore=,$(JACK_TESTS)) || status=1; \
	for t in $(JACK_TESTS); do echo "== $$t (a process of its own)"; $(BIN)/pytest -q $$t || status=1; done; \
	exit $$status

# the window on the bundled 4/4 model with the audio preview; headless where no display opens
perform: install
	$(BIN)/rvae perform checkpoints/groove-4-4.pt --audio

lint: install
	$(BIN)/ruff check rvae performer tests scripts
	$(BIN)/mypy

data: install
	$(BIN)/python scripts/make_demo_data.py

checkpoints: install
	$(BIN)/python scripts/train_bundled.py

bench: install
	$(BIN)/python scripts/bench_train.py
	$(BIN)/python scripts/bench_decode.py
	$(BIN)/python scripts/bench_performer.py

clean:
	rm -rf $(VENV) out .pytest_cache
