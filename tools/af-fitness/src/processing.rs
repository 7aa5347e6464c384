//! How factor values are processed and on which dates they were chosen: one type,
//! [`Processing`], with its defaults defined once.
//!
//! `fitness` records the `Processing` it scored with under one metadata key
//! ([`META_PROCESSING`]); `library-merge` pools only files whose `Processing` is equal
//! and embeds it in the library; `lgbm-train` and `report` take the horizon and the
//! splits from the library, so a later tool cannot quietly score on another label or
//! call dates "out of sample" that the library's factors were selected on.

use std::collections::BTreeMap;

use af_panel::dates::format_date;
use af_panel::{Panel, columns};
use anyhow::{Context as _, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::prep::Winsor;
pub use crate::split::RecordedSplit;
use crate::split::{Split, from_recorded};

/// Metadata key of a fitness file's [`Processing`] (JSON).
pub const META_PROCESSING: &str = "af.processing";

/// Defaults of every processing setting; the tools' flags take theirs from here.
pub mod defaults {
    pub const HORIZON: usize = 1;
    pub const WINSOR: &str = "quantile:0.01";
    pub const NEUTRALIZE: &str = "industry,size";
    /// Dates with fewer scorable assets are dropped (a cross-section of 20 stocks has
    /// no meaningful RankIC).
    pub const MIN_ASSETS: usize = 30;
    /// Ridge added to the neutralization normal equations: keeps a date whose industry
    /// dummies are collinear (an industry of one asset) solvable, and moves nothing else.
    pub const RIDGE: f64 = 1e-6;
    /// Train coverage (scored share of the universe), or share of usable train dates,
    /// below which a factor scores 0.
    pub const MIN_COVERAGE: f64 = 0.5;

    // Scoring (af_fitness::ScoreConfig).
    /// Score given up per expression node (parsimony: a 10-node factor gives up 0.005).
    pub const SIZE_PENALTY: f64 = 5e-4;
    pub const MAX_TURNOVER: f64 = 0.5;
    pub const TURNOVER_PENALTY: f64 = 0.02;
    /// |corr| with a library factor at or above this makes a candidate a near-copy.
    pub const NEAR_COPY_CORR: f64 = 0.7;
    pub const ADMIT_IC: f64 = 0.005;
    pub const ADMIT_RATIO: f64 = 1.0 / 3.0;
    pub const LEAK_IC: f64 = 0.2;
}

/// What to neutralize factor values against, per date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Neutralize {
    /// Industry dummies and log(cap).
    #[serde(rename = "industry,size")]
    #[cfg_attr(feature = "cli", value(name = "industry,size"))]
    IndustrySize,
    #[serde(rename = "industry")]
    #[cfg_attr(feature = "cli", value(name = "industry"))]
    Industry,
    #[serde(rename = "size")]
    #[cfg_attr(feature = "cli", value(name = "size"))]
    Size,
    #[serde(rename = "none")]
    #[cfg_attr(feature = "cli", value(name = "none"))]
    None,
}

