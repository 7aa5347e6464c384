#!/usr/bin/env python3
"""`make bench` item 1: the bench expression set through three Python peers, timed in
the same run as alpha-factory and compared cell by cell.

usage: peers.py --panel data/panel/full.arrow --exprs tests/bench/exprs.txt \
                --ours OURS.json --values-dir DIR --out out/bench/expr.json [--repeat 3]
                [--peers polars_ta,bottleneck,kunquant] [--only NAME,...]
                [--kun-cache DIR]

Peers (each expression is written by hand for each peer, see POLARS / BOTTLENECK /
KUNQUANT below; a name missing from a peer's table is reported as n/a, never faked):

  polars_ta   polars_ta.wq functions (and plain Polars where polars_ta has no
              function with our semantics) on a long frame (asset, date) sorted by
              asset; time-series ops `.over("asset")`, cross-section `.over("date")`.
  bottleneck  numpy + bottleneck on the wide [date][asset] arrays: bn.move_*,
              bn.nanrankdata per row, np.bincount for group means.
  kunquant    KunQuant graphs (KunQuant.ops, Rank, GenericCrossSectionalOp for the two
              cross-section ops it lacks), one module per expression, compiled once
              (not timed, cached under --kun-cache), double precision, TS layout,
              run with a multi-thread executor using every core.

The panel is loaded once (not timed). Each peer evaluates each expression --repeat
times (wall ms, median reported); peers may use all cores. Our timings come from
OURS.json ({"engine":"alpha-factory","exprs":[{"name","expr","ms_median","ms_all"}]})
and our values from DIR/<name>.f64 (little-endian f64, the last 250 date rows x all
assets, row-major). Every peer's values on those rows are compared with ours.
"""
import argparse
import gc
import hashlib
import json
import math
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

TAIL = 250
REL_TOL = 1e-6  # |peer - ours| / max(1, |ours|) above this is a disagreement
PEERS = ("polars_ta", "bottleneck", "kunquant")
NAN = float("nan")


# ---------------------------------------------------------------------------
# inputs


def read_exprs(path):
    """(name, text) pairs, parsed like `expr`'s --file: `name = expr`, `#` comments."""
    out = []
    for line in open(path, encoding="utf-8"):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        n, sep, e = s.partition("=")
        if sep and n.strip() and all(c.isalnum() or c == "_" for c in n.strip()) and not e.startswith("="):
            out.append((n.strip(), e.strip()))
        else:
            out.append(("", s))
    return [(n or f"f{i}", e) for i, (n, e) in enumerate(out)]


# `make bench-ops`: the registry's operators alone, as `expr ops --bench` writes them
# (out/bench/ops.txt), for the operators a peer has a primitive with our semantics: name
# -> (primitive, arguments). Each peer maps the primitive names to its own functions
# (`prims` in its _funcs); an operator none of them has stays n/a in the table.
OPS = {
    "op_add": ("add", ("close", "volume")),
    "op_sub": ("sub", ("close", "volume")),
    "op_mul": ("mul", ("close", "volume")),
    "op_div": ("div", ("close", "volume")),
    "op_max": ("max", ("close", "volume")),
    "op_min": ("min", ("close", "volume")),
    "op_neg": ("neg", ("close",)),
    "op_abs": ("abs", ("close",)),
    "op_log": ("log", ("close",)),
    "op_sqrt": ("sqrt", ("close",)),
    "op_exp": ("exp", ("close",)),
    "op_sign": ("sign", ("close",)),
    "op_ts_delay": ("delay", ("close", 20)),
    "op_ts_delta": ("delta", ("close", 20)),
    "op_ts_sum": ("tsum", ("close", 20)),
    "op_ts_mean": ("mean", ("close", 20)),
    "op_ts_std": ("std", ("close", 20)),
    "op_ts_var": ("var", ("close", 20)),
    "op_ts_min": ("tmin", ("close", 20)),
    "op_ts_max": ("tmax", ("close", 20)),
    "op_ts_argmin": ("argmin", ("close", 20)),
    "op_ts_argmax": ("argmax", ("close", 20)),
    "op_ts_rank": ("ts_rank", ("close", 20)),
    "op_ts_median": ("median", ("close", 20)),
    "op_ts_zscore": ("zscore", ("close", 20)),
    "op_ts_decay_linear": ("decay", ("close", 20)),
    "op_ts_corr": ("corr", ("close", "volume", 20)),
    "op_ts_cov": ("cov", ("close", "volume", 20)),
    "op_rank": ("rank", ("close",)),
    "op_cs_zscore": ("cs_zscore", ("close",)),
    "op_cs_demean": ("cs_demean", ("close",)),
    "op_group_neutralize": ("gneut", ("close",)),
}


def op_funcs(prims, field):
    """The OPS entries a peer can run: name -> thunk, from its primitives and a
    field getter (a field name -> the peer's handle on that input)."""
    out = {}
    for name, (prim, args) in OPS.items():
        f = prims.get(prim)
        if f is None:
            continue
        out[name] = (lambda f=f, args=args: f(*(field(a) if isinstance(a, str) else a for a in args)))
    return out


