"""A local stand-in for the Tushare Pro HTTP API, serving a synthetic raw folder
(`ts-fetch --source synthetic`) re-expressed in Tushare's exact shapes and units, so the
tests need no token and no network.

Protocol (as the official client `tushare/pro/client.py` speaks it): POST
`/dataapi/<api_name>` (or `/dataapi`) with a JSON body {"api_name", "token", "params",
"fields"}; the answer is {"request_id", "code", "msg", "data": {"fields", "items",
"has_more"}}; paging with params.limit / params.offset. Errors: code 40101 (bad token),
40203 (rate limit: "抱歉，您每分钟最多访问该接口N次…"; missing permission: "抱歉，您没有访问该接口的权限").

Units: `vol` in lots of 100 shares, `amount` in thousands of yuan, `total_mv`/`circ_mv`
in 10k yuan, dates `YYYYMMDD`, codes `600000.SH`; no `daily`/`daily_basic` row on a
suspended day (those are in `suspend_d`); delisted names only under list_status=D; ST
spells as `namechange` records; `index_weight` monthly (the 30 largest by total_mv on
the month's first trading day, weights ∝ cap) for index `000300.SH`.

usage: fake_tushare.py --raw DIR [--port 0] [--token T] [--rate N] [--window S]
       [--as-of YYYY-MM-DD] [--deny api,api] [--fault-5xx P] [--fault-drop P]
       [--fault-slow P] [--malformed api] [--missing-field api] [--seed S]
Prints `port N` on stdout when listening; GET /stats gives the calls per api (and the
largest number of calls of one api inside any rate window).
"""
import argparse
import glob
import json
import random
import sys
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd

PAGE = 6000  # daily's row limit per call


def ymd(d):
    return pd.Timestamp(d).strftime("%Y%m%d")


def load(raw, as_of):
    df = pd.concat([pd.read_parquet(f) for f in sorted(glob.glob(f"{raw}/year=*/*.parquet"))])
    df["trade_date"] = pd.to_datetime(df["trade_date"])
    if as_of:
        df = df[df.trade_date <= pd.Timestamp(as_of)]
    df = df.sort_values(["trade_date", "code"]).reset_index(drop=True)
    return df