impl Neutralize {
    pub fn parse(s: &str) -> Result<Neutralize> {
        Ok(match s {
            "industry,size" | "size,industry" => Neutralize::IndustrySize,
            "industry" => Neutralize::Industry,
            "size" => Neutralize::Size,
            "none" => Neutralize::None,
            o => bail!("--neutralize {o}: expected industry,size | industry | size | none"),
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Neutralize::IndustrySize => "industry,size",
            Neutralize::Industry => "industry",
            Neutralize::Size => "size",
            Neutralize::None => "none",
        }
    }
    pub fn from_parts(industry: bool, size: bool) -> Neutralize {
        match (industry, size) {
            (true, true) => Neutralize::IndustrySize,
            (true, false) => Neutralize::Industry,
            (false, true) => Neutralize::Size,
            (false, false) => Neutralize::None,
        }
    }
    pub fn industry(self) -> bool {
        matches!(self, Neutralize::IndustrySize | Neutralize::Industry)
    }
    pub fn size(self) -> bool {
        matches!(self, Neutralize::IndustrySize | Neutralize::Size)
    }
}

impl Serialize for Winsor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Winsor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Winsor, D::Error> {
        let s = String::deserialize(d)?;
        Winsor::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The engine's per-run parameters, derived from a [`Processing`] record
/// ([`Processing::config`]).
#[derive(Debug, Clone)]
pub struct Config {
    pub horizon: usize,
    pub winsor: Winsor,
    /// Neutralize on industry dummies / log(cap).
    pub industry: bool,
    pub size: bool,
    /// Dates with fewer assets are dropped (and counted).
    pub min_assets: usize,
    pub ridge: f64,
    /// Also score against the previous day (rank autocorrelation, top-quintile
    /// turnover); a FAST screen skips it and processes half the rows.
    pub turnover: bool,
}

impl Default for Config {
    fn default() -> Self {
        Processing::default().config(true)
    }
}

/// Everything that defines a factor's processed values and the dates its figures (and
/// so its selection) come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Processing {
    /// Label horizon in days: factors are scored against `fwd_ret_{horizon}`; with
    /// several `horizons`, the primary one (the model's label, the report's charts).
    pub horizon: usize,
    /// Every horizon a candidate was scored on (`fitness --horizons 1,5`), primary
    /// first; each candidate is selected on its best one, which the library records
    /// per factor. Empty in files written before multi-horizon scoring: `[horizon]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub horizons: Vec<usize>,
    pub winsor: Winsor,
    pub neutralize: Neutralize,
    pub min_assets: usize,
    pub ridge: f64,
    pub min_coverage: f64,
    /// The splits, in panel order; a factor is selected on `train` (score) and `valid`
    /// (admission).
    pub splits: Vec<RecordedSplit>,
}

impl Default for Processing {
    fn default() -> Processing {
        Processing {
            horizon: defaults::HORIZON,
            horizons: Vec::new(),
            winsor: Winsor::parse(defaults::WINSOR).expect("the default parses"),
            neutralize: Neutralize::parse(defaults::NEUTRALIZE).expect("the default parses"),
            min_assets: defaults::MIN_ASSETS,
            ridge: defaults::RIDGE,
            min_coverage: defaults::MIN_COVERAGE,
            splits: Vec::new(),
        }
    }
}

/// Whether `panel` has market caps to neutralize size on (a positive `cap` somewhere).
pub fn has_caps(panel: &Panel) -> bool {
    panel
        .field(columns::CAP)
        .is_ok_and(|c| c.data.iter().any(|x| x.is_finite() && *x > 0.0))
}

/// Names of the splits whose dates a factor's selection looked at.
pub const SELECTION_SPLITS: [&str; 3] = ["train", "valid", "all"];

impl Processing {
    /// This processing as `panel` can carry it out: size neutralization needs market caps,
    /// industry neutralization an industry column; what the panel cannot do is dropped
    /// from `neutralize`, with a note saying so. What is recorded is then what was done,
    /// never only what was asked.
    pub fn on_panel(mut self, panel: &Panel) -> (Processing, Vec<String>) {
        let want = self.neutralize;
        let industry = want.industry() && panel.groups(columns::INDUSTRY).is_ok();
        let size = want.size() && has_caps(panel);
        let mut notes = Vec::new();
        if want.industry() && !industry {
            notes.push("industry neutralization skipped: the panel has no industry".to_string());
        }
        if want.size() && !size {
            notes.push("size neutralization skipped: the panel has no market caps".to_string());
        }
        self.neutralize = Neutralize::from_parts(industry, size);
        (self, notes)
    }

    /// The fitness [`Config`] this processing implies (`turnover`: also score against
    /// the previous day).
    pub fn config(&self, turnover: bool) -> Config {
        Config {
            horizon: self.horizon,
            winsor: self.winsor,
            industry: self.neutralize.industry(),
            size: self.neutralize.size(),
            min_assets: self.min_assets,
            ridge: self.ridge,
            turnover,
        }
    }

