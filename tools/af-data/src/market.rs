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
//! ```

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
}

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
}

pub const DEFAULT: &str = "cn";

impl Market {
    pub fn cn() -> Market {
        Market {
            name: "cn".into(),
            limits: Limits::Cn,
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
        Ok(Market {
            name: p.name,
            limits,
        })
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
}
