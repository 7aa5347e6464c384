//! Qlib's binary data format, both ways: a raw folder exported as a Qlib provider folder
//! (`qlib-export`), and a Qlib provider folder read back as raw bars
//! (`ts-fetch --source qlib`).
//!
//! The format (Qlib's `LocalFeatureProvider`): `calendars/day.txt` (one date per line),
//! `instruments/all.txt` (`SYMBOL<TAB>first<TAB>last`) and one file per index universe,
//! `features/<symbol, lower case>/<field>.day.bin`: little-endian float32, element 0 the
//! index of the symbol's first date in the calendar, then one value per calendar date
//! up to its last. Symbols follow Qlib's CN data (`SH600000` for `600000.SH`); names
//! that are Windows device names get Qlib's `_qlib_` prefix.
//!
//! Prices follow Qlib's convention: adjusted prices and `$factor`, the raw price being
//! `$close / $factor`. We adjust backward (后复权: `factor` = the cumulative adj_factor),
//! so a later export only appends — a new corporate action never rewrites history — and
//! `$volume` = raw volume / factor. Values are the panel's ([`crate::panel_build`], the
//! same rules): a suspended day carries the last close with volume 0.
//!
//! Update: an export onto an existing folder checks that each file's content is the
//! prefix of what a fresh export would write (else it refuses: different data or
//! adjustment), appends the rest, and pads a symbol's missing days against the global
//! calendar — so the result is byte-identical to a fresh export (Qlib's own
//! `dump_update` appends rows as they come and misaligns a stock that missed a day).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use af_panel::dates::{format_date, parse_date};
use af_store::write_atomic_bytes;
use anyhow::{Context, Result, anyhow, bail};

use crate::market::Market;
use crate::panel_build::{Adjust, BuildParams, Label, Liquidity, build};
use crate::raw::{Interner, NO_DATE, NO_INDUSTRY, RawBars};

/// The fields written, Qlib's names (without `$`).
pub const FIELDS: [&str; 9] = [
    "open", "high", "low", "close", "volume", "vwap", "amount", "factor", "change",
];

/// Qlib's symbol for a contract code: `600000.SH` → `SH600000`; other codes upper-cased.
pub fn symbol_of(code: &str) -> String {
    match code.split_once('.') {
        Some((num, ex))
            if num.len() == 6
                && num.bytes().all(|b| b.is_ascii_digit())
                && matches!(ex, "SH" | "SZ" | "BJ") =>
        {
            format!("{ex}{num}")
        }
        _ => code.to_uppercase(),
    }
}

/// The contract code of a Qlib symbol (the inverse of [`symbol_of`]).
pub fn code_of(symbol: &str) -> String {
    let s = symbol.to_uppercase();
    let (ex, num) = s.split_at(2.min(s.len()));
    if matches!(ex, "SH" | "SZ" | "BJ") && num.len() == 6 && num.bytes().all(|b| b.is_ascii_digit())
    {
        format!("{num}.{ex}")
    } else {
        s
    }
}

/// Qlib's `code_to_fname`, lower-cased as its features folders are.
pub fn fname(symbol: &str) -> String {
    let up = symbol.to_uppercase();
    let device = matches!(up.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((up.starts_with("COM") || up.starts_with("LPT"))
            && up.len() == 4
            && up.as_bytes()[3].is_ascii_digit());
    if device {
        format!("_qlib_{symbol}").to_lowercase()
    } else {
        symbol.to_lowercase()
    }
}

fn encode(start: usize, v: &[f32]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 * (v.len() + 1));
    b.extend_from_slice(&(start as f32).to_le_bytes());
    for x in v {
        b.extend_from_slice(&x.to_le_bytes());
    }
    b
}

fn decode(path: &Path) -> Result<(usize, Vec<f32>)> {
    let b = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if b.len() < 4 || b.len() % 4 != 0 {
        bail!(
            "{}: not a Qlib .bin file ({} bytes)",
            path.display(),
            b.len()
        );
    }
    let v: Vec<f32> = b
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let start = v[0];
    if !(start >= 0.0 && start.fract() == 0.0) {
        bail!("{}: bad start index {start}", path.display());
    }
    Ok((start as usize, v[1..].to_vec()))
}