class Panel:
    """The Arrow IPC panel as wide numpy arrays [date][asset] (copied out of the
    memory map so that no peer pays page faults inside a timed run)."""

    FIELDS = ("open", "high", "low", "close", "vwap", "volume", "amount", "returns", "turnover", "cap")

    def __init__(self, path):
        with pa.memory_map(path) as src:
            table = ipc.open_file(src).read_all()
            meta = json.loads(table.schema.metadata[b"af.panel"])
            self.meta = meta
            self.codes = meta["codes"]
            self.dates = meta["dates"]
            self.nd, self.na = meta["n_dates"], meta["n_assets"]
            shape = (self.nd, self.na)
            self.f = {}
            for name in self.FIELDS:
                col = table.column(name).combine_chunks()
                self.f[name] = np.array(col.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(shape)
            self.universe = table.column("in_universe").combine_chunks().to_numpy(zero_copy_only=False).reshape(shape).copy()
            ind = table.column("industry").combine_chunks()
            if isinstance(ind.type, pa.DictionaryType):
                self.industry = np.asarray(ind.indices.to_numpy(zero_copy_only=False), dtype=np.int32).reshape(shape).copy()
            else:  # plain strings: factorize
                _, inv = np.unique(np.asarray(ind.to_numpy(zero_copy_only=False)), return_inverse=True)
                self.industry = inv.astype(np.int32).reshape(shape)
            del table
        self.n_groups = int(self.industry.max()) + 1


# ---------------------------------------------------------------------------
# peer: numpy + bottleneck on the wide arrays


class Bottleneck:
    name = "bottleneck"
    notes = {
        "ts": "bn.move_mean/move_sum/move_std(ddof=1)/move_min/move_max/move_rank (rescaled from [-1,1] to (0,1]) along axis 0, min_count = window",
        "ts_argmax/argmin": "bn.move_argmax/argmin on the time-reversed array, so ties go to the earliest day like ours (bn alone picks the newest)",
        "ts_decay_linear": "numpy: weighted sum of d shifted slices (bottleneck has no weighted moving mean)",
        "ts_corr/ts_cov": "one-pass moments from bn.move_mean of x, y, x*y and bn.move_std; NaN where a std is 0",
        "exact zeros": "bn's running sums drift, so where a std or mean is a divisor (ts_corr, ts_zscore, x / ts_mean) constant windows are found exactly with move_max == move_min and get std 0 / mean = the value",
        "rank": "bn.nanrankdata per date row (average ties) / count, universe-masked",
        "cs_zscore": "bn.nanmean / bn.nanstd(ddof=1) per row",
        "group_neutralize": "np.bincount over (date, industry) keys",
    }

    def setup(self, p):
        import bottleneck as bn

        self.bn = bn
        self.p = p
        self.F = p.f
        self.funcs = self._funcs()

    # -- helpers ------------------------------------------------------------
    def _funcs(self):
        bn, p, F = self.bn, self.p, self.F
        U = p.universe

        def shift(x, d):
            out = np.empty_like(x)
            out[:d] = NAN
            out[d:] = x[:-d]
            return out

        def div(a, b):
            with np.errstate(divide="ignore", invalid="ignore"):
                r = a / b
            r[b == 0] = NAN
            return r

        def mean(x, d):
            return bn.move_mean(x, d, axis=0)

        def tsum(x, d):
            return bn.move_sum(x, d, axis=0)

        def std(x, d):
            return bn.move_std(x, d, axis=0, ddof=1)

        def tmin(x, d):
            return bn.move_min(x, d, axis=0)

        def tmax(x, d):
            return bn.move_max(x, d, axis=0)

        # bn's running sums drift (they are never recomputed), so a constant window's
        # std or an all-zero window's mean comes out as 1e-9 noise instead of 0; where
        # that decides a NaN (a divisor), detect constant windows exactly.
        def flat(x, d):
            return bn.move_max(x, d, axis=0) == bn.move_min(x, d, axis=0)

        def std0(x, d):
            s = std(x, d)
            s[flat(x, d)] = 0.0
            return s

        def mean0(x, d):
            m = mean(x, d)
            f = flat(x, d)
            m[f] = x[f]
            return m

        def ts_rank(x, d):
            r = bn.move_rank(x, d, axis=0)  # in [-1, 1], average ties
            return ((r + 1.0) * ((d - 1) / 2.0) + 1.0) / d

        def _argext(f, x, d):
            r = f(x[::-1], d, axis=0)[::-1]
            out = np.full_like(x, NAN)
            out[d - 1:] = (d - 1) - r[: x.shape[0] - d + 1]
            return out

        def argmax(x, d):
            return _argext(bn.move_argmax, x, d)

        def argmin(x, d):
            return _argext(bn.move_argmin, x, d)

        def delta(x, d):
            return x - shift(x, d)

        def decay(x, d):
            n = x.shape[0]
            out = np.full_like(x, NAN)
            acc = x[d - 1:] * float(d)
            for k in range(1, d):
                acc += x[d - 1 - k: n - k] * float(d - k)
            out[d - 1:] = acc / (d * (d + 1) / 2.0)
            return out

        def cov(x, y, d):
            mx, my, mxy = mean(x, d), mean(y, d), mean(x * y, d)
            return (mxy - mx * my) * (d / (d - 1.0))

        def corr(x, y, d):
            return div(cov(x, y, d), std0(x, d) * std0(y, d))

        def um(x):
            return np.where(U, x, NAN)

        def rank(x):
            m = um(x)
            r = bn.nanrankdata(m, axis=1)
            n = np.count_nonzero(~np.isnan(m), axis=1).astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                return r / n[:, None]

        def cs_zscore(x):
            m = um(x)
            mu = bn.nanmean(m, axis=1)[:, None]
            sd = bn.nanstd(m, axis=1, ddof=1)[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                return (m - mu) / np.where(sd > 0, sd, NAN)

        ng = p.n_groups
        key = p.industry.astype(np.int64) + ng * np.arange(p.nd, dtype=np.int64)[:, None]

        def gneut(x):
            m = um(x)
            ok = ~np.isnan(m)
            k = key[ok]
            s = np.bincount(k, weights=m[ok], minlength=p.nd * ng)
            c = np.bincount(k, minlength=p.nd * ng)
            out = np.full_like(m, NAN)
            out[ok] = m[ok] - s[k] / c[k]
            return out

        def log(x):
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), NAN)

        def sqrt(x):
            with np.errstate(invalid="ignore"):
                return np.sqrt(x)

        def cs_demean(x):
            m = um(x)
            return m - bn.nanmean(m, axis=1)[:, None]

        prims = {
            "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": div,
            "max": np.maximum, "min": np.minimum, "neg": np.negative, "abs": np.abs,
            "log": log, "sqrt": sqrt, "exp": np.exp, "sign": np.sign,
            "delay": shift, "delta": delta, "tsum": tsum, "mean": mean, "std": std,
            "var": lambda x, d: bn.move_var(x, d, axis=0, ddof=1), "tmin": tmin, "tmax": tmax,
            "argmin": argmin, "argmax": argmax, "ts_rank": ts_rank,
            "median": lambda x, d: bn.move_median(x, d, axis=0),
            "zscore": lambda x, d: div(x - mean0(x, d), std0(x, d)), "decay": decay,
            "corr": corr, "cov": cov, "rank": rank, "cs_zscore": cs_zscore,
            "cs_demean": cs_demean, "gneut": gneut,
        }
        o, h, lo, c, vw, v, amt, ret, tov, cap = (F[k] for k in Panel.FIELDS)
        return op_funcs(prims, lambda k: F[k]) | {
            "alpha003": lambda: -1 * corr(rank(o), rank(v), 10),
            "alpha006": lambda: -1 * corr(o, v, 10),
            "alpha004": lambda: -1 * ts_rank(rank(lo), 9),
            "alpha013": lambda: -1 * rank(cov(rank(c), rank(v), 5)),
            "alpha101": lambda: div(c - o, (h - lo) + 0.001),
            "delta_x_tsrank": lambda: rank(delta(c, 5)) * ts_rank(v, 20),
            "ind_mom20": lambda: gneut(tsum(ret, 20)),
            "mean_rev20": lambda: rank(div(mean(c, 20), c)) * -1,
            "vol20": lambda: std(ret, 20),
            "zscore_close20": lambda: div(c - mean0(c, 20), std0(c, 20)),
            "decay_ret10": lambda: decay(ret, 10),
            "argmax_rank30": lambda: rank(argmax(c, 30)),
            "argmin_minus_argmax": lambda: argmin(lo, 20) - argmax(h, 20),
            "stoch20": lambda: div(c - tmin(lo, 20), tmax(h, 20) - tmin(lo, 20)),
            "cov_cv20": lambda: cov(c, v, 20),
            "tsrank_vwap10": lambda: ts_rank(vw, 10),
            "decay_rank_dvwap": lambda: decay(rank(delta(vw, 3)), 7),
            "rank_corr_hv5": lambda: rank(corr(h, v, 5)),
            "cs_tz_turn": lambda: cs_zscore(div(tov - mean0(tov, 20), std0(tov, 20))),
            "ind_rank_mom20": lambda: gneut(rank(div(c, shift(c, 20)))),
            "amount_ratio": lambda: div(mean0(amt, 5), mean0(amt, 60)),
            "deep_corr": lambda: rank(decay(corr(rank(vw), rank(mean(v, 20)), 6), 4)),
            "ind_size": lambda: gneut(cs_zscore(log(cap))),
            "vol_ratio_rank": lambda: rank(div(std(ret, 10), mean(np.abs(ret), 10) + 0.001)),
            "tsmax_rank_vol": lambda: tmax(rank(v), 5),
        }

    def run(self, name):
        return self.funcs[name]()

    def tail(self, res, n):
        return np.asarray(res[-n:], dtype=np.float64)


