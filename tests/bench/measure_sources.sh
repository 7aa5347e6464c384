#!/usr/bin/env bash
# Speed and memory of the data sources and tools on market-sized inputs (the figures
# in the issue notes): a 2-year whole market through the fake Tushare server at
# unlimited and 500 calls/min, `full` through PostgreSQL (beside the server's own
# COPY to /dev/null), Qlib export/import of `full`, backtest on `full`.
# Needs: make release, make venv, PostgreSQL binaries, root (runuser postgres). ~15 min.
set -uo pipefail
cd "$(dirname "$0")/../.."
R=target/release
M=/tmp/meas; rm -rf $M; mkdir -p $M
T="/usr/bin/time -f %e_s_%M_KB"
echo "== issue 21: 2-year whole market (5000 assets x 488 days) through the fake Tushare server"
$R/ts-fetch --assets 5000 --days 488 --seed 11 --out $M/syn2y >/dev/null
.venv/bin/python tests/py/fake_tushare.py --raw $M/syn2y --port 18901 --token tok > $M/srv.log 2>&1 &
SRV=$!; sleep 25
for rate in 0 500; do
  rm -rf $M/ts$rate
  TUSHARE_TOKEN=tok $T $R/ts-fetch --source tushare --api-url http://127.0.0.1:18901/dataapi --rate $rate --start 2016-01-01 --end 2018-12-31 --out $M/ts$rate -q 2>&1 | tail -2
done
curl -s localhost:18901/stats; echo
kill $SRV
echo "== issue 22: full market (5000 x 2500) through PostgreSQL, and Qlib export/import"
$R/ts-fetch --assets 5000 --days 2500 --seed 12 --out $M/full >/dev/null
tests/bench/measure_pg.sh $M/full
echo "== qlib export / import of full"
$T $R/qlib-export --raw $M/full --out $M/qfull 2>&1 | tail -2
$T $R/ts-fetch --source qlib --path $M/qfull --out $M/qback 2>&1 | tail -2
echo "== issue 23: backtest on full"
$R/panel-build --raw $M/full --out $M/full.arrow >/dev/null
$R/expr eval --panel $M/full.arrow --expr='-ts_sum(returns, 5)' --out $M/sig.parquet --no-cache 2>/dev/null | tail -1
COL=$(.venv/bin/python -c "import pyarrow.parquet as pq; print([c for c in pq.read_schema('$M/sig.parquet').names if c not in ('date','code')][0])")
$T $R/backtest --signal $M/sig.parquet --column "$COL" --panel $M/full.arrow --out $M/btfull 2>&1 | tail -3
echo done
