# amt — every target that needs the virtual environment creates it first.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
SF2     := /usr/share/sounds/sf2/FluidR3_GM.sf2
PRESET  ?= mini
ARGS    ?=

.DEFAULT_GOAL := help
.PHONY: help install system-deps data train test test-fast lint bench basic-pitch transkun harmonica compare clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv/ and install amt (editable) with every extra and the dev tools, plus FluidSynth where apt-get works

# torch 2.13.0 goes in first, from the local CPU wheel, and stays pinned by constraints.txt,
# so that nothing later lets pip pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@$(MAKE) --no-print-directory system-deps
	touch $(STAMP)

# The corpus's synthesisers and sounds: FluidSynth with the General MIDI soundfonts training may use,
# TiMidity++ with freepats, and the two soundfonts reserved for evaluation sets.
SOUNDS  := fluidsynth fluid-soundfont-gm csound-soundfont opl3-soundfont timidity freepats musescore-general-soundfont timgm6mb-soundfont

system-deps:  ## FluidSynth, TiMidity++ and the soundfonts the corpus recipes use (Debian packages: SOUNDS)
	@if command -v fluidsynth >/dev/null && command -v timidity >/dev/null && [ -f $(SF2) ] \
		&& [ -f /usr/share/sounds/sf2/sf_GMbank.sf2 ] && [ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ]; then \
		echo "FluidSynth, TiMidity++ and the soundfonts present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SOUNDS) >/dev/null; \
	else \
		echo "amt: FluidSynth, TiMidity++ or a soundfont is missing; install them (Debian/Ubuntu: sudo apt-get install $(SOUNDS)," \
		     "macOS: brew install fluid-synth) or amt falls back to its built-in harmonic synthesiser"; \
	fi

data: $(STAMP)  ## build the offline default corpus (PRESET=mini|tiny) in data/synth-$(PRESET)
	$(PY) -m amt.cli data synth --preset $(PRESET) --out data/synth-$(PRESET)

train: $(STAMP)  ## train the default model on the offline default corpus (ARGS="model=... trainer.max_epochs=...")
	$(PY) train.py $(ARGS)

test: $(STAMP)  ## the whole test suite, slow end-to-end tests included (what CI runs)
	$(PY) -m pytest -m "slow or not slow" $(ARGS)

test-fast: $(STAMP)  ## the fast tests only
	$(PY) -m pytest $(ARGS)

lint: $(STAMP)  ## ruff
	$(VENV)/bin/ruff check amt tests scripts train.py sweep.py
	$(VENV)/bin/ruff format --check amt tests scripts train.py sweep.py

bench: $(STAMP)  ## training and inference throughput (numbers, not assertions)
	$(PY) scripts/bench.py $(ARGS)

BP_VENV := .venv-basic-pitch
basic-pitch: $(BP_VENV)/.installed  ## basic-pitch (Spotify) in its own virtual environment, for scripts/compare.py

# Its package pins an old TensorFlow that it does not need with the ONNX model: installed without
# dependencies, then its runtime needs and onnxruntime (shared/NOTES.md).
$(BP_VENV)/.installed:
	python3 -m venv $(BP_VENV)
	$(BP_VENV)/bin/pip install --quiet --no-deps basic-pitch==0.4.0
	$(BP_VENV)/bin/pip install --quiet librosa mir-eval numpy pretty-midi "resampy>=0.2.2,<0.4.3" scikit-learn scipy typing-extensions onnxruntime
	touch $@

# transkun (piano; its torchaudio wheel is a CUDA build whose libraries it never loads: only the
# pure-python mel filterbank is used) and harmonica-amt, each beside the project, never inside it.
TK_VENV := .venv-transkun
transkun: $(TK_VENV)/.installed  ## transkun 2.0.1 in its own virtual environment, for scripts/compare.py

$(TK_VENV)/.installed:
	python3 -m venv $(TK_VENV)
	$(TK_VENV)/bin/pip install --quiet -c constraints.txt torch==2.13.0
	$(TK_VENV)/bin/pip install --quiet -c constraints.txt --no-deps transkun==2.0.1 torchaudio==2.11.0
	$(TK_VENV)/bin/pip install --quiet -c constraints.txt ncls pretty-midi scipy numpy mir-eval pydub moduleconf soxr soundfile tqdm "setuptools<81"
	rm -f $(TK_VENV)/lib/python3.*/site-packages/torchaudio/lib/*.so
	touch $@

HA_VENV := .venv-harmonica
harmonica: $(HA_VENV)/.installed  ## harmonica-amt 0.3.0 in its own virtual environment, for scripts/compare.py

$(HA_VENV)/.installed:
	python3 -m venv $(HA_VENV)
	$(HA_VENV)/bin/pip install --quiet -c constraints.txt torch==2.13.0
	$(HA_VENV)/bin/pip install --quiet -c constraints.txt --no-deps --ignore-requires-python harmonica-amt==0.3.0
	$(HA_VENV)/bin/pip install --quiet -c constraints.txt "loguru>=0.7" "nnaudio>=0.3.4" numpy "omegaconf>=2.3" scipy "soundfile>=0.13" "symusic>=0.6" "typer>=0.15"
	touch $@

compare: $(STAMP) basic-pitch transkun harmonica  ## amt's bundled models against basic-pitch, transkun and harmonica-amt on a corpus's test split (PRESET=varied, ARGS="--model ...")
	$(PY) scripts/compare.py --recordings data/synth-$(PRESET)/recordings --split test --out outputs/compare/$(PRESET) $(ARGS)

clean:  ## remove caches and run outputs (keeps .venv/ and data/)
	rm -rf outputs multirun .pytest_cache .ruff_cache