pub struct Export {
    pub symbols: usize,
    pub dates: usize,
    pub written: usize,
    pub appended: usize,
    pub unchanged: usize,
}

/// Export raw bars into a Qlib provider folder `out`. Without `update` the folder is
/// built aside and renamed into place; with it, an existing folder is extended (see the
/// module doc). `universes`: (name, membership CSV text `code,in_date,out_date`).
pub fn export(
    bars: &mut RawBars,
    universes: &[(String, String)],
    out: &Path,
    update: bool,
) -> Result<Export> {
    let params = BuildParams {
        adjust: Adjust::Backward,
        horizons: vec![1],
        label: Label::Close2Close,
        min_list_days: 0,
        universe: None,
        market: Market::cn(),
        liquidity: Liquidity::default(),
    };
    let factor = factor_grid(bars);
    let built = build(bars, &params)?.data;
    let (nd, na) = (built.dates.len(), built.codes.len());
    let field = |name: &str| -> Result<&Vec<f64>> {
        built
            .fields
            .iter()
            .find(|f| f.0 == name)
            .map(|f| &f.1)
            .ok_or_else(|| anyhow!("panel has no {name}"))
    };
    let cols: Vec<&Vec<f64>> = vec![
        field("open")?,
        field("high")?,
        field("low")?,
        field("close")?,
        field("volume")?,
        field("vwap")?,
        field("amount")?,
        &factor.1,
        field("returns")?,
    ];
    if factor.0 != built.codes {
        bail!("internal: factor grid and panel disagree on codes");
    }
    let close = cols[3];
    let calendar: String = built.dates.iter().map(|d| format_date(*d) + "\n").collect();
    let (root, stage) = if update && out.join("calendars/day.txt").exists() {
        let old = std::fs::read_to_string(out.join("calendars/day.txt"))?;
        if !calendar.starts_with(&old) {
            bail!(
                "{}: its calendar is not a prefix of this export's ({} dates vs {}): export to a new folder",
                out.display(),
                old.lines().count(),
                nd
            );
        }
        (out.to_path_buf(), None)
    } else {
        let stage = af_store::AtomicDir::new(out)?;
        (stage.path(""), Some(stage))
    };
    let mut rep = Export {
        symbols: 0,
        dates: nd,
        written: 0,
        appended: 0,
        unchanged: 0,
    };
    let mut all = String::new();
    for a in 0..na {
        let span: Vec<usize> = (0..nd).filter(|&t| close[t * na + a].is_finite()).collect();
        let (Some(&first), Some(&last)) = (span.first(), span.last()) else {
            continue;
        };
        let sym = symbol_of(&built.codes[a]);
        all += &format!(
            "{sym}\t{}\t{}\n",
            format_date(built.dates[first]),
            format_date(built.dates[last])
        );
        rep.symbols += 1;
        let dir = root.join("features").join(fname(&sym));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, m) in FIELDS.iter().zip(&cols) {
            let v: Vec<f32> = (first..=last).map(|t| m[t * na + a] as f32).collect();
            let path = dir.join(format!("{name}.day.bin"));
            let fresh = encode(first, &v);
            match std::fs::read(&path) {
                Ok(old) if stage.is_none() => {
                    if old == fresh {
                        rep.unchanged += 1;
                    } else if fresh.starts_with(&old) {
                        write_atomic_bytes(&path, &fresh)?;
                        rep.appended += 1;
                    } else {
                        bail!(
                            "{}: differs from this export's values for the same dates \
                             (other data or adjustment?): export to a new folder",
                            path.display()
                        );
                    }
                }
                _ => {
                    write_atomic_bytes(&path, &fresh)?;
                    rep.written += 1;
                }
            }
        }
    }
    let inst = root.join("instruments");
    std::fs::create_dir_all(&inst)?;
    for (name, csv) in universes {
        let text =
            universe_txt(csv, built.dates[nd - 1]).with_context(|| format!("universe {name}"))?;
        write_atomic_bytes(&inst.join(format!("{name}.txt")), text.as_bytes())?;
    }
    write_atomic_bytes(&inst.join("all.txt"), all.as_bytes())?;
    // The calendar last: a killed update leaves the old one, which the longer files
    // still serve (Qlib slices them by it), and a rerun finishes the job.
    std::fs::create_dir_all(root.join("calendars"))?;
    write_atomic_bytes(&root.join("calendars/day.txt"), calendar.as_bytes())?;
    if let Some(s) = stage {
        s.commit()?;
    }
    Ok(rep)
}