# ---------------------------------------------------------------------------
# peer: polars_ta + Polars on a long frame


class PolarsTA:
    name = "polars_ta"
    notes = {
        "frame": "long frame (asset, date, fields, in_universe, industry) sorted by asset then date; NaN stored as null",
        "staging": "every window op (.over) is materialised into a column with with_columns before the next one reads it: Polars evaluates an .over() nested inside another .over() within the outer groups, which is a different (wrong) number",
        "ts": "polars_ta.wq.time_series ts_mean/ts_sum/ts_std_dev(ddof=1)/ts_min/ts_max/ts_rank/ts_delta/ts_delay/ts_decay_linear/ts_corr/ts_covariance(ddof=1) .over('asset'), min_samples = window",
        "ts_argmax/argmin": "polars_ta ts_arg_max/ts_arg_min(reverse=False) -> d-1-index, so ties go to the earliest day like ours (reverse=True picks the newest); these run numba per asset through map_batches",
        "ts_zscore": "(x - ts_mean) / ts_std_dev(ddof=1): polars_ta.ts_zscore uses ddof=0",
        "rank": "plain Polars x.rank('average') / x.count() .over('date'): polars_ta.cs_rank is a dense rank scaled to [0,1], a different number",
        "cs_zscore": "polars_ta.wq.preprocess.cs_zscore(ddof=1) .over('date') (its default is ddof=0)",
        "group_neutralize": "plain Polars x - x.mean().over(['date','industry']) (polars_ta has only regression neutralisation)",
        "exact zeros": "rolling std/corr leave rounding residue on constant windows (ts_corr even gives inf), so where that decides a NaN (ts_corr, ts_zscore, x / ts_mean) constant windows are found exactly with ts_max == ts_min",
    }

    def setup(self, p):
        import polars as pl
        import polars_ta.wq.preprocess as PP
        import polars_ta.wq.time_series as T

        self.pl = pl
        self.p = p
        nd, na = p.nd, p.na
        cols = {
            "asset": np.repeat(np.arange(na, dtype=np.int32), nd),
            "date": np.tile(np.arange(nd, dtype=np.int32), na),
        }
        # asset-major: column-major flattening of the [date][asset] arrays
        for k, a in p.f.items():
            cols[k] = pl.Series(k, a.T.ravel(), nan_to_null=True)
        cols["in_universe"] = p.universe.T.ravel()
        cols["industry"] = p.industry.T.ravel()
        self.df = pl.DataFrame(cols)
        del cols
        self.cur = None  # the frame of the evaluation under way, with its temporaries
        self.funcs = self._funcs(pl, T, PP)

    def _funcs(self, pl, T, PP):
        c = pl.col
        A, D = "asset", "date"
        me = self

        def mat(e):
            """Materialise a window expression as a column of the current frame."""
            name = f"_t{len(me.cur.columns)}"
            me.cur = me.cur.with_columns(e.alias(name))
            return c(name)

        def nz(e):  # NaN (from 0/0 and friends) -> null, Polars' missing value
            return e.fill_nan(None)

        def div(a, b):
            return pl.when(b != 0).then(a / b)

        def U(e):
            return pl.when(c("in_universe")).then(nz(e))

        def rank(e):
            u = U(e)
            return mat((u.rank("average") / u.count()).over(D))

        def cs_zscore(e):
            u = U(e)
            sd = u.std(ddof=1)
            return mat(pl.when(sd > 0).then(PP.cs_zscore(u, ddof=1)).over(D))

        def gneut(e):
            u = mat(U(e))
            return mat(u - u.mean().over([D, "industry"]))

        def mean(x, d):
            return mat(T.ts_mean(x, d).over(A))

        def tsum(x, d):
            return mat(T.ts_sum(x, d).over(A))

        def std(x, d):
            return mat(T.ts_std_dev(x, d, ddof=1).over(A))

        def tmin(x, d):
            return mat(T.ts_min(x, d).over(A))

        def tmax(x, d):
            return mat(T.ts_max(x, d).over(A))

        def ts_rank(x, d):
            return mat(T.ts_rank(x, d).over(A))

        def argmax(x, d):
            return (d - 1) - mat(T.ts_arg_max(x, d, reverse=False).over(A)).cast(pl.Float64)

        def argmin(x, d):
            return (d - 1) - mat(T.ts_arg_min(x, d, reverse=False).over(A)).cast(pl.Float64)

        def delta(x, d):
            return mat(T.ts_delta(x, d).over(A))

        def delay(x, d):
            return mat(T.ts_delay(x, d).over(A))

        def decay(x, d):
            return mat(T.ts_decay_linear(x, d).over(A))

        # Polars' rolling std/corr leave rounding residue on constant windows (and
        # ts_corr gives inf there); our rule is NaN, so find constant windows exactly
        def flat(x, d):
            return mat(T.ts_max(x, d).over(A) == T.ts_min(x, d).over(A))

        def std0(x, d):
            return pl.when(flat(x, d)).then(0.0).otherwise(std(x, d))

        def mean0(x, d):
            return pl.when(flat(x, d)).then(x).otherwise(mean(x, d))

        def corr(x, y, d):
            return pl.when(flat(x, d) | flat(y, d)).then(None).otherwise(nz(mat(T.ts_corr(x, y, d).over(A))))

        def cov(x, y, d):
            return mat(T.ts_covariance(x, y, d, ddof=1).over(A))

        def zscore(x, d):
            return div(x - mean(x, d), std0(x, d))

        def log(x):
            return pl.when(x > 0).then(x.log())

        def both(a, b, e):  # our element-wise rule: NaN (null) if either input is
            return pl.when(a.is_not_null() & b.is_not_null()).then(e)

        def cs_demean(e):
            u = U(e)
            return mat((u - u.mean()).over(D))

        prims = {
            "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
            "div": div, "max": lambda a, b: both(a, b, pl.max_horizontal(a, b)),
            "min": lambda a, b: both(a, b, pl.min_horizontal(a, b)), "neg": lambda a: -a,
            "abs": lambda a: a.abs(), "log": log, "sqrt": lambda a: pl.when(a >= 0).then(a.sqrt()),
            "exp": lambda a: a.exp(), "sign": lambda a: a.sign(),
            "delay": delay, "delta": delta, "tsum": tsum, "mean": mean, "std": std,
            "tmin": tmin, "tmax": tmax, "argmin": argmin, "argmax": argmax, "ts_rank": ts_rank,
            "zscore": zscore, "decay": decay, "corr": corr, "cov": cov, "rank": rank,
            "cs_zscore": cs_zscore, "cs_demean": cs_demean, "gneut": gneut,
        }
        o, h, lo, cl, vw, v, amt, ret, tov, cap = (c(k) for k in Panel.FIELDS)
        return op_funcs(prims, c) | {
            "alpha003": lambda: -1 * corr(rank(o), rank(v), 10),
            "alpha006": lambda: -1 * corr(o, v, 10),
            "alpha004": lambda: -1 * ts_rank(rank(lo), 9),
            "alpha013": lambda: -1 * rank(cov(rank(cl), rank(v), 5)),
            "alpha101": lambda: div(cl - o, (h - lo) + 0.001),
            "delta_x_tsrank": lambda: rank(delta(cl, 5)) * ts_rank(v, 20),
            "ind_mom20": lambda: gneut(tsum(ret, 20)),
            "mean_rev20": lambda: rank(div(mean(cl, 20), cl)) * -1,
            "vol20": lambda: std(ret, 20),
            "zscore_close20": lambda: zscore(cl, 20),
            "decay_ret10": lambda: decay(ret, 10),
            "argmax_rank30": lambda: rank(argmax(cl, 30)),
            "argmin_minus_argmax": lambda: argmin(lo, 20) - argmax(h, 20),
            "stoch20": lambda: div(cl - tmin(lo, 20), tmax(h, 20) - tmin(lo, 20)),
            "cov_cv20": lambda: cov(cl, v, 20),
            "tsrank_vwap10": lambda: ts_rank(vw, 10),
            "decay_rank_dvwap": lambda: decay(rank(delta(vw, 3)), 7),
            "rank_corr_hv5": lambda: rank(corr(h, v, 5)),
            "cs_tz_turn": lambda: cs_zscore(zscore(tov, 20)),
            "ind_rank_mom20": lambda: gneut(rank(div(cl, delay(cl, 20)))),
            "amount_ratio": lambda: div(mean0(amt, 5), mean0(amt, 60)),
            "deep_corr": lambda: rank(decay(corr(rank(vw), rank(mean(v, 20)), 6), 4)),
            "ind_size": lambda: gneut(cs_zscore(log(cap))),
            "vol_ratio_rank": lambda: rank(div(std(ret, 10), mean(ret.abs(), 10) + 0.001)),
            "tsmax_rank_vol": lambda: tmax(rank(v), 5),
        }

    def run(self, name):
        self.cur = self.df
        try:
            e = self.funcs[name]()  # materialises the window ops into self.cur
            return self.cur.select(e.alias("f"))
        finally:
            self.cur = None

    def tail(self, res, n):
        a = res.get_column("f").cast(self.pl.Float64).to_numpy()
        return np.ascontiguousarray(a.reshape(self.p.na, self.p.nd)[:, -n:].T)


