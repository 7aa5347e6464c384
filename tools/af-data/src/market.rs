//! Market rules as data: which daily price limits a market has. One profile is chosen
//! at ingest (`ts-fetch --market`, recorded in the raw manifest) and read again by
//! `panel-build` (limit flags behind the labels) and, later, the backtest.
//!
//! The limits also decide where split inference is safe: a close-to-close move at a
//! common split ratio is read as a split only when the profile says that move is
//! impossible as a market move (beyond the code's daily limit). On a ±10 % A-share main
//! board a −50 % day can only be a split; on a market without limits, or with ±50 %
//! limits, it may be a real move (issue 20: 526 limit days of a ±50 % exchange were
//! "adjusted" away), so `auto` leaves it alone and lists it.
//!
//! Profiles: `cn` (A-share board rules, see [`crate::limits`]; codes outside the A-share
//! scheme have no limit), `generic` (no limits), or a YAML file:
//! ```yaml
//! name: xse          # recorded in the manifest
//! limit: 0.5         # symmetric daily limit as a fraction of the previous close
//! # or limit_up: 0.5 and limit_down: 0.3; no limit key = no limits
//! max_move: 5        # without a limit: a ×5 or ÷5 day is a break (default 5)
//! ```
//!
//! **Breaks** (issue 34). A close-to-close move the profile makes impossible — beyond
//! the code's limit, or for a code without one beyond ×`max_move` / ÷`max_move` — that
//! split inference did not explain is a bad print or an unannounced corporate action,
//! never a return: [`Market::is_break`] decides, ingest lists it in the manifest's
//! `moves` as `break`, and panel-build gives it no return (`returns` and every label
//! whose window crosses it are NaN; prices before it re-based by the observed ratio).
//! `ts-fetch --breaks keep` records the old behaviour (the move stays a return).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::limits::{board, limit_pct};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Limits {
    /// A-share board rules by code (main ±10 %, ChiNext/STAR ±20 %, Beijing ±30 %, ST ±5 %).
    Cn,
    /// No daily limit.
    None,
    /// One flat limit for every code: (up, down) fractions.
    Flat(f64, f64),
}

/// Recorded whole in the raw manifest, so panel-build applies the same rules without
/// the profile file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Market {
    pub name: String,
    pub limits: Limits,
    /// What an impossible move becomes (absent in manifests from before issue 34:
    /// the default, breaks applied).
    #[serde(default)]
    pub breaks: Breaks,
}

/// The break rule of a market (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breaks {
    /// `ts-fetch --breaks keep`: an impossible move stays a return (listed as `kept`).
    #[serde(default)]
    pub keep: bool,
    /// Without a daily limit, a day's close/previous close above this or below its
    /// inverse is a break.
    #[serde(default = "default_max_move")]
    pub max_move: f64,
}

pub const DEFAULT_MAX_MOVE: f64 = 5.0;

fn default_max_move() -> f64 {
    DEFAULT_MAX_MOVE
}

impl Default for Breaks {
    fn default() -> Self {
        Breaks {
            keep: false,
            max_move: DEFAULT_MAX_MOVE,
        }
    }
}

/// A code's first bars (a new listing) trade without the usual limit on several boards
/// (ChiNext and STAR: five days): there only `max_move` makes a move a break.
const NEW_LISTING_BARS: usize = 5;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    name: String,
    #[serde(default)]
    limit: Option<f64>,
    #[serde(default)]
    limit_up: Option<f64>,
    #[serde(default)]
    limit_down: Option<f64>,
    #[serde(default)]
    max_move: Option<f64>,
}

pub const DEFAULT: &str = "cn";

impl Market {
    pub fn cn() -> Market {
        Market {
            name: "cn".into(),
            limits: Limits::Cn,
            breaks: Breaks::default(),
        }
    }

