# alpha-factory — the two commands a newcomer needs are `make mine` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
ASSETS ?= 500
DAYS ?= 1500
SEED ?= 42
NAME ?= csi500
REL := target/release

.PHONY: mine test venv build release bench-data clean-data fmt

## mine: build (release) and run the pipeline on the csi500-sized synthetic market
mine: release
	$(REL)/ts-fetch --source synthetic --assets $(ASSETS) --days $(DAYS) --seed $(SEED) --out data/raw
	$(REL)/panel-build --raw data/raw --out data/panel/$(NAME).arrow
	@echo "panel: data/panel/$(NAME).arrow   (raw bars: data/raw/, planted alphas: data/raw/ground_truth.json)"

## test: unit + end-to-end tests (debug build; reference checks run in .venv)
test: venv
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

venv: $(VENV)/.stamp
$(VENV)/.stamp: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	# Qlib's own source (for the Alpha158 list), without its heavy dependencies
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --only-binary :all: pyqlib==0.9.7
	touch $@

build:
	$(CARGO) build --workspace --bins

release:
	$(CARGO) build --release --bins

## bench-data: the `full` market (5000 x 2500) with wall time and peak memory
bench-data: release
	mkdir -p out/bench
	/usr/bin/time -v $(REL)/ts-fetch --assets 5000 --days 2500 --seed 42 --out data/raw-full 2> out/bench/ts-fetch-full.time
	/usr/bin/time -v $(REL)/panel-build --raw data/raw-full --out data/panel/full.arrow 2> out/bench/panel-build-full.time
	@grep -hE "Elapsed|Maximum resident" out/bench/ts-fetch-full.time out/bench/panel-build-full.time

clean-data:
	rm -rf data/raw data/raw-full data/panel out/* state/*

fmt:
	$(CARGO) fmt --all
