#!/usr/bin/env bash
# ts-fetch --source postgres on a market-sized table: rows/s and peak RSS beside the
# server's own COPY to /dev/null (the floor), and a one-year update.
# usage: tests/bench/measure_pg.sh RAW_FOLDER   (e.g. data/raw-full; not run by CI)
# Needs: make release, make venv, PostgreSQL binaries, root (runuser postgres).
set -uo pipefail
cd "$(dirname "$0")/../.."
RAW=${1:?raw folder}
R=target/release
M=/tmp/meas-pg; rm -rf $M; mkdir -p $M
T="/usr/bin/time -f %e_s_%M_KB"
.venv/bin/python tests/py/pg_fixture.py $RAW $M/full.csv
ls -la $M/full.csv
PGB=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
PD=/tmp/pgmeas; rm -rf $PD; mkdir -p $PD; chmod 777 $PD; chown postgres $PD
echo pw > $PD/pw; chmod 644 $PD/pw
runuser -u postgres -- $PGB/initdb -D $PD/data -U postgres --pwfile $PD/pw --auth-local=trust --auth-host=scram-sha-256 >/dev/null
runuser -u postgres -- $PGB/pg_ctl -D $PD/data -l $PD/log -w -o "-p 55432 -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PD -c fsync=off -c full_page_writes=off" start >/dev/null
export PGPASSWORD=pw
P="$PGB/psql -h 127.0.0.1 -p 55432 -U postgres -q"
$P -c "CREATE TABLE daily_bars (ts_code text, trade_date date, open numeric(14,4), high numeric(14,4), low numeric(14,4), close numeric(14,4), pre_close double precision, vol double precision, amount double precision, adj_factor double precision, is_st boolean, is_suspended boolean, industry text, total_mv double precision, circ_mv double precision, list_date date, up_limit numeric(14,2), down_limit numeric(14,2))"
$P -c "\copy daily_bars FROM '$M/full.csv' CSV HEADER"
$P -c "SELECT count(*) FROM daily_bars" -t
runuser -u postgres -- bash -c "cd /tmp; time $PGB/psql -h $PD -p 55432 -U postgres -q -c \"COPY (SELECT * FROM daily_bars) TO '/dev/null' (FORMAT binary)\"" 2>&1 | grep real
DATABASE_URL=postgresql://postgres:pw@127.0.0.1:55432/postgres $T $R/ts-fetch --source postgres --table daily_bars --mapping tushare --out $M/pgraw 2>&1 | tail -2
echo "-- update: the last 30 dates again"
LAST=$($P -t -A -c "SELECT DISTINCT trade_date FROM daily_bars ORDER BY 1 DESC OFFSET 30 LIMIT 1")
$P -c "CREATE TABLE growing AS SELECT * FROM daily_bars WHERE trade_date <= DATE '$LAST'"
export DATABASE_URL=postgresql://postgres:pw@127.0.0.1:55432/postgres
$R/ts-fetch --source postgres --table growing --mapping tushare --out $M/grow -q
$P -c "INSERT INTO growing SELECT * FROM daily_bars WHERE trade_date > DATE '$LAST'"
$T $R/ts-fetch --source postgres --table growing --mapping tushare --update --out $M/grow 2>&1 | tail -2
grep -o "update rewrote[^\"]*" $M/grow/manifest.json
runuser -u postgres -- $PGB/pg_ctl -D $PD/data -m immediate stop >/dev/null
