# alpha-factory — the two commands a newcomer needs are `make mine` and `make test`.
SHELL := /bin/bash
# LightGBM's build (lgbm-train) needs CMake >= 3.28: .ci/toolchain.sh puts one in
# .venv-build (and clang/libclang from Debian); cargo runs with it first on PATH.
BUILD_VENV := .venv-build
# PORTABLE=1: binaries for any x86-64-v3 CPU (AVX2, FMA, BMI2) instead of this machine's
# (.cargo/config.toml: target-cpu=native) — to ship to Airflow workers or CI runners of
# another generation. Measured on an AVX-512 machine: 12 % slower over the operators
# (geometric mean; ts_corr 1.7x, sqrt/inv 1.9x), so it is not the default. A native
# binary on a CPU without its features stops with one line naming them.
PORTABLE ?=
CARGO ?= PATH="$(CURDIR)/$(BUILD_VENV)/bin:$$PATH" $(if $(PORTABLE),RUSTFLAGS="-C target-cpu=x86-64-v3") cargo
PYTHON ?= python3
VENV := .venv
REL := target/release

.PHONY: mine test test-deps venv venv-airflow toolchain build release bench bench-expr bench-ops bench-alpha101 bench-fitness bench-cache bench-mine bench-model bench-runner bench-data clean-data fmt

## mine: build (release) and mine the csi500-sized synthetic market with the pipeline
## runner: fetch, panel, GENS generations of gp-gen -> fitness -> library-merge, then
## lgbm-train and report on the last library (pipelines/mine.yaml). A re-run skips every step whose inputs are unchanged.
## Settings: ASSETS DAYS SEED NAME GENS POP GP_SEED HORIZON HORIZONS=1,5 MAX_SIZE MODEL_SEED, and for
## your own data SOURCE=files FILES='glob' MAPPING=tushare|identity|file.yaml
## MARKET=cn|generic|profile.yaml META=sectors.csv INFER_SPLITS=auto|always|off
## UNIVERSE=members.csv MIN_AMOUNT=1e7 LIQUID_TOP=300 BAD_ROWS=drop BREAKS=nan|keep MAX_MOVE=5,
## and any other flag of a step's tool as FETCH_ARGS PANEL_ARGS MODEL_ARGS BACKTEST_ARGS
## REPORT_ARGS (e.g. BACKTEST_ARGS='--limit-rule board') (docs/own-data.md); only those
## given on the command line reach the pipeline (`make mine HORIZON=5`): every default
## lives in the pipeline file or the tool's own flags (docs/pipeline.md).
mine_var = $(if $(filter command line,$(origin $(1))),--set '$(2)=$($(1))')
MINE_SETS = $(call mine_var,ASSETS,assets) $(call mine_var,DAYS,days) $(call mine_var,SEED,seed) \
  $(call mine_var,NAME,name) $(call mine_var,GENS,generations) $(call mine_var,POP,pop) \
  $(call mine_var,GP_SEED,gp_seed) $(call mine_var,HORIZON,horizon) $(call mine_var,HORIZONS,horizons) \
  $(call mine_var,MAX_SIZE,max_size) $(call mine_var,MODEL_SEED,model_seed) \
  $(call mine_var,SOURCE,source) $(call mine_var,FILES,path) $(call mine_var,MAPPING,mapping) \
  $(call mine_var,MARKET,market) $(call mine_var,META,meta) $(call mine_var,INFER_SPLITS,infer_splits) \
  $(call mine_var,UNIVERSE,universe) $(call mine_var,MIN_AMOUNT,min_amount) \
  $(call mine_var,LIQUID_TOP,liquid_top) $(call mine_var,TOPK,topk) \
  $(call mine_var,SHARDS,shards) $(call mine_var,BAD_ROWS,bad_rows) $(call mine_var,BREAKS,breaks) \
  $(call mine_var,MAX_MOVE,max_move) \
  $(call mine_var,FETCH_ARGS,fetch_args) $(call mine_var,PANEL_ARGS,panel_args) \
  $(call mine_var,MODEL_ARGS,model_args) $(call mine_var,BACKTEST_ARGS,backtest_args) \
  $(call mine_var,REPORT_ARGS,report_args) $(call mine_var,COMPARE,compare)