# ---------------------------------------------------------------------------
# peer: KunQuant


class KunQuant:
    name = "kunquant"
    notes = {
        "build": "one KunQuant module per expression (KunQuant.ops graph), dtype double, TS layout in and out, options no_fast_stat=True, compiled once with cfake (not timed), run with createMultiThreadExecutor(all cores)",
        "no_fast_stat": "KunQuant's default fast rolling statistics for double (no_fast_stat=False) give wrong values in every window after a NaN (they poison the running sums); with no_fast_stat=True windows with a NaN are NaN like ours",
        "ts": "WindowedAvg/WindowedSum/WindowedStddev/WindowedMin/WindowedMax/BackRef/DecayLinear; TsRank/d for ts_rank; d - TsArgMax/TsArgMin (1 = oldest) for days since",
        "ts_corr/ts_cov": "WindowedCorrelation / WindowedCovariance",
        "exact zeros": "windowed std/corr leave rounding residue on constant windows, so where that decides a NaN (ts_corr, ts_zscore, x / ts_mean) constant windows are found exactly with WindowedMax == WindowedMin",
        "rank": "Rank (average ties, NaN skipped) of Select(in_universe, x, nan)",
        "cs_zscore/group_neutralize": "KunQuant has no built-in: written as GenericCrossSectionalOp C++ bodies (KunQuant's documented extension point for custom cross-section ops)",
        "division/log": "Select(b == 0, nan, a / b) and Select(x > 0, Log(x), nan), since KunQuant gives inf",
    }

    def setup(self, p, names, cache_dir):
        from KunQuant.Driver import KunCompilerConfig
        from KunQuant.jit import cfake
        from KunQuant.Op import Builder, ConstantOp, Input, Output, Rank
        from KunQuant.Stage import Function
        from KunQuant.runner import KunRunner as kr
        import KunQuant.ops as K

        self.kr = kr
        self.p = p
        self.K = K
        self.ConstantOp = ConstantOp
        self.Rank = Rank
        self.threads = os.cpu_count() or 1
        self.exe = kr.createMultiThreadExecutor(self.threads)
        table = self._funcs(p, K, ConstantOp, Input)
        self.funcs = {n: table[n] for n in names if n in table}
        # build every module's graph; record which inputs each one reads
        modules, self.inputs_of = [], {}
        for n, fn in self.funcs.items():
            b = Builder()
            with b:
                self._inputs = {}
                Output(fn(), n)
            self.inputs_of[n] = sorted(self._inputs)
            cfg = KunCompilerConfig(dtype="double", blocking_len=4, input_layout="TS", output_layout="TS",
                                    options={"no_fast_stat": True})
            modules.append((n, Function(b.ops), cfg))
        # cache the compiled library: key = KunQuant version + this class's source + the
        # names + group count
        import importlib.metadata as md
        import inspect
        h = hashlib.sha256()
        h.update(md.version("kunquant").encode())
        h.update(inspect.getsource(type(self)).encode())
        h.update(json.dumps([sorted(self.funcs), p.n_groups]).encode())
        libname = "bench_" + h.hexdigest()[:16]
        os.makedirs(cache_dir, exist_ok=True)
        path = os.path.join(cache_dir, libname, f"{libname}.so")
        self.compiled = False
        if not os.path.exists(path):
            path = cfake.compileit(modules, libname, cfake.CppCompilerConfig(), tempdir=cache_dir, keep_files=True, load=False)
            self.compiled = True
        self.lib = kr.Library.load(path)
        self.mods = {n: self.lib.getModule(n) for n in self.funcs}
        # inputs as the engine sees them: [time, stocks] contiguous float64
        self.data = dict(p.f)
        self.data["in_universe"] = p.universe.astype(np.float64)
        self.data["industry"] = p.industry.astype(np.float64)

    def _funcs(self, p, K, ConstantOp, Input):
        kq = self

        def I(name):
            if name not in kq._inputs:
                kq._inputs[name] = Input(name)
            return kq._inputs[name]

        def nan():
            return ConstantOp("nan")

        def const(v):
            return ConstantOp(float(v))

        def div(a, b):
            return K.Select(K.Equals(b, const(0)), nan(), K.Div(a, b))

        def U(x):
            return K.Select(K.GreaterThan(I("in_universe"), const(0.5)), x, nan())

        def rank(x):
            return kq.Rank(U(x))

        def mean(x, d):
            return K.WindowedAvg(x, d)

        def tsum(x, d):
            return K.WindowedSum(x, d)

        def std(x, d):
            return K.WindowedStddev(x, d)

        def tmin(x, d):
            return K.WindowedMin(x, d)

        def tmax(x, d):
            return K.WindowedMax(x, d)

        def ts_rank(x, d):
            return K.DivConst(K.TsRank(x, d), float(d))

        def argmax(x, d):
            return K.Sub(const(d), K.TsArgMax(x, d))

        def argmin(x, d):
            return K.Sub(const(d), K.TsArgMin(x, d))

        def delay(x, d):
            return K.BackRef(x, d)

        def delta(x, d):
            return K.Sub(x, K.BackRef(x, d))

        def decay(x, d):
            return K.DecayLinear(x, d)

        # KunQuant's windowed std/corr leave rounding residue on constant windows; our
        # rule is NaN, so find constant windows exactly
        def flat(x, d):
            return K.Equals(K.WindowedMax(x, d), K.WindowedMin(x, d))

        def mean0(x, d):
            return K.Select(flat(x, d), x, mean(x, d))

        def corr(x, y, d):
            return K.Select(K.Or(flat(x, d), flat(y, d)), nan(), K.WindowedCorrelation(x, d, y))

        def cov(x, y, d):
            return K.WindowedCovariance(x, d, y)

        def zscore(x, d):
            return K.Select(flat(x, d), nan(), div(K.Sub(x, mean(x, d)), std(x, d)))

        def log(x):
            return K.Select(K.GreaterThan(x, const(0)), K.Log(x), nan())

        def neg(x):
            return K.Mul(const(-1), x)

        ng = p.n_groups

        class CsZScore(K.GenericCrossSectionalOp):
            """(x - mean) / std (ddof 1) over the stocks with a value; NaN elsewhere."""

            def __init__(self, v):
                super().__init__([v], None)

            def generate_head(self):
                return ""

            def generate_body(self):
                return """
        {
            T s = 0; size_t n = 0;
            for (size_t i = 0; i < num_stocks; i++) { T x = input_0[i]; if (!std::isnan(x)) { s += x; n++; } }
            T m = n ? s / n : T(NAN), ss = 0;
            for (size_t i = 0; i < num_stocks; i++) { T x = input_0[i]; if (!std::isnan(x)) ss += (x - m) * (x - m); }
            T sd = n > 1 ? std::sqrt(ss / (n - 1)) : T(0);
            for (size_t i = 0; i < num_stocks; i++) {
                T x = input_0[i];
                output_0[i] = (std::isnan(x) || !(sd > 0)) ? T(NAN) : (x - m) / sd;
            }
        }
"""

        class GroupNeutralize(K.GenericCrossSectionalOp):
            """x - mean of x within its group (input_1 = group code) over stocks with a value."""

            def __init__(self, v, g):
                super().__init__([v, g], None)

            def generate_head(self):
                return f"    std::vector<T> gsum({ng}); std::vector<size_t> gcnt({ng});"

            def generate_body(self):
                return """
        {
            std::fill(gsum.begin(), gsum.end(), T(0)); std::fill(gcnt.begin(), gcnt.end(), 0);
            for (size_t i = 0; i < num_stocks; i++) {
                T x = input_0[i];
                if (!std::isnan(x)) { size_t g = (size_t)input_1[i]; gsum[g] += x; gcnt[g]++; }
            }
            for (size_t i = 0; i < num_stocks; i++) {
                T x = input_0[i];
                output_0[i] = std::isnan(x) ? T(NAN) : x - gsum[(size_t)input_1[i]] / gcnt[(size_t)input_1[i]];
            }
        }
"""

        def cs_zscore(x):
            return CsZScore(U(x))

        def gneut(x):
            return GroupNeutralize(U(x), I("industry"))

        def both(a, b, e):  # our element-wise rule: NaN if either input is
            return K.Select(K.Or(K.Not(K.Equals(a, a)), K.Not(K.Equals(b, b))), nan(), e)

        prims = {
            "add": K.Add, "sub": K.Sub, "mul": K.Mul, "div": div,
            "max": lambda a, b: both(a, b, K.Max(a, b)), "min": lambda a, b: both(a, b, K.Min(a, b)),
            "neg": neg, "abs": K.Abs, "log": log,
            "sqrt": lambda x: K.Select(K.GreaterEqual(x, const(0)), K.Sqrt(x), nan()),
            "exp": K.Exp, "sign": K.Sign,
            "delay": delay, "delta": delta, "tsum": tsum, "mean": mean, "std": std,
            "var": lambda x, d: K.WindowedVar(x, d), "tmin": tmin, "tmax": tmax,
            "argmin": argmin, "argmax": argmax, "ts_rank": ts_rank, "zscore": zscore,
            "decay": decay, "corr": corr, "cov": cov, "rank": rank, "cs_zscore": cs_zscore,
            "gneut": lambda x: gneut(x),
        }
        o, h, lo, c, vw, v, amt, ret, tov, cap = (lambda k=k: I(k) for k in Panel.FIELDS)
        return op_funcs(prims, I) | {
            "alpha003": lambda: neg(corr(rank(o()), rank(v()), 10)),
            "alpha006": lambda: neg(corr(o(), v(), 10)),
            "alpha004": lambda: neg(ts_rank(rank(lo()), 9)),
            "alpha013": lambda: neg(rank(cov(rank(c()), rank(v()), 5))),
            "alpha101": lambda: div(K.Sub(c(), o()), K.Add(K.Sub(h(), lo()), const(0.001))),
            "delta_x_tsrank": lambda: K.Mul(rank(delta(c(), 5)), ts_rank(v(), 20)),
            "ind_mom20": lambda: gneut(tsum(ret(), 20)),
            "mean_rev20": lambda: neg(rank(div(mean(c(), 20), c()))),
            "vol20": lambda: std(ret(), 20),
            "zscore_close20": lambda: zscore(c(), 20),
            "decay_ret10": lambda: decay(ret(), 10),
            "argmax_rank30": lambda: rank(argmax(c(), 30)),
            "argmin_minus_argmax": lambda: K.Sub(argmin(lo(), 20), argmax(h(), 20)),
            "stoch20": lambda: div(K.Sub(c(), tmin(lo(), 20)), K.Sub(tmax(h(), 20), tmin(lo(), 20))),
            "cov_cv20": lambda: cov(c(), v(), 20),
            "tsrank_vwap10": lambda: ts_rank(vw(), 10),
            "decay_rank_dvwap": lambda: decay(rank(delta(vw(), 3)), 7),
            "rank_corr_hv5": lambda: rank(corr(h(), v(), 5)),
            "cs_tz_turn": lambda: cs_zscore(zscore(tov(), 20)),
            "ind_rank_mom20": lambda: gneut(rank(div(c(), delay(c(), 20)))),
            "amount_ratio": lambda: div(mean0(amt(), 5), mean0(amt(), 60)),
            "deep_corr": lambda: rank(decay(corr(rank(vw()), rank(mean(v(), 20)), 6), 4)),
            "ind_size": lambda: gneut(cs_zscore(log(cap()))),
            "vol_ratio_rank": lambda: rank(div(std(ret(), 10), K.Add(mean(K.Abs(ret()), 10), const(0.001)))),
            "tsmax_rank_vol": lambda: tmax(rank(v()), 5),
        }

    def run(self, name):
        ins = {k: self.data[k] for k in self.inputs_of[name]}
        return self.kr.runGraph(self.exe, self.mods[name], ins, 0, self.p.nd)[name]

    def tail(self, res, n):
        return np.asarray(res[-n:], dtype=np.float64)


