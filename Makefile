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

.PHONY: mine test venv build release bench bench-data clean-data fmt

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

## bench: expression evaluation on `full` vs polars_ta, numpy+bottleneck and KunQuant
## (bench.md item 1); results in out/bench/expr.json and a table on stdout
BENCH_VENV := .venv-bench
bench: release $(BENCH_VENV)/.stamp data/panel/full.arrow
	mkdir -p out/bench
	/usr/bin/time -v $(REL)/expr bench --panel data/panel/full.arrow --file tests/bench/exprs.txt \
	  --repeat 5 --json out/bench/expr-ours.json --dump-dir out/bench/values 2> out/bench/expr-ours.time
	@grep -hE "Maximum resident" out/bench/expr-ours.time
	$(BENCH_VENV)/bin/python tests/bench/peers.py --panel data/panel/full.arrow --exprs tests/bench/exprs.txt \
	  --ours out/bench/expr-ours.json --values-dir out/bench/values --out out/bench/expr.json --repeat 3

$(BENCH_VENV)/.stamp: tests/bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/bench/requirements.txt
	touch $@

data/panel/full.arrow:
	$(MAKE) bench-data

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