/// `code,in_date,out_date` spells → Qlib's instrument lines (an open spell ends on the
/// calendar's last date).
fn universe_txt(csv: &str, last: i32) -> Result<String> {
    let mut out = String::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 3 {
            bail!("bad membership line {line:?}");
        }
        let to = if f[2].is_empty() {
            format_date(last)
        } else {
            f[2].to_string()
        };
        out += &format!("{}\t{}\t{to}\n", symbol_of(f[0]), f[1]);
    }
    Ok(out)
}

/// Per cell, the backward adjustment factor the panel applied (the bar's adj_factor,
/// carried over days without a bar), NaN outside a code's bars; codes sorted.
fn factor_grid(bars: &mut RawBars) -> (Vec<String>, Vec<f64>) {
    bars.sort();
    let mut dates = bars.trade_date.clone();
    dates.dedup();
    let mut order: Vec<usize> = (0..bars.code_names.len()).collect();
    order.sort_by(|a, b| bars.code_names[*a].cmp(&bars.code_names[*b]));
    let mut col = vec![0usize; order.len()];
    for (c, &k) in order.iter().enumerate() {
        col[k] = c;
    }
    let (nd, na) = (dates.len(), order.len());
    let mut g = vec![f64::NAN; nd * na];
    let mut t = 0;
    for i in 0..bars.len() {
        while dates[t] != bars.trade_date[i] {
            t += 1;
        }
        if bars.is_suspended[i] {
            continue;
        }
        g[t * na + col[bars.code[i] as usize]] = if bars.adj_factor[i].is_finite() {
            bars.adj_factor[i]
        } else {
            1.0
        };
    }
    // Carry over days without a bar (only the code's span is exported).
    for a in 0..na {
        let mut cur = f64::NAN;
        for t in 0..nd {
            let c = t * na + a;
            if g[c].is_finite() {
                cur = g[c];
            } else {
                g[c] = cur;
            }
        }
    }
    (
        order.iter().map(|&k| bars.code_names[k].clone()).collect(),
        g,
    )
}

