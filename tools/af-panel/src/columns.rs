//! The panel's column names that other crates rely on, and its label rule.
//!
//! Every tool reads the universe mask, the industry groups, the size field and the
//! forward-return labels by these names; spelling them once here keeps a renamed
//! column from silently turning into "field not found" in one tool only. The label
//! rule (how `fwd_ret_h` is computed) lives here too, so a tool needing a horizon the
//! panel does not store (the report's IC decay) computes it exactly as panel-build did.

use crate::Panel;

/// Mask: the asset can be scored on this date (tradable, not ST, listed long enough,
/// in the index when one is given).
pub const UNIVERSE: &str = "in_universe";
/// Mask: the asset traded on this date.
pub const TRADABLE: &str = "tradable";
/// Group column of industries (neutralization, `group_*` operators).
pub const INDUSTRY: &str = "industry";
/// Total market value (size neutralization).
pub const CAP: &str = "cap";
pub const OPEN: &str = "open";
pub const CLOSE: &str = "close";

/// Every label column starts with this (no expression may read one: look-ahead).
pub const LABEL_PREFIX: &str = "fwd_ret_";

/// The label column of horizon `h` days: `fwd_ret_{h}`.
pub fn label(h: usize) -> String {
    format!("{LABEL_PREFIX}{h}")
}

/// The horizon of a label column name (`fwd_ret_5` → 5); `None` for any other column.
pub fn label_horizon(name: &str) -> Option<usize> {
    name.strip_prefix(LABEL_PREFIX)?.parse().ok()
}

/// Whether a column is a forward-return label (never an expression input).
pub fn is_label(name: &str) -> bool {
    label_horizon(name).is_some()
}

/// The label horizons a panel stores, ascending.
pub fn horizons(panel: &Panel) -> Vec<usize> {
    let mut h: Vec<usize> = panel
        .field_names()
        .into_iter()
        .filter_map(label_horizon)
        .collect();
    h.sort_unstable();
    h
}

/// How a panel's labels are defined (panel-build `--label`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelRule {
    /// close(t+h) / close(t) − 1.
    Close2Close,
    /// open(t+1+h) / open(t+1) − 1: a signal seen at t's close is traded at the next open.
    Open2Open,
}

impl LabelRule {
    pub fn name(self) -> &'static str {
        match self {
            LabelRule::Close2Close => "close2close",
            LabelRule::Open2Open => "open2open",
        }
    }

    pub fn from_name(s: &str) -> Option<LabelRule> {
        match s {
            "close2close" => Some(LabelRule::Close2Close),
            "open2open" => Some(LabelRule::Open2Open),
            _ => None,
        }
    }

    /// The rule a panel was built with (recorded by panel-build; panels from before it
    /// was recorded were close to close).
    pub fn of(panel: &Panel) -> LabelRule {
        panel
            .description()
            .get("label")
            .and_then(|v| v.as_str())
            .and_then(LabelRule::from_name)
            .unwrap_or(LabelRule::Close2Close)
    }

    /// How many dates after t the `h`-day label of t reads prices from: h (close to
    /// close: the closes t..t+h), h + 1 (open to open: the opens t+1..t+1+h).
    #[inline]
    pub fn reach(self, h: usize) -> usize {
        match self {
            LabelRule::Close2Close => h,
            LabelRule::Open2Open => h + 1,
        }
    }

    /// The `h`-day forward return of cell `c` = t·na + a on a panel of `nd` dates, NaN
    /// where it would read past the last date. Whether the asset could be traded is the
    /// caller's mask.
    #[inline]
    pub fn forward(
        self,
        open: &[f64],
        close: &[f64],
        nd: usize,
        na: usize,
        c: usize,
        h: usize,
    ) -> f64 {
        let t = c / na;
        match self {
            LabelRule::Close2Close if t + h < nd => close[c + h * na] / close[c] - 1.0,
            LabelRule::Open2Open if t + 1 + h < nd => open[c + (1 + h) * na] / open[c + na] - 1.0,
            _ => f64::NAN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_round_trip() {
        assert_eq!(label(5), "fwd_ret_5");
        assert_eq!(label_horizon(&label(20)), Some(20));
        assert!(is_label("fwd_ret_1"));
        assert!(!is_label("fwd_ret_x") && !is_label("close") && !is_label("fwd_ret_"));
    }

    #[test]
    fn rules_read_the_right_prices() {
        // 4 dates x 1 asset.
        let open = [10.0, 11.0, 12.0, 13.0];
        let close = [20.0, 22.0, 24.0, 26.0];
        let c2c = LabelRule::Close2Close;
        assert_eq!(c2c.forward(&open, &close, 4, 1, 0, 2), 24.0 / 20.0 - 1.0);
        assert!(c2c.forward(&open, &close, 4, 1, 2, 2).is_nan());
        let o2o = LabelRule::Open2Open;
        assert_eq!(o2o.forward(&open, &close, 4, 1, 0, 2), 13.0 / 11.0 - 1.0);
        assert!(o2o.forward(&open, &close, 4, 1, 1, 2).is_nan());
        assert_eq!(LabelRule::from_name(o2o.name()), Some(o2o));
    }
}