    /// `cn`, `generic`, or a YAML profile file (unknown keys are errors).
    pub fn load(spec: &str) -> Result<Market> {
        match spec {
            "cn" => return Ok(Market::cn()),
            "generic" => {
                return Ok(Market {
                    name: "generic".into(),
                    limits: Limits::None,
                    breaks: Breaks::default(),
                });
            }
            _ => {}
        }
        let path = Path::new(spec);
        if !path.is_file() {
            bail!("--market {spec:?} is neither a profile (cn, generic) nor a YAML file");
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read market profile {spec}"))?;
        let p: Profile =
            serde_saphyr::from_str(&text).map_err(|e| anyhow!("market profile {spec}: {e}"))?;
        let up = p.limit_up.or(p.limit);
        let down = p.limit_down.or(p.limit);
        let ok = |x: f64| x.is_finite() && x > 0.0;
        let limits = match (up, down) {
            (None, None) => Limits::None,
            (Some(u), Some(d)) if ok(u) && ok(d) && d < 1.0 => Limits::Flat(u, d),
            _ => bail!(
                "market profile {spec}: limits must be given for both directions (limit, or \
                 limit_up and limit_down), as fractions > 0 (limit_down < 1)"
            ),
        };
        if p.name.trim().is_empty() || matches!(p.name.as_str(), "cn" | "generic") {
            bail!("market profile {spec}: `name` must be a new, non-empty name");
        }
        let max_move = p.max_move.unwrap_or(DEFAULT_MAX_MOVE);
        if !(max_move.is_finite() && max_move > 1.0) {
            bail!("market profile {spec}: `max_move` must be a ratio > 1, e.g. 5");
        }
        Ok(Market {
            name: p.name,
            limits,
            breaks: Breaks {
                keep: false,
                max_move,
            },
        })
    }

    /// The profile recorded in a panel's description (`market_profile`, panel-build);
    /// a panel from before it was recorded: `cn` if that was its market's name, else an
    /// error (its limits are unknown).
    pub fn from_panel(desc: &serde_json::Value) -> Result<Market> {
        if let Some(p) = desc.get("market_profile") {
            return serde_json::from_value(p.clone())
                .map_err(|e| anyhow!("the panel's market_profile is unreadable: {e}"));
        }
        match desc.get("market").and_then(|m| m.as_str()) {
            None | Some("cn") => Ok(Market::cn()),
            Some(name) => bail!(
                "the panel was built under market {name:?} by an older panel-build that did \
                 not record its limits: rebuild it, or choose --limit-rule board|flat|none"
            ),
        }
    }

    /// The limits in a few words, for summaries and reports.
    pub fn describe(&self) -> String {
        let pct = |x: f64| format!("{}", (x * 1000.0).round() / 10.0);
        match self.limits {
            Limits::Cn => "A-share board limits: ±10 % main, ±20 % ChiNext/STAR, ±30 % Beijing, ±5 % ST; other codes none".into(),
            Limits::None => format!("no daily limit; a ×{} day is a break", self.breaks.max_move),
            Limits::Flat(u, d) => format!("+{} % / −{} %", pct(u), pct(d)),
        }
    }

    /// The profile with ts-fetch's `--breaks` / `--max-move` applied (`None`: as loaded).
    pub fn with_breaks(mut self, keep: Option<bool>, max_move: Option<f64>) -> Result<Market> {
        if let Some(k) = keep {
            self.breaks.keep = k;
        }
        if let Some(m) = max_move {
            if !(m.is_finite() && m > 1.0) {
                bail!("--max-move must be a ratio > 1, e.g. 5 (a ×5 or ÷5 day); got {m}");
            }
            self.breaks.max_move = m;
        }
        Ok(self)
    }

    /// Whether an adjusted close/previous-close `ratio` is a break: impossible as a
    /// market move under this profile. With a limit: beyond it by more than a 1 %
    /// margin and a tick (0.01 of the previous close `prev_px`, unadjusted: limit prices
    /// are rounded to the tick, which is several percent of a sub-yuan price). Without
    /// one (no limit in the profile, a code outside the A-share scheme on `cn`, or a new
    /// listing: the bar has `bars_before` < [`NEW_LISTING_BARS`] real bars before it):
    /// beyond ×/÷ `max_move`. Always false under `--breaks keep` and for a non-finite
    /// ratio.
    pub fn is_break(
        &self,
        code: &str,
        is_st: bool,
        bars_before: usize,
        ratio: f64,
        prev_px: f64,
    ) -> bool {
        if self.breaks.keep || !(ratio.is_finite() && ratio > 0.0) {
            return false;
        }
        let limit = if bars_before < NEW_LISTING_BARS {
            None
        } else {
            self.limit_pct(code, is_st, false)
        };
        match limit {
            Some((u, d)) => {
                let tick = if prev_px.is_finite() && prev_px > 0.0 {
                    0.01 / prev_px
                } else {
                    0.0
                };
                ratio > (1.0 + u) * 1.01 + tick || ratio < (1.0 - d) * 0.99 - tick
            }
            None => {
                let m = self.breaks.max_move;
                ratio > m || ratio < 1.0 / m
            }
        }
    }

    /// The (up, down) thresholds at or beyond which a day's change is a limit move for
    /// the backtest (Qlib's `limit_threshold`: half a percent inside the limit), and the
    /// bound beyond which a change cannot be a market move whatever the price: twice
    /// the limit, at least the limit plus 25 points (a panel has no raw price, and one
    /// tick is 12.5 % of a 0.08 yuan stock: a −12.5 % day there is a limit-down);
    /// without a limit the `max_move` bound. [`Market::is_break`], with the raw price,
    /// is the exact rule; this is the backtest's safety net.
    pub fn backtest_limits(&self, code: &str) -> ((f64, f64), (f64, f64)) {
        let gross = |l: f64| (2.0 * l).max(l + 0.25);
        match self.limit_pct(code, false, false) {
            Some((u, d)) => ((u - 0.005, d - 0.005), (gross(u), gross(d).min(0.99))),
            None => {
                let m = self.breaks.max_move;
                ((f64::INFINITY, f64::INFINITY), (m - 1.0, 1.0 - 1.0 / m))
            }
        }
    }

    /// (up, down) limit fractions of a bar, `None` when it has no limit.
    pub fn limit_pct(&self, code: &str, is_st: bool, listing_day: bool) -> Option<(f64, f64)> {
        match self.limits {
            Limits::Cn => limit_pct(board(code), is_st, listing_day),
            Limits::None => None,
            Limits::Flat(u, d) => (!listing_day).then_some((u, d)),
        }
    }

    /// Whether a close/prev-close `ratio` is impossible as a market move for this bar:
    /// beyond its limit, with a 1 % margin for rounding to the tick.
    pub fn beyond_limit(&self, code: &str, is_st: bool, ratio: f64) -> bool {
        match self.limit_pct(code, is_st, false) {
            Some((u, d)) => ratio > (1.0 + u) * 1.01 || ratio < (1.0 - d) * 0.99,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles() {
        let cn = Market::load("cn").unwrap();
        assert!(cn.beyond_limit("600000.SH", false, 0.5));
        assert!(!cn.beyond_limit("600000.SH", false, 1.1));
        // ±30 % on Beijing: a 1:1.5 ratio (−33 %) is beyond it, +30 % is not.
        assert!(cn.beyond_limit("830799.BJ", false, 2.0 / 3.0));
        assert!(!cn.beyond_limit("830799.BJ", false, 1.3));
        // A code outside the A-share scheme has no limit: nothing is impossible.
        assert!(!cn.beyond_limit("AAPL", false, 0.5));
        let g = Market::load("generic").unwrap();
        assert!(!g.beyond_limit("600000.SH", false, 0.1));
        let dir = std::env::temp_dir().join(format!("af-market-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("m.yaml");
        std::fs::write(&f, "name: xse\nlimit: 0.5\n").unwrap();
        let x = Market::load(f.to_str().unwrap()).unwrap();
        assert_eq!(x.limits, Limits::Flat(0.5, 0.5));
        assert!(
            !x.beyond_limit("ABC", false, 1.5),
            "a +50 % limit day is a market move"
        );
        assert!(x.beyond_limit("ABC", false, 2.0));
        assert!(x.beyond_limit("ABC", false, 0.25));
        std::fs::write(&f, "name: xse\nlimit_up: 0.5\n").unwrap();
        assert!(Market::load(f.to_str().unwrap()).is_err());
        std::fs::write(&f, "name: xse\nlimits: 0.5\n").unwrap();
        assert!(Market::load(f.to_str().unwrap()).is_err());
        assert!(Market::load("nasdaq").is_err());
    }

    #[test]
    fn breaks() {
        let dir = std::env::temp_dir().join(format!("af-market-b-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("m.yaml");
        std::fs::write(&f, "name: xse\nlimit_up: 0.5\nlimit_down: 0.4\n").unwrap();
        let x = Market::load(f.to_str().unwrap()).unwrap();
        // The issue's cases: +91 % on a +50 % market is a break, +45 % a return, ×171 a break.
        assert!(x.is_break("ABC", false, 10, 1.91, 20.0));
        assert!(!x.is_break("ABC", false, 10, 1.45, 20.0));
        assert!(!x.is_break("ABC", false, 10, 1.50, 20.0));
        assert!(x.is_break("ABC", false, 10, 171.0, 20.0));
        assert!(x.is_break("ABC", false, 10, 0.5, 20.0));
        assert!(!x.is_break("ABC", false, 10, 0.61, 20.0));
        // A new listing trades without the limit: only max_move.
        assert!(!x.is_break("ABC", false, 1, 1.91, 20.0));
        assert!(x.is_break("ABC", false, 1, 171.0, 20.0));
        // The tick: 0.15 -> 0.17 is the rounded +10 % limit on a sub-yuan price.
        let cn = Market::cn();
        assert!(!cn.is_break("600000.SH", false, 10, 0.17 / 0.15, 0.15));
        assert!(cn.is_break("600000.SH", false, 10, 1.2, 10.0));
        assert!(!cn.is_break("AAPL", false, 10, 1.9, 10.0));
        assert!(cn.is_break("AAPL", false, 10, 100.0, 10.0));
        let kept = cn.clone().with_breaks(Some(true), None).unwrap();
        assert!(!kept.is_break("AAPL", false, 10, 100.0, 10.0));
        let g = Market::load("generic")
            .unwrap()
            .with_breaks(None, Some(2.0))
            .unwrap();
        assert!(g.is_break("X", false, 10, 2.5, 10.0));
        assert!(!g.is_break("X", false, 10, 1.9, 10.0));
        assert!(Market::cn().with_breaks(None, Some(0.5)).is_err());
        // Manifests from before breaks: the default rule.
        let old: Market = serde_json::from_str(r#"{"name":"cn","limits":"cn"}"#).unwrap();
        assert_eq!(old, Market::cn());
        std::fs::write(&f, "name: xse\nmax_move: 3\n").unwrap();
        assert_eq!(
            Market::load(f.to_str().unwrap()).unwrap().breaks.max_move,
            3.0
        );
    }
}