# The run folder's name, for the messages and the bench targets (the pipeline's own
# `name` and `gp_seed` unless given).
NAME ?= csi500
GP_SEED ?= 1
mine: release
	$(REL)/pipeline run pipelines/mine.yaml $(MINE_SETS)
	@head -n 24 out/runs/$(NAME)-seed$(GP_SEED)/libraries/current.yaml
	@echo "library: out/runs/$(NAME)-seed$(GP_SEED)/libraries/current.parquet (.csv, .yaml beside it); panel: data/panel/$(NAME).arrow"
	@echo "model: out/runs/$(NAME)-seed$(GP_SEED)/model/ (summary.json: test RankIC on the dates after the library's selection, vs the best single factor and an equal-weight blend; predictions.parquet)"
	@test ! -f out/runs/$(NAME)-seed$(GP_SEED)/model/compare.txt || cat out/runs/$(NAME)-seed$(GP_SEED)/model/compare.txt
	@echo "backtest: out/runs/$(NAME)-seed$(GP_SEED)/backtest/summary.json (the prediction as a costed top-50 portfolio: excess return, IR, drawdown with and without cost)"
	@echo "report: $(CURDIR)/out/runs/$(NAME)-seed$(GP_SEED)/report/index.html"

## test: unit + end-to-end tests (debug build; reference checks run in .venv). Installs
## what they need first: Debian's chromium and time (.ci/test-deps.sh, as root), the
## reference venv, the LightGBM toolchain.
test: test-deps venv venv-airflow toolchain
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

venv: $(VENV)/.stamp
$(VENV)/.stamp: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	# Qlib's own source (for the Alpha158 list), without its heavy dependencies
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --only-binary :all: pyqlib==0.9.7
	touch $@

# Apache Airflow 3 in its own venv (its pins clash with the reference venv's): the
# exported DAG runs under it in tests/pipeline.rs.
AIRFLOW_VENV := .venv-airflow
venv-airflow: $(AIRFLOW_VENV)/.stamp
$(AIRFLOW_VENV)/.stamp:
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install --quiet --disable-pip-version-check "apache-airflow==3.3.2"
	touch $@

test-deps:
	.ci/test-deps.sh

toolchain: $(BUILD_VENV)/.stamp
$(BUILD_VENV)/.stamp: .ci/toolchain.sh
	.ci/toolchain.sh

build: toolchain
	$(CARGO) build --workspace --bins

release: toolchain
	$(CARGO) build --release --bins

## bench: bench.md items 1-3 — expressions on `full` vs polars_ta, numpy+bottleneck and
## KunQuant; fitness throughput vs alphalens-reloaded; GP vs random search on csi500.
## Results in out/bench/{expr,fitness,mining}.json and tables on stdout.
BENCH_VENV := .venv-bench
bench: bench-expr bench-ops bench-alpha101 bench-fitness bench-cache bench-mine bench-runner

## bench-runner: a second `pipeline run` of `make mine` with nothing changed (bench.md item 4)
bench-runner: release
	test -f out/runs/$(NAME)-seed$(GP_SEED)/libraries/current.parquet || $(MAKE) mine
	$(REL)/pipeline run pipelines/mine.yaml $(MINE_SETS) --quiet
	/usr/bin/time -f "no-change re-run of make mine: %e s wall, %M KB peak" \
	  $(REL)/pipeline run pipelines/mine.yaml $(MINE_SETS) --quiet

## bench-expr: expression evaluation (bench.md item 1); out/bench/expr.json
bench-expr: release $(BENCH_VENV)/.stamp data/panel/full.arrow
	mkdir -p out/bench
	/usr/bin/time -v $(REL)/expr bench --panel data/panel/full.arrow --file tests/bench/exprs.txt \
	  --repeat 5 --json out/bench/expr-ours.json --dump-dir out/bench/values 2> out/bench/expr-ours.time
	@grep -hE "Maximum resident" out/bench/expr-ours.time
	$(BENCH_VENV)/bin/python tests/bench/peers.py --panel data/panel/full.arrow --exprs tests/bench/exprs.txt \
	  --ours out/bench/expr-ours.json --values-dir out/bench/values --out out/bench/expr.json --repeat 3

## bench-ops: every registry operator alone on `full`, 1 and 2 threads, beside the
## streaming floor measured in the same run and the fastest peer (numpy+bottleneck,
## polars_ta, KunQuant) on the operators they have (issue 26 item 1); out/bench/ops.md
bench-ops: release $(BENCH_VENV)/.stamp data/panel/full.arrow
	mkdir -p out/bench
	$(REL)/expr ops --bench > out/bench/ops.txt
	$(REL)/expr ops > out/bench/ops-list.txt
	RAYON_NUM_THREADS=1 $(REL)/expr bench --panel data/panel/full.arrow --file out/bench/ops.txt \
	  --repeat 3 --floor --json out/bench/ops-1t.json > /dev/null
	RAYON_NUM_THREADS=2 $(REL)/expr bench --panel data/panel/full.arrow --file out/bench/ops.txt \
	  --repeat 3 --floor --json out/bench/ops-2t.json --dump-dir out/bench/ops-values > /dev/null
	$(BENCH_VENV)/bin/python tests/bench/peers.py --panel data/panel/full.arrow --exprs out/bench/ops.txt \
	  --ours out/bench/ops-2t.json --values-dir out/bench/ops-values --out out/bench/ops-peers.json \
	  --repeat 3 --ops-only > out/bench/ops-peers.txt
	$(PYTHON) tests/bench/ops_table.py --one out/bench/ops-1t.json --two out/bench/ops-2t.json \
	  --ops out/bench/ops-list.txt --peers out/bench/ops-peers.json --out out/bench/ops.md

