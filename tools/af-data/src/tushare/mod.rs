//! `ts-fetch --source tushare`: the A-share market from Tushare Pro into the raw
//! contract, by trade date (one call per endpoint per date for the whole market).
//!
//! Calls: `trade_cal` once, `stock_basic` for list_status L, D and P (delisted and
//! paused names too, or survivorship bias creeps in), `namechange` once (ST spells),
//! then per open date `daily`, `adj_factor`, `daily_basic`, `suspend_d` and
//! `stk_limit` (the day's limit prices, which the raw contract keeps as `up_limit` /
//! `down_limit` so panel-build uses the exchange's own — special cases such as a
//! STAR name's first five days included — instead of the board rule).
//!
//! Units become the contract's: `vol` lots × 100 → shares, `amount` thousands × 1000
//! → yuan, `total_mv`/`circ_mv` 10k yuan × 10000 → yuan. `daily` has no row on a
//! suspended day; `suspend_d` names those, and each becomes a suspended row at the last
//! close with volume and amount 0 and the caps carried (the raw contract's form).
//! `is_st` is read off the name in force that day (`ST…`, `*ST…`).
//!
//! Resume: every finished call is kept in a journal (`<out>.journal/<api>/<key>.json`,
//! written atomically). A fetch killed at any point and run again re-asks only the
//! calls not in the journal and writes the same bytes; the journal is removed once the
//! raw folder is committed. Update: `--update` starts after the raw folder's last date
//! and carries each code's last close and caps from it.

pub mod client;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use af_panel::dates::{date_from_yyyymmdd, format_date};
use af_store::write_atomic_bytes;
use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

pub use client::{Client, ClientConfig, Frame, Stats};

use crate::raw::{Interner, NO_DATE, NO_INDUSTRY, RawBars};

/// Endpoints queried per open date.
pub const PER_DATE: [&str; 5] = [
    "daily",
    "adj_factor",
    "daily_basic",
    "suspend_d",
    "stk_limit",
];

/// Index universes `--universe` knows: (name, Tushare index code).
pub const INDEXES: [(&str, &str); 3] = [
    ("csi300", "000300.SH"),
    ("csi500", "000905.SH"),
    ("csi1000", "000852.SH"),
];

pub struct TushareParams {
    pub client: ClientConfig,
    /// Index universes to record point in time (names from [`INDEXES`]).
    pub universes: Vec<String>,
    pub start: i32,
    pub end: i32,
    /// Journal folder of finished calls.
    pub journal: PathBuf,
    /// `--update`: the raw folder's bars; only dates after its last one are fetched.
    pub base: Option<RawBars>,
}

pub struct Fetched {
    pub bars: RawBars,
    /// Per index universe: membership spells as CSV (`code,in_date,out_date`).
    pub universes: Vec<(String, String)>,
    pub stats: Stats,
    /// Calls answered from the journal (a resumed fetch).
    pub from_journal: u64,
    /// Open dates fetched.
    pub dates: usize,
}

fn ymd(d: i32) -> String {
    format_date(d).replace('-', "")
}

fn date_of(api: &str, v: &Value) -> Result<Option<i32>> {
    let s = match v {
        Value::Null => return Ok(None),
        Value::String(s) if s.is_empty() => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => bail!("tushare {api}: {v} is not a date"),
    };
    let n: i64 = s
        .parse()
        .map_err(|_| anyhow!("tushare {api}: {s:?} is not a YYYYMMDD date"))?;
    Ok(Some(
        date_from_yyyymmdd(n).map_err(|e| anyhow!("tushare {api}: {e}"))?,
    ))
}