# ---------------------------------------------------------------------------
# comparison and report


def compare(ours, peer):
    """Cells: both finite -> max abs/rel diff and count above REL_TOL; NaN pattern
    mismatches (a peer's +-inf counts as NaN, reported separately)."""
    inf = int(np.isinf(peer).sum())
    peer = np.where(np.isinf(peer), np.nan, peer)
    on, pn = ~np.isfinite(ours), np.isnan(peer)
    both = ~on & ~pn
    d = np.abs(ours[both] - peer[both])
    rel = d / np.maximum(1.0, np.abs(ours[both]))
    bad = rel > REL_TOL
    r = {
        "cells": int(ours.size),
        "both_finite": int(both.sum()),
        "max_abs_diff": float(d.max()) if d.size else 0.0,
        "max_rel_diff": float(rel.max()) if rel.size else 0.0,
        "cells_over_tol": int(bad.sum()),
        "cells_over_1e-3": int((rel > 1e-3).sum()),
        "nan_mismatch": int((on != pn).sum()),
        # a cross-sectional rank over a date with one NaN more or less moves every
        # other cell of that row by ~1/n: count the rows to read cells_over_tol against
        "rows_with_nan_mismatch": int((on != pn).any(axis=1).sum()),
        "nan_only_ours": int((on & ~pn).sum()),
        "nan_only_peer": int((~on & pn).sum()),
        "peer_inf": inf,
    }
    if r["cells_over_tol"]:
        # how many of the differing cells hold a value that is tied in our row: a rank
        # of exactly tied inputs, where a 1-ulp difference in a peer moves the rank
        over = np.zeros(ours.shape, dtype=bool)
        over[both] = bad
        tied = np.zeros(ours.shape, dtype=bool)
        for i in np.flatnonzero(over.any(axis=1)):
            row = ours[i]
            fin = np.isfinite(row)
            _, inv, cnt = np.unique(row[fin], return_inverse=True, return_counts=True)
            tied[i, fin] = cnt[inv] > 1
        r["over_tol_in_tied_cells"] = int((over & tied).sum())
        idx = np.flatnonzero(both)[np.argmax(rel)]
        r["worst_cell"] = {"row_from_end": int(TAIL - idx // ours.shape[1]), "asset": int(idx % ours.shape[1]),
                           "ours": float(ours.flat[idx]), "peer": float(peer.flat[idx])}
    if r["cells_over_tol"] == 0 and r["nan_mismatch"] == 0:
        r["status"] = "ok"
    elif r["cells_over_tol"] == 0:
        r["status"] = "nan-pattern"
    else:
        frac = r["cells_over_tol"] / max(1, r["both_finite"])
        r["status"] = "DIFF" if frac > 1e-4 or r["max_rel_diff"] > 1e-3 else "diff-minor"
    return r


def geomean(xs):
    xs = [x for x in xs if x and x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def fmt_ms(x):
    return "n/a" if x is None else (f"{x:.0f}" if x >= 100 else f"{x:.1f}")


def fmt_ratio(x):
    return "-" if x is None else f"{x:.2f}x"


def versions():
    import importlib.metadata as md

    v = {"python": platform.python_version()}
    for k in ("numpy", "pyarrow", "polars", "polars_ta", "bottleneck", "kunquant", "numba"):
        try:
            v[k] = md.version(k)
        except md.PackageNotFoundError:
            v[k] = None
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--panel", required=True)
    ap.add_argument("--exprs", required=True)
    ap.add_argument("--ours", help="alpha-factory timings (OURS.json); omit to time the peers alone")
    ap.add_argument("--values-dir", help="our values, <name>.f64 (last 250 rows x assets)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--only", help="comma-separated expression names (default: all)")
    ap.add_argument("--ops-only", action="store_true",
                    help="keep the `op_*` lines of OPS only (make bench-ops on `expr ops --bench` output)")
    ap.add_argument("--kun-cache", default="out/bench/kunquant-cache", help="where compiled KunQuant libraries are kept")
    a = ap.parse_args()

    exprs = read_exprs(a.exprs)
    if a.only:
        keep = set(a.only.split(","))
        exprs = [e for e in exprs if e[0] in keep]
    if a.ops_only:
        exprs = [e for e in exprs if e[0] in OPS]
        for n, e in exprs:  # the peers run OPS' arguments: they must be the line's
            args = [x.strip() for x in e[e.index("(") + 1:e.rindex(")")].split(",")]
            want = [str(x) for x in OPS[n][1]]
            if [x for x in args if x != "industry"] != want:
                sys.exit(f"{n}: the line is {e!r} but OPS runs {OPS[n][0]}{tuple(OPS[n][1])}; update OPS")
    names = [n for n, _ in exprs]
    ours = {}
    if a.ours:
        doc = json.load(open(a.ours))
        ours = {e["name"]: e for e in doc["exprs"]}
        for n, e in exprs:
            if n in ours and ours[n].get("expr") not in (None, e):
                print(f"warning: {n}: OURS.json has {ours[n]['expr']!r}, exprs file has {e!r}", file=sys.stderr)

    t0 = time.perf_counter()
    p = Panel(a.panel)
    load_s = time.perf_counter() - t0
    print(f"panel {a.panel}: {p.nd} dates x {p.na} assets, {p.n_groups} industries, loaded in {load_s:.1f} s", file=sys.stderr)

    peers, setup_s, notes = [], {}, {}
    for pn in a.peers.split(","):
        t0 = time.perf_counter()
        if pn == "polars_ta":
            peer = PolarsTA()
            peer.setup(p)
        elif pn == "bottleneck":
            peer = Bottleneck()
            peer.setup(p)
        elif pn == "kunquant":
            peer = KunQuant()
            peer.setup(p, names, a.kun_cache)
        else:
            sys.exit(f"unknown peer {pn!r} (choose from {', '.join(PEERS)})")
        setup_s[pn] = time.perf_counter() - t0
        extra = " (compiled)" if getattr(peer, "compiled", False) else ""
        print(f"{pn}: set up in {setup_s[pn]:.1f} s{extra}", file=sys.stderr)
        peers.append(peer)
        notes[pn] = peer.notes

    rows = []
    for n, e in exprs:
        row = {"name": n, "expr": e, "ours_ms": None, "peers": {}}
        ov = None
        if n in ours:
            row["ours_ms"] = ours[n].get("ms_median")
            row["ours_ms_all"] = ours[n].get("ms_all")
        if a.values_dir:
            f = os.path.join(a.values_dir, f"{n}.f64")
            if os.path.exists(f):
                ov = np.fromfile(f, dtype="<f8")
                if ov.size != TAIL * p.na:
                    print(f"warning: {f}: {ov.size} values, expected {TAIL}x{p.na}", file=sys.stderr)
                    ov = None
                else:
                    ov = ov.reshape(TAIL, p.na)
        for peer in peers:
            if n not in peer.funcs:
                row["peers"][peer.name] = {"ms_median": None, "na": "no equivalent written for this peer"}
                continue
            times, res = [], None
            try:
                for _ in range(max(1, a.repeat)):
                    res = None
                    gc.collect()
                    t0 = time.perf_counter()
                    res = peer.run(n)
                    times.append((time.perf_counter() - t0) * 1000.0)
            except Exception as ex:  # report, never fake
                row["peers"][peer.name] = {"ms_median": None, "na": f"error: {type(ex).__name__}: {ex}"}
                print(f"{n} / {peer.name}: {type(ex).__name__}: {ex}", file=sys.stderr)
                continue
            r = {"ms_median": statistics.median(times), "ms_all": times}
            if ov is not None:
                r["compare"] = compare(ov, peer.tail(res, TAIL))
            row["peers"][peer.name] = r
            del res
            st = r.get("compare", {}).get("status", "")
            print(f"{n:22s} {peer.name:10s} {r['ms_median']:9.1f} ms  {st}", file=sys.stderr)
        pm = {k: v["ms_median"] for k, v in row["peers"].items() if v.get("ms_median")}
        if pm:
            best = min(pm, key=pm.get)
            row["best_peer"] = best
            if row["ours_ms"]:
                row["ratio_best_peer_over_ours"] = pm[best] / row["ours_ms"]
        if row["ours_ms"]:
            row["ratio_over_ours"] = {k: v / row["ours_ms"] for k, v in pm.items()}
        rows.append(row)

    # summary over the set
    engines = (["alpha-factory"] if ours else []) + [pp.name for pp in peers]

    def col(eng):
        if eng == "alpha-factory":
            return [r["ours_ms"] for r in rows]
        return [r["peers"][eng].get("ms_median") for r in rows]

    summary = {"median_ms": {}, "total_ms": {}, "ratio_over_ours": {}}
    for eng in engines:
        xs = [x for x in col(eng) if x]
        summary["median_ms"][eng] = statistics.median(xs) if xs else None
        summary["total_ms"][eng] = sum(xs) if xs else None
    if ours:
        for eng in [pp.name for pp in peers] + ["best_peer"]:
            if eng == "best_peer":
                pairs = [(r["ours_ms"], r["peers"][r["best_peer"]]["ms_median"]) for r in rows if r.get("best_peer") and r["ours_ms"]]
            else:
                pairs = [(r["ours_ms"], r["peers"][eng]["ms_median"]) for r in rows if r["ours_ms"] and r["peers"][eng].get("ms_median")]
            if pairs:
                summary["ratio_over_ours"][eng] = {
                    "n": len(pairs),
                    "geomean": geomean([pm / om for om, pm in pairs]),
                    "median": statistics.median([pm / om for om, pm in pairs]),
                    "sum_ratio": sum(pm for _, pm in pairs) / sum(om for om, _ in pairs),
                }
    flagged = [(r["name"], k, v["compare"]) for r in rows for k, v in r["peers"].items()
               if v.get("compare", {}).get("status") not in (None, "ok")]

    doc = {
        "bench": "expr-eval",
        "panel": a.panel,
        "n_dates": p.nd,
        "n_assets": p.na,
        "compare_rows": TAIL,
        "rel_tol": REL_TOL,
        "repeat": a.repeat,
        "cpus": os.cpu_count(),
        "versions": versions(),
        "load_s": load_s,
        "setup_s": setup_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "peer_notes": notes,
        "exprs": rows,
        "summary": summary,
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out + ".tmp", "w") as fh:
        json.dump(doc, fh, indent=1)
    os.replace(a.out + ".tmp", a.out)

    # table
    pnames = [pp.name for pp in peers]
    hdr = ["expression", "ours ms"] + [f"{k} ms" for k in pnames] + ["best-peer/ours"]
    w0 = max(len("expression"), *(len(n) for n in names)) if names else 10
    line = f"{hdr[0]:<{w0}} " + " ".join(f"{h:>14}" for h in hdr[1:])
    print(line)
    print("-" * len(line))

    def cell(r, k):
        v = r["peers"][k]
        s = fmt_ms(v.get("ms_median"))
        st = v.get("compare", {}).get("status")
        if st and st != "ok":
            s += {"nan-pattern": "~", "diff-minor": "*", "DIFF": "!"}[st]
        return s

    for r in rows:
        print(f"{r['name']:<{w0}} {fmt_ms(r['ours_ms']):>14} " + " ".join(f"{cell(r, k):>14}" for k in pnames)
              + f" {fmt_ratio(r.get('ratio_best_peer_over_ours')):>14}")
    print("-" * len(line))
    med = summary["median_ms"]
    bp = summary["ratio_over_ours"].get("best_peer", {})
    print(f"{'median':<{w0}} {fmt_ms(med.get('alpha-factory')):>14} " + " ".join(f"{fmt_ms(med.get(k)):>14}" for k in pnames)
          + f" {fmt_ratio(bp.get('median')):>14}")
    if summary["ratio_over_ours"]:
        print("peer time / our time over the set (geometric mean; total peer ms / total our ms):")
        for k, v in summary["ratio_over_ours"].items():
            print(f"  {k:<12} {fmt_ratio(v['geomean'])} (total {fmt_ratio(v['sum_ratio'])}, {v['n']} expressions)")
    if flagged:
        print("value comparison on the last 250 dates (~ NaN pattern only, * minor, ! DIFF):")
        for n, k, c in flagged:
            print(f"  {n} / {k}: {c['status']}: max rel {c['max_rel_diff']:.1e}, {c['cells_over_tol']} cells over {REL_TOL:g} "
                  f"({c['cells_over_1e-3']} over 1e-3), "
                  f"{c['nan_mismatch']} NaN mismatches in {c['rows_with_nan_mismatch']} rows (ours-only {c['nan_only_ours']}, peer-only {c['nan_only_peer']}), peer inf {c['peer_inf']}"
                  + (f"; {c['over_tol_in_tied_cells']} of the differing cells are tied values in our row" if c.get("over_tol_in_tied_cells") else ""))
    elif a.values_dir:
        print("values: every peer agrees with ours on the last 250 dates")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