## bench-alpha101: all 101 alphas on `full`, one by one and as one merged DAG, beside
## KunQuant's own Alpha101 (its 82) on the same panel in the same run (issue 26 item 4);
## out/bench/alpha101.json. KunQuant holds every output as a whole array: ~24 GB RSS on `full`.
bench-alpha101: release $(BENCH_VENV)/.stamp data/panel/full.arrow
	mkdir -p out/bench
	$(BENCH_VENV)/bin/python tests/bench/alpha101_kun.py subset --alphas tests/fixtures/alpha101.txt \
	  --out out/bench/alpha101-kun.txt
	$(REL)/expr bench --panel data/panel/full.arrow --file tests/fixtures/alpha101.txt --repeat 3 \
	  --all-at-once --json out/bench/alpha101-ours.json > out/bench/alpha101-ours.txt
	$(REL)/expr bench --panel data/panel/full.arrow --file out/bench/alpha101-kun.txt --repeat 3 \
	  --all-at-once --no-each --json out/bench/alpha101-ours-kunset.json > /dev/null
	$(BENCH_VENV)/bin/python tests/bench/alpha101_kun.py run --panel data/panel/full.arrow \
	  --ours-all out/bench/alpha101-ours.json --ours-subset out/bench/alpha101-ours-kunset.json \
	  --out out/bench/alpha101.json --repeat 3

## bench-fitness: fitness throughput on `full`, FAST and FULL, and alphalens-reloaded on
## a few of the same factors (bench.md item 2); out/bench/fitness.json
bench-fitness: release $(BENCH_VENV)/.stamp data/panel/full.arrow
	mkdir -p out/bench
	/usr/bin/time -v $(REL)/fitness --panel data/panel/full.arrow --candidates tests/bench/fitness_candidates.txt \
	  --horizon 1 --fast --fast-threshold 0 --no-cache --out out/bench/fitness-both.parquet 2> out/bench/fitness-both.log
	grep -v '^#' tests/bench/fitness_candidates.txt | head -n 2 > out/bench/fitness-few.txt
	/usr/bin/time -v $(REL)/fitness --panel data/panel/full.arrow --candidates out/bench/fitness-few.txt \
	  --horizon 1 --no-cache --out out/bench/fitness-few.parquet 2> out/bench/fitness-few.log
	$(REL)/expr eval --panel data/panel/full.arrow --file out/bench/fitness-few.txt --out out/bench/fitness-few-values.parquet
	$(BENCH_VENV)/bin/python tests/bench/alphalens_peer.py --panel data/panel/full.arrow \
	  --values out/bench/fitness-few-values.parquet --out out/bench/alphalens.json
	$(BENCH_VENV)/bin/python tests/bench/fitness_summary.py out/bench

## bench-cache: one GP generation through `fitness` on `full` without and with the
## sub-expression cache, and cache-plan's prediction beside it (issue 7); out/bench/cache.json
bench-cache: release $(BENCH_VENV)/.stamp data/panel/full.arrow
	tests/bench/cache.sh

## bench-mine: GP against random search at equal evaluations (bench.md item 3), on the
## standard csi500 market (out/bench/mining.json) and on the hard planted set
## (out/bench/mining-hard.json); SEEDS="1 2 3" while iterating, 10 seeds for a table.
bench-mine: release $(BENCH_VENV)/.stamp
	test -f data/panel/$(NAME).arrow || $(MAKE) mine GENS=1 POP=10
	test -f data/panel/hard.arrow || ($(REL)/ts-fetch --planted hard --out data/raw/hard -q \
	  && $(REL)/panel-build --raw data/raw/hard --out data/panel/hard.arrow -q)
	HORIZONS=1,5 tests/bench/mine.sh
	HORIZONS=1,5 PANEL=data/panel/hard.arrow GT=data/raw/hard/ground_truth.json \
	  OUT=out/bench/mine-hard JSON=out/bench/mining-hard.json tests/bench/mine.sh
	$(BENCH_VENV)/bin/python tests/bench/mine_summary.py out/bench/mining.json
	$(BENCH_VENV)/bin/python tests/bench/mine_summary.py --gt data/raw/hard/ground_truth.json \
	  out/bench/mining-hard.json

## bench-model: the library vs Alpha158 vs library + Alpha158 vs the oracle on csi500, the
## hard planted market and the S&P 500 2009-2010 set (issue 35; out/bench/model.md)
bench-model: release
	tests/bench/model.sh

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
	rm -rf data/raw data/raw-* data/panel out/* state/*

fmt:
	$(CARGO) fmt --all