class Market:
    def __init__(self, df):
        self.df = df
        self.dates = sorted(df.trade_date.unique())
        last = df.trade_date.max()
        g = df.groupby("code")
        first_bar, last_bar = g.trade_date.min(), g.trade_date.max()
        basic = g.agg(industry=("industry", "first"), list_date=("list_date", "first"))
        rows = []
        for code, r in basic.iterrows():
            ex = {"SH": "SSE", "SZ": "SZSE", "BJ": "BSE"}[code[-2:]]
            delisted = last_bar[code] < last
            nxt = [d for d in self.dates if d > last_bar[code]]
            rows.append({
                "ts_code": code, "symbol": code[:6], "name": f"股票{code[:6]}",
                "area": "", "industry": r.industry, "market": "主板", "exchange": ex,
                "list_status": "D" if delisted else "L",
                "list_date": ymd(r.list_date) if pd.notna(r.list_date) else ymd(first_bar[code]),
                "delist_date": ymd(nxt[0]) if delisted and nxt else None,
            })
        self.basic = rows
        # namechange: spells of the name, ST when is_st.
        names = []
        for code, d in df.groupby("code"):
            st = d.is_st.to_numpy()
            dates = d.trade_date.to_numpy()
            start = 0
            for i in range(1, len(st) + 1):
                if i == len(st) or st[i] != st[start]:
                    nm = ("ST股票" if st[start] else "股票") + code[:6]
                    names.append({
                        "ts_code": code, "name": nm, "start_date": ymd(dates[start]),
                        "end_date": ymd(dates[i - 1]) if i < len(st) else None,
                        "ann_date": ymd(dates[start]),
                        "change_reason": "ST" if st[start] else ("撤销ST" if start > 0 else "新股上市"),
                    })
                    start = i
        self.names = names
        self.by_date = {d: x for d, x in df.groupby("trade_date")}

    def cal(self, p):
        lo = pd.Timestamp(p.get("start_date") or self.dates[0])
        hi = pd.Timestamp(p.get("end_date") or self.dates[-1])
        open_ = set(self.dates)
        out, prev = [], None
        for d in pd.date_range(lo, hi):
            if d.weekday() >= 5:
                continue
            is_open = d in open_
            out.append({"exchange": p.get("exchange") or "SSE", "cal_date": ymd(d),
                        "is_open": int(is_open), "pretrade_date": ymd(prev) if prev is not None else None})
            if is_open:
                prev = d
        return out

    def day(self, p):
        td = p.get("trade_date")
        if not td:
            raise KeyError("this stand-in serves daily data by trade_date")
        return self.by_date.get(pd.Timestamp(td))

    def daily(self, p):
        x = self.day(p)
        if x is None:
            return []
        x = x[~x.is_suspended]
        return [{
            "ts_code": r.code, "trade_date": ymd(r.trade_date), "open": r.open, "high": r.high,
            "low": r.low, "close": r.close, "pre_close": r.pre_close,
            "change": r.close - r.pre_close, "pct_chg": (r.close / r.pre_close - 1) * 100,
            "vol": r.volume / 100, "amount": r.amount / 1000,
        } for r in x.itertuples()]

    def adj_factor(self, p):
        x = self.day(p)
        return [] if x is None else [
            {"ts_code": r.code, "trade_date": ymd(r.trade_date), "adj_factor": r.adj_factor}
            for r in x.itertuples()]

    def daily_basic(self, p):
        x = self.day(p)
        if x is None:
            return []
        x = x[~x.is_suspended]
        return [{
            "ts_code": r.code, "trade_date": ymd(r.trade_date), "close": r.close,
            "turnover_rate": 100 * r.volume * r.close / r.circ_mv if r.circ_mv > 0 else None,
            "total_share": r.total_mv / r.close / 10000, "float_share": r.circ_mv / r.close / 10000,
            "total_mv": r.total_mv / 10000, "circ_mv": r.circ_mv / 10000,
        } for r in x.itertuples()]

    def suspend_d(self, p):
        x = self.day(p)
        if x is None:
            return []
        x = x[x.is_suspended]
        return [{"ts_code": r.code, "trade_date": ymd(r.trade_date), "suspend_timing": None,
                 "suspend_type": "S"} for r in x.itertuples()]

    def stk_limit(self, p):
        # every listed name with a limit that day, suspended ones included (as the
        # service lists them); none on a ChiNext/STAR listing day
        x = self.day(p)
        if x is None:
            return []
        x = x[x.up_limit.notna()]
        return [{"trade_date": ymd(r.trade_date), "ts_code": r.code, "pre_close": r.pre_close,
                 "up_limit": r.up_limit, "down_limit": r.down_limit} for r in x.itertuples()]

    def stock_basic(self, p):
        st = p.get("list_status") or "L"
        return [r for r in self.basic if r["list_status"] == st]

    def namechange(self, p):
        code = p.get("ts_code")
        return [r for r in self.names if not code or r["ts_code"] == code]

    def index_weight(self, p):
        lo = pd.Timestamp(p.get("start_date") or self.dates[0])
        hi = pd.Timestamp(p.get("end_date") or self.dates[-1])
        out, month = [], None
        for d in self.dates:
            if (d.year, d.month) == month:
                continue
            month = (d.year, d.month)
            if not (lo <= d <= hi):
                continue
            x = self.by_date[d].nlargest(30, "total_mv")
            w = 100 * x.total_mv / x.total_mv.sum()
            out += [{"index_code": p.get("index_code") or "000300.SH", "con_code": c,
                     "trade_date": ymd(d), "weight": round(v, 4)} for c, v in zip(x.code, w)]
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default="test-token-0123456789")
    ap.add_argument("--rate", type=int, default=0, help="calls per api per window (0: unlimited)")
    ap.add_argument("--window", type=float, default=60.0, help="rate window in seconds")
    ap.add_argument("--as-of", default=None)
    ap.add_argument("--deny", default="")
    ap.add_argument("--fault-5xx", type=float, default=0.0)
    ap.add_argument("--fault-drop", type=float, default=0.0)
    ap.add_argument("--fault-slow", type=float, default=0.0)
    ap.add_argument("--slow-secs", type=float, default=3.0)
    ap.add_argument("--malformed", default="")
    ap.add_argument("--missing-field", default="")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    m = Market(load(a.raw, a.as_of))
    deny = set(filter(None, a.deny.split(",")))
    rng = random.Random(a.seed)
    lock = threading.Lock()
    calls = defaultdict(int)       # served answers per api (data, not errors)
    attempts = defaultdict(int)    # every request per api
    recent = defaultdict(deque)    # per api: times of accepted calls in the window
    peak = defaultdict(int)
    apis = {k: getattr(m, k) for k in ["daily", "adj_factor", "daily_basic", "suspend_d", "stk_limit",
                                       "stock_basic", "namechange", "index_weight"]}
    apis["trade_cal"] = m.cal

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def setup(self):
            super().setup()
            # Headers and body go out as two writes: without this, Nagle + delayed ACK
            # add 40 ms to every call.
            import socket
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def send(self, code, body, ctype="application/json"):
            b = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def answer(self, code, msg, data=None):
            self.send(200, json.dumps({"request_id": f"r{rng.random():.12f}", "code": code,
                                       "msg": msg, "data": data}, ensure_ascii=False))

        def do_GET(self):
            if self.path.startswith("/stats"):
                with lock:
                    self.send(200, json.dumps({"calls": calls, "attempts": attempts, "peak": peak,
                                               "window": a.window, "rate": a.rate}))
            else:
                self.send(404, "not found", "text/plain")

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            try:
                req = json.loads(self.rfile.read(n) or b"{}")
            except ValueError:
                return self.answer(-2001, "参数错误: body is not JSON")
            api = req.get("api_name") or self.path.rstrip("/").rsplit("/", 1)[-1]
            with lock:
                attempts[api] += 1
                roll = rng.random()
            if roll < a.fault_drop:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            roll -= a.fault_drop
            if roll < a.fault_5xx:
                return self.send(502, "<html>502 Bad Gateway</html>", "text/html")
            roll -= a.fault_5xx
            if roll < a.fault_slow:
                time.sleep(a.slow_secs)
            if req.get("token") != a.token:
                return self.answer(40101, "抱歉，您的token不对，请确认。")
            if api not in apis:
                return self.answer(40101, f"接口名称错误: {api}")
            if api in deny:
                return self.answer(40203, "抱歉，您没有访问该接口的权限，权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。")
            now = time.monotonic()
            with lock:
                q = recent[api]
                while q and q[0] <= now - a.window:
                    q.popleft()
                if a.rate and len(q) >= a.rate:
                    return self.answer(40203, f"抱歉，您每分钟最多访问该接口{a.rate}次，权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。")
                q.append(now)
                peak[api] = max(peak[api], len(q))
            if api in a.malformed.split(","):
                return self.send(200, '{"request_id": "x", "code": 0, "data": {"fields": [')
            p = req.get("params") or {}
            try:
                rows = apis[api](p)
            except KeyError as e:
                return self.answer(-2001, f"参数错误: {e}")
            fields_req = [f for f in (req.get("fields") or "").split(",") if f]
            cols = fields_req or (list(rows[0].keys()) if rows else [])
            if api in a.missing_field.split(",") and cols:
                cols = cols[:-1]
            off, lim = int(p.get("offset") or 0), int(p.get("limit") or PAGE)
            page = rows[off:off + min(lim, PAGE)]
            items = [[r.get(c) for c in cols] for r in page]
            with lock:
                calls[api] += 1
            self.answer(0, "", {"fields": cols, "items": items,
                                "has_more": off + len(page) < len(rows)})

    class Quiet(ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # a dropped connection (injected, or a killed client) is no news

    srv = Quiet(("127.0.0.1", a.port), H)
    print(f"port {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