/// Read a Qlib provider folder (ours, or one made by Qlib's `dump_bin.py`) into raw
/// bars: a row for each date of a symbol's range with a finite close (volume 0 makes it
/// a suspended row, as our exports write a suspension; a NaN day is no bar); prices
/// `$field / $factor` (as given without a factor file), volume `$volume × $factor`.
pub fn import(dir: &Path) -> Result<(RawBars, BTreeMap<String, String>)> {
    let cal_path = dir.join("calendars/day.txt");
    let cal: Vec<i32> = std::fs::read_to_string(&cal_path)
        .with_context(|| {
            format!(
                "{} (is {} a Qlib data folder?)",
                cal_path.display(),
                dir.display()
            )
        })?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_date(l.trim()).with_context(|| format!("{}: {l:?}", cal_path.display())))
        .collect::<Result<_>>()?;
    let inst_path = dir.join("instruments/all.txt");
    let inst = std::fs::read_to_string(&inst_path)
        .with_context(|| format!("cannot read {}", inst_path.display()))?;
    let mut bars = RawBars::default();
    let mut codes = Interner::default();
    let mut columns = BTreeMap::new();
    let mut factor_seen = false;
    let mut symbols: Vec<&str> = inst
        .lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|s| !s.trim().is_empty())
        .collect();
    symbols.sort_unstable();
    symbols.dedup();
    for sym in symbols {
        let fdir = dir.join("features").join(fname(sym));
        let read = |f: &str| -> Result<Option<(usize, Vec<f32>)>> {
            let p = fdir.join(format!("{f}.day.bin"));
            if p.exists() {
                decode(&p).map(Some)
            } else {
                Ok(None)
            }
        };
        let Some((s0, close)) = read("close")? else {
            bail!("{}: no close.day.bin", fdir.display());
        };
        if s0 + close.len() > cal.len() {
            bail!(
                "{}: runs past the calendar ({} + {} > {} dates)",
                fdir.join("close.day.bin").display(),
                s0,
                close.len(),
                cal.len()
            );
        }
        let others: Vec<Option<(usize, Vec<f32>)>> =
            ["open", "high", "low", "volume", "amount", "factor"]
                .iter()
                .map(|f| read(f))
                .collect::<Result<_>>()?;
        let at = |x: &Option<(usize, Vec<f32>)>, t: usize| -> f64 {
            match x {
                Some((s, v)) if t >= *s && t - s < v.len() => v[t - s] as f64,
                _ => f64::NAN,
            }
        };
        factor_seen |= others[5].is_some();
        let code = codes.get(&code_of(sym));
        for (k, c) in close.iter().enumerate() {
            let t = s0 + k;
            let f = if others[5].is_some() {
                at(&others[5], t)
            } else {
                1.0
            };
            let vol = at(&others[3], t);
            if !c.is_finite() || !f.is_finite() || f <= 0.0 {
                continue;
            }
            // Volume 0 inside the range: a suspended day (our exports carry the close).
            let suspended = vol == 0.0;
            let px = |x: f64| x / f;
            bars.trade_date.push(cal[t]);
            bars.code.push(code);
            bars.open.push(px(at(&others[0], t)));
            bars.high.push(px(at(&others[1], t)));
            bars.low.push(px(at(&others[2], t)));
            bars.close.push(px(*c as f64));
            bars.pre_close.push(f64::NAN);
            bars.volume.push(vol * f);
            bars.amount.push(at(&others[4], t));
            bars.adj_factor.push(f);
            bars.is_st.push(false);
            bars.is_suspended.push(suspended);
            bars.industry.push(NO_INDUSTRY);
            bars.total_mv.push(f64::NAN);
            bars.circ_mv.push(f64::NAN);
            bars.list_date.push(NO_DATE);
            bars.origin.push((0, t as u32));
        }
    }
    if bars.is_empty() {
        bail!("{}: no bars (empty instruments/all.txt?)", dir.display());
    }
    bars.code_names = codes.names;
    bars.origin_files = vec![PathBuf::from(dir)];
    // A bar whose open/high/low file is missing takes the close (Qlib folders made
    // from close-only CSVs).
    for i in 0..bars.len() {
        for v in [&mut bars.open[i], &mut bars.high[i], &mut bars.low[i]] {
            if v.is_nan() {
                *v = bars.close[i];
            }
        }
    }
    bars.sort();
    // f32 storage can leave high a hair below open/close: widen, as the files source does.
    for i in 0..bars.len() {
        let (o, c) = (bars.open[i], bars.close[i]);
        bars.high[i] = bars.high[i].max(o).max(c);
        bars.low[i] = bars.low[i].min(o).min(c);
    }
    bars.validate()?;
    for f in crate::raw::COLUMNS {
        let how = match f {
            "trade_date" | "code" | "open" | "high" | "low" | "close" | "volume" | "amount" => {
                "provided (adjusted / $factor)"
            }
            "adj_factor" if factor_seen => "provided: $factor (backward, as Qlib's CN data)",
            "adj_factor" => "filled: 1.0 (no factor.day.bin: prices taken as given)",
            "pre_close" => "filled: previous close of the same code",
            _ => "absent",
        };
        columns.insert(f.to_string(), how.to_string());
    }
    Ok((bars, columns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_round_trip_and_device_names() {
        assert_eq!(symbol_of("600000.SH"), "SH600000");
        assert_eq!(code_of("SH600000"), "600000.SH");
        assert_eq!(code_of("sz000001"), "000001.SZ");
        assert_eq!(symbol_of("aapl"), "AAPL");
        assert_eq!(code_of("AAPL"), "AAPL");
        assert_eq!(fname("CON"), "_qlib_con");
        assert_eq!(fname("COM1"), "_qlib_com1");
        assert_eq!(fname("COMP"), "comp");
        assert_eq!(fname("SH600000"), "sh600000");
        let b = encode(3, &[1.5, f32::NAN]);
        assert_eq!(b.len(), 12);
        assert_eq!(f32::from_le_bytes([b[0], b[1], b[2], b[3]]), 3.0);
    }
}