fn num(api: &str, v: &Value) -> Result<f64> {
    Ok(match v {
        Value::Null => f64::NAN,
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => s
            .parse()
            .map_err(|_| anyhow!("tushare {api}: {s:?} is not a number"))?,
        _ => bail!("tushare {api}: {v} is not a number"),
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The client plus the journal: a call whose answer is in the journal is not asked.
struct Journaled<'a> {
    client: Client,
    dir: &'a Path,
    hits: u64,
}

impl Journaled<'_> {
    fn get(
        &mut self,
        api: &str,
        key: &str,
        params: &[(&str, &str)],
        fields: &[&str],
    ) -> Result<Frame> {
        let path = self.dir.join(api).join(format!("{key}.json"));
        if let Ok(s) = std::fs::read_to_string(&path) {
            if let Ok(f) = serde_json::from_str::<Frame>(&s) {
                if fields.iter().all(|x| f.fields.iter().any(|y| y == x)) {
                    self.hits += 1;
                    return Ok(f);
                }
            }
        }
        let f = self.client.query(api, params, fields)?;
        std::fs::create_dir_all(path.parent().unwrap_or(self.dir))
            .with_context(|| format!("cannot create the journal {}", self.dir.display()))?;
        write_atomic_bytes(&path, serde_json::to_string(&f)?.as_bytes())?;
        Ok(f)
    }
}

/// A code's name spells: (from, to inclusive or None = still, is ST).
type Spells = Vec<(i32, Option<i32>, bool)>;

fn is_st_name(name: &str) -> bool {
    let n = name.trim_start_matches('S'); // "SST", "S*ST": share-reform prefixes
    name.starts_with("ST") || name.starts_with("*ST") || n.starts_with("ST") || n.starts_with("*ST")
}

/// Fetch `[start, end]` (after the base's last date with `--update`) and return the
/// bars (the base's plus the new ones). `progress(done, total)` after each date.
pub fn fetch(p: &TushareParams, mut progress: impl FnMut(usize, usize)) -> Result<Fetched> {
    let mut j = Journaled {
        client: Client::new(p.client.clone()),
        dir: &p.journal,
        hits: 0,
    };
    let from = match &p.base {
        Some(b) => b
            .trade_date
            .iter()
            .copied()
            .max()
            .map_or(p.start, |d| d + 1),
        None => p.start,
    };
    if from > p.end {
        bail!(
            "nothing to fetch: the period starts {} and ends {}",
            format_date(from),
            format_date(p.end)
        );
    }
    let (s, e) = (ymd(from), ymd(p.end));
    let cal = j.get(
        "trade_cal",
        &format!("{s}-{e}"),
        &[("exchange", "SSE"), ("start_date", &s), ("end_date", &e)],
        &["cal_date", "is_open"],
    )?;
    let (ci, oi) = (
        cal.col("trade_cal", "cal_date")?,
        cal.col("trade_cal", "is_open")?,
    );
    let mut dates = Vec::new();
    for r in &cal.items {
        if num("trade_cal", &r[oi])? == 1.0 {
            if let Some(d) = date_of("trade_cal", &r[ci])? {
                if d >= from && d <= p.end {
                    dates.push(d);
                }
            }
        }
    }
    dates.sort_unstable();
    dates.dedup();

    // Static data: industry and list date per code, over every listing status. The
    // key carries the end date: a later update sees names listed since.
    let mut basic: HashMap<String, (String, i32)> = HashMap::new();
    for status in ["L", "D", "P"] {
        let f = j.get(
            "stock_basic",
            &format!("{status}-{e}"),
            &[("list_status", status)],
            &["ts_code", "industry", "list_date"],
        )?;
        let (c, i, l) = (
            f.col("stock_basic", "ts_code")?,
            f.col("stock_basic", "industry")?,
            f.col("stock_basic", "list_date")?,
        );
        for r in &f.items {
            let ld = date_of("stock_basic", &r[l])?.unwrap_or(NO_DATE);
            basic.insert(text(&r[c]), (text(&r[i]), ld));
        }
    }
    let names = j.get(
        "namechange",
        &format!("all-{e}"),
        &[],
        &["ts_code", "name", "start_date", "end_date"],
    )?;
    let mut spells: HashMap<String, Spells> = HashMap::new();
    {
        let api = "namechange";
        let (c, n, a, b) = (
            names.col(api, "ts_code")?,
            names.col(api, "name")?,
            names.col(api, "start_date")?,
            names.col(api, "end_date")?,
        );
        for r in &names.items {
            let Some(from) = date_of(api, &r[a])? else {
                continue;
            };
            spells.entry(text(&r[c])).or_default().push((
                from,
                date_of(api, &r[b])?,
                is_st_name(&text(&r[n])),
            ));
        }
        for v in spells.values_mut() {
            v.sort_by_key(|x| x.0);
        }
    }
    let st_on = |code: &str, d: i32| -> bool {
        spells.get(code).is_some_and(|v| {
            v.iter()
                .rev()
                .find(|(a, b, _)| *a <= d && b.is_none_or(|b| d <= b))
                .is_some_and(|x| x.2)
        })
    };

    let mut bars = p.base.clone().unwrap_or_default();
    let mut codes = Interner::from_names(std::mem::take(&mut bars.code_names));
    let mut inds = Interner::from_names(std::mem::take(&mut bars.industry_names));
    // Per code: last close, total_mv, circ_mv, adj_factor (for suspended rows).
    let mut last: HashMap<u32, (f64, f64, f64, f64)> = HashMap::new();
    for i in 0..bars.len() {
        last.insert(
            bars.code[i],
            (
                bars.close[i],
                bars.total_mv[i],
                bars.circ_mv[i],
                bars.adj_factor[i],
            ),
        );
    }
    let base_rows = bars.len();
    for (k, &d) in dates.iter().enumerate() {
        let key = ymd(d);
        let td = [("trade_date", key.as_str())];
        let daily = j.get(
            "daily",
            &key,
            &td,
            &[
                "ts_code",
                "open",
                "high",
                "low",
                "close",
                "pre_close",
                "vol",
                "amount",
            ],
        )?;
        let adj = j.get("adj_factor", &key, &td, &["ts_code", "adj_factor"])?;
        let basic_d = j.get(
            "daily_basic",
            &key,
            &td,
            &["ts_code", "total_mv", "circ_mv"],
        )?;
        let susp = j.get("suspend_d", &key, &td, &["ts_code", "suspend_type"])?;
        let lim = j.get(
            "stk_limit",
            &key,
            &td,
            &["ts_code", "up_limit", "down_limit"],
        )?;
        let by_code = |f: &Frame, api: &str, col: &str| -> Result<HashMap<String, f64>> {
            let (c, v) = (f.col(api, "ts_code")?, f.col(api, col)?);
            f.items
                .iter()
                .map(|r| Ok((text(&r[c]), num(api, &r[v])?)))
                .collect()
        };
        let adj_of = by_code(&adj, "adj_factor", "adj_factor")?;
        let tmv = by_code(&basic_d, "daily_basic", "total_mv")?;
        let cmv = by_code(&basic_d, "daily_basic", "circ_mv")?;
        let up = by_code(&lim, "stk_limit", "up_limit")?;
        let down = by_code(&lim, "stk_limit", "down_limit")?;
        let api = "daily";
        let col = |n: &str| daily.col(api, n);
        let (c, o, h, l, cl, pc, v, a) = (
            col("ts_code")?,
            col("open")?,
            col("high")?,
            col("low")?,
            col("close")?,
            col("pre_close")?,
            col("vol")?,
            col("amount")?,
        );
        // Suspended names: a row at the last close, volume 0, caps carried. A name never
        // seen trading has no price to carry: no row (= suspended in the panel too).
        let (sc, st) = (
            susp.col("suspend_d", "ts_code")?,
            susp.col("suspend_d", "suspend_type")?,
        );
        let mut suspended = Vec::new();
        for r in &susp.items {
            if text(&r[st]) != "S" {
                continue;
            }
            let code = text(&r[sc]);
            if let Some(&(px, t, cm, a0)) = codes.lookup(&code).and_then(|id| last.get(&id)) {
                suspended.push((
                    code.clone(),
                    px,
                    t,
                    cm,
                    adj_of.get(&code).copied().unwrap_or(a0),
                ));
            }
        }
        let mut push = |bars: &mut RawBars,
                        code: &str,
                        px: [f64; 5],
                        vol_amt: (f64, f64),
                        caps: (f64, f64),
                        adj: f64,
                        suspended: bool| {
            let id = codes.get(code);
            let (ind, ld) = basic
                .get(code)
                .map(|(i, l)| (i.as_str(), *l))
                .unwrap_or(("", NO_DATE));
            bars.trade_date.push(d);
            bars.code.push(id);
            bars.open.push(px[0]);
            bars.high.push(px[1]);
            bars.low.push(px[2]);
            bars.close.push(px[3]);
            bars.pre_close.push(px[4]);
            bars.volume.push(vol_amt.0);
            bars.amount.push(vol_amt.1);
            bars.adj_factor.push(adj);
            bars.is_st.push(st_on(code, d));
            bars.is_suspended.push(suspended);
            bars.industry.push(if ind.is_empty() {
                NO_INDUSTRY
            } else {
                inds.get(ind)
            });
            bars.total_mv.push(caps.0);
            bars.circ_mv.push(caps.1);
            bars.list_date.push(ld);
            bars.up_limit
                .push(up.get(code).copied().unwrap_or(f64::NAN));
            bars.down_limit
                .push(down.get(code).copied().unwrap_or(f64::NAN));
            bars.origin.push((0, bars.trade_date.len() as u32));
            last.insert(id, (px[3], caps.0, caps.1, adj));
        };
        for r in &daily.items {
            let code = text(&r[c]);
            let f = |i: usize| num(api, &r[i]);
            let scale = |x: f64, k: f64| x * k;
            let adj = adj_of
                .get(&code)
                .copied()
                .ok_or_else(|| anyhow!("tushare adj_factor: no factor for {code} on {key}"))?;
            push(
                &mut bars,
                &code,
                [f(o)?, f(h)?, f(l)?, f(cl)?, f(pc)?],
                (scale(f(v)?, 100.0), scale(f(a)?, 1000.0)),
                (
                    tmv.get(&code).map_or(f64::NAN, |x| x * 10000.0),
                    cmv.get(&code).map_or(f64::NAN, |x| x * 10000.0),
                ),
                adj,
                false,
            );
        }
        for (code, px, t, cm, adj) in suspended {
            push(&mut bars, &code, [px; 5], (0.0, 0.0), (t, cm), adj, true);
        }
        progress(k + 1, dates.len());
    }
    bars.code_names = codes.names;
    bars.industry_names = inds.names;
    if bars.len() == base_rows && p.base.is_none() {
        bail!("tushare: no bars between {s} and {e}");
    }
    bars.origin_files = vec![PathBuf::from("tushare")];
    bars.sort();
    bars.validate()?;
    let mut universes = Vec::new();
    for name in &p.universes {
        let Some((_, index)) = INDEXES.iter().find(|(n, _)| n == name) else {
            bail!(
                "--universe {name}: known indexes are {}",
                INDEXES.map(|x| x.0).join(", ")
            );
        };
        universes.push((name.clone(), index_spells(&mut j, index, p.start, p.end)?));
    }
    Ok(Fetched {
        bars,
        universes,
        stats: j.client.stats.clone(),
        from_journal: j.hits,
        dates: dates.len(),
    })
}

/// An index's membership, point in time: the monthly `index_weight` lists, each in
/// force from its date until the next list (the list before `start` included, so the
/// first dates have members). Returns `code,in_date,out_date` CSV rows (an empty
/// out_date: still a member), sorted — the file `panel-build --universe` reads.
fn index_spells(j: &mut Journaled, index: &str, start: i32, end: i32) -> Result<String> {
    let (s, e) = (ymd(start - 45), ymd(end));
    let api = "index_weight";
    let f = j.get(
        api,
        &format!("{index}-{s}-{e}"),
        &[("index_code", index), ("start_date", &s), ("end_date", &e)],
        &["con_code", "trade_date"],
    )?;
    let (c, d) = (f.col(api, "con_code")?, f.col(api, "trade_date")?);
    let mut lists: std::collections::BTreeMap<i32, Vec<String>> = Default::default();
    for r in &f.items {
        if let Some(day) = date_of(api, &r[d])? {
            lists.entry(day).or_default().push(text(&r[c]));
        }
    }
    if lists.is_empty() {
        bail!("tushare {api}: no weights for {index} between {s} and {e}");
    }
    let days: Vec<i32> = lists.keys().copied().collect();
    // Per code: spells over consecutive lists.
    let mut spells: std::collections::BTreeMap<String, Vec<(i32, Option<i32>)>> =
        Default::default();
    for (k, day) in days.iter().enumerate() {
        let next = days.get(k + 1).map(|n| n - 1);
        for code in &lists[day] {
            let v = spells.entry(code.clone()).or_default();
            match v.last_mut() {
                Some(last) if last.1 == Some(day - 1) => last.1 = next,
                _ => v.push((*day, next)),
            }
        }
    }
    let mut out = String::from("code,in_date,out_date\n");
    for (code, v) in spells {
        for (a, b) in v {
            out += &format!(
                "{code},{},{}\n",
                format_date(a),
                b.map(format_date).unwrap_or_default()
            );
        }
    }
    Ok(out)
}

/// The journal folder of a fetch into `out`.
pub fn journal_dir(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "raw".into());
    out.with_file_name(format!(".{name}.tushare-journal"))
}

/// `TUSHARE_TOKEN` from the environment, else from a git-ignored `.env` in the
/// working directory (`TUSHARE_TOKEN=…`). Never logged.
pub fn token_from_env() -> Result<String> {
    af_store::secret("TUSHARE_TOKEN").ok_or_else(|| {
        anyhow!("--source tushare needs a token: set TUSHARE_TOKEN (or put TUSHARE_TOKEN=… in a git-ignored .env)")
    })
}

/// Calls of a whole-market fetch of `open_dates` trading dates.
pub fn call_budget(open_dates: usize) -> usize {
    1 + 3 + 1 + PER_DATE.len() * open_dates
}