    /// The horizons candidates were scored on, primary first.
    pub fn scored_horizons(&self) -> Vec<usize> {
        if self.horizons.is_empty() {
            vec![self.horizon]
        } else {
            self.horizons.clone()
        }
    }

    /// The longest label horizon the candidates were scored on: how far past a split's
    /// end its labels reached (purging, the model's first test date).
    pub fn longest(&self) -> usize {
        self.scored_horizons()
            .into_iter()
            .fold(self.horizon, usize::max)
    }

    /// Record `splits` (ranges of `dates`) by their first and last date.
    pub fn record_splits(&mut self, splits: &[Split], dates: &[i32]) {
        self.splits = splits
            .iter()
            .map(|s| RecordedSplit {
                name: s.name.clone(),
                first: format_date(dates[s.start]),
                last: format_date(dates[s.end - 1]),
            })
            .collect();
    }

    /// The recorded splits as ranges of the panel calendar `dates`.
    pub fn splits(&self, dates: &[i32]) -> Result<Vec<Split>> {
        from_recorded(&self.splits, dates)
    }

    /// The split named `name` on `dates`.
    pub fn split(&self, name: &str, dates: &[i32]) -> Result<Split> {
        self.splits(dates)?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                anyhow!(
                    "no split named {name} (recorded: {})",
                    self.split_names().join(", ")
                )
            })
    }

    pub fn split_names(&self) -> Vec<String> {
        self.splits.iter().map(|s| s.name.clone()).collect()
    }

    /// One past the last date of the selection splits (train, valid): dates from here
    /// on played no part in choosing the factors.
    pub fn selection_end(&self, dates: &[i32]) -> Result<usize> {
        self.splits(dates)?
            .iter()
            .filter(|s| SELECTION_SPLITS.contains(&s.name.as_str()))
            .map(|s| s.end)
            .max()
            .ok_or_else(|| {
                anyhow!("no train split recorded: cannot tell which dates selected the factors")
            })
    }

    /// The `Processing` a fitness file or library recorded under [`META_PROCESSING`].
    pub fn from_metadata(meta: &BTreeMap<String, String>) -> Result<Processing> {
        let text = meta.get(META_PROCESSING).ok_or_else(|| {
            anyhow!("no {META_PROCESSING} metadata (made by an older fitness: re-run it)")
        })?;
        serde_json::from_str(text).context("corrupt af.processing metadata")
    }

    /// The metadata entry recording this processing.
    pub fn metadata_entry(&self) -> (String, String) {
        (
            META_PROCESSING.to_string(),
            serde_json::to_string(self).expect("Processing serialises"),
        )
    }

    /// `flag` (a tool's optional `--what`) must agree with the recorded value: the
    /// recorded one when absent, an error naming both when they differ.
    pub fn agree<T: PartialEq + std::fmt::Display + Copy>(
        what: &str,
        flag: Option<T>,
        recorded: T,
        source: &str,
    ) -> Result<T> {
        match flag {
            Some(v) if v != recorded => bail!(
                "--{what} {v} contradicts the {what} {recorded} that {source} recorded \
                 (its factors were scored and selected with it): drop the flag or rebuild {source}"
            ),
            _ => Ok(recorded),
        }
    }

    /// How this processing differs from `other`, for an error message.
    pub fn differences(&self, other: &Processing) -> Vec<String> {
        let mut d = Vec::new();
        let mut cmp = |k: &str, a: String, b: String| {
            if a != b {
                d.push(format!("{k} {a} vs {b}"));
            }
        };
        cmp(
            "horizon",
            self.horizon.to_string(),
            other.horizon.to_string(),
        );
        let hs = |p: &Processing| {
            p.scored_horizons()
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        if !(self.horizons.is_empty() && other.horizons.is_empty()) {
            cmp("horizons", hs(self), hs(other));
        }
        cmp("winsor", self.winsor.name(), other.winsor.name());
        cmp(
            "neutralize",
            self.neutralize.name().into(),
            other.neutralize.name().into(),
        );
        cmp(
            "min_assets",
            self.min_assets.to_string(),
            other.min_assets.to_string(),
        );
        cmp("ridge", self.ridge.to_string(), other.ridge.to_string());
        cmp(
            "min_coverage",
            self.min_coverage.to_string(),
            other.min_coverage.to_string(),
        );
        let sp = |p: &Processing| {
            p.splits
                .iter()
                .map(|s| format!("{}={}..{}", s.name, s.first, s.last))
                .collect::<Vec<_>>()
                .join(",")
        };
        cmp("splits", sp(self), sp(other));
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split::default_splits;

    #[test]
    fn round_trips_through_metadata_and_finds_the_selection_end() {
        let dates: Vec<i32> = (0..100).map(|i| 19000 + i).collect();
        let mut p = Processing::default();
        p.record_splits(&default_splits(100), &dates);
        let (k, v) = p.metadata_entry();
        let back = Processing::from_metadata(&[(k, v)].into_iter().collect()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.selection_end(&dates).unwrap(), 80);
        assert_eq!(back.split("test", &dates).unwrap().start, 80);
        let mut q = p.clone();
        q.horizon = 5;
        assert_eq!(p.differences(&q), vec!["horizon 1 vs 5".to_string()]);
        // Scored on 1 and 5 days vs on 1 only: same primary, other selection.
        let mut m = p.clone();
        m.horizons = vec![1, 5];
        assert_eq!(p.differences(&m), vec!["horizons 1 vs 1,5".to_string()]);
        assert_eq!(m.scored_horizons(), vec![1, 5]);
        assert_eq!(m.longest(), 5);
        let (k, v) = m.metadata_entry();
        assert_eq!(
            Processing::from_metadata(&[(k, v)].into_iter().collect()).unwrap(),
            m
        );
        assert!(Processing::from_metadata(&BTreeMap::new()).is_err());
    }

    #[test]
    fn a_contradicting_flag_is_refused() {
        assert_eq!(Processing::agree("horizon", None, 5usize, "L").unwrap(), 5);
        assert_eq!(
            Processing::agree("horizon", Some(5usize), 5, "L").unwrap(),
            5
        );
        let e = Processing::agree("horizon", Some(1usize), 5, "library L").unwrap_err();
        assert!(e.to_string().contains("contradicts the horizon 5"), "{e}");
    }

    #[test]
    fn what_the_panel_cannot_do_is_not_recorded() {
        use af_panel::{PanelData, write_panel};
        let dir = std::env::temp_dir().join(format!("af-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.arrow");
        let data = PanelData {
            dates: vec![19000, 19001],
            codes: vec!["A".into(), "B".into()],
            fields: vec![
                ("close".into(), vec![1.0; 4]),
                ("cap".into(), vec![f64::NAN; 4]),
            ],
            groups: vec![(
                "industry".into(),
                vec![0, 1, 0, 1],
                vec!["X".into(), "Y".into()],
            )],
            ..Default::default()
        };
        write_panel(&path, data, &af_store::Provenance::new("test", "0")).unwrap();
        let panel = Panel::open(&path).unwrap();
        let (p, notes) = Processing::default().on_panel(&panel);
        assert_eq!(p.neutralize, Neutralize::Industry);
        assert_eq!(
            notes,
            ["size neutralization skipped: the panel has no market caps"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn neutralize_names_round_trip() {
        for n in [
            Neutralize::IndustrySize,
            Neutralize::Industry,
            Neutralize::Size,
            Neutralize::None,
        ] {
            assert_eq!(Neutralize::parse(n.name()).unwrap(), n);
        }
        assert!(Neutralize::parse("sector").is_err());
    }
}
