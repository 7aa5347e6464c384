//! `ts-fetch --source files`: users' CSV or Parquet daily bars → raw bars.
//!
//! Columns are renamed through a field mapping (a YAML file, or the `tushare` /
//! `identity` presets): `columns` maps each contract field to the file's column name,
//! `scale` multiplies a numeric field after reading (Tushare `vol` is in lots of 100,
//! `amount` in thousands of yuan, caps in 10k yuan). Contract fields the mapping does
//! not name are taken from a same-named column when there is one.
//!
//! Real files are messy; each cleaning rule below is counted in the manifest
//! (`cleaning`) and documented in docs/data_contract.md:
//! - `missing_price_dropped`: a bar with an empty open/high/low/close is dropped (the
//!   day then counts as "no bar": suspended in the panel).
//! - `bad_rows_dropped`: with `--bad-rows drop`, rows with a non-positive price, high <
//!   low or negative volume/amount; by default these stop the run naming file/row/column.
//! - `ohlc_repaired`: high below max(open, close) or low above min(open, close) (but
//!   high ≥ low) → high/low widened to include open and close.
//! - `pre_close_filled`: missing pre_close → the previous close of the same code.
//! - `adj_from_pre_close`: without adj_factor but with pre_close, corporate actions are
//!   read off pre_close ≠ previous close, and adj_factor is their cumulative product.
//! - `splits_inferred`: with neither, a close-to-close ratio within 3% of a common split
//!   ratio (1/2, 1/3, 1/4, 1/5, 1/10, 2/3 or their inverses) is taken as a split — under
//!   `--infer-splits auto` only where the market profile makes that move impossible
//!   (beyond the code's daily limit, [`crate::market`]), under `always` wherever it
//!   matches.
//! - `breaks`: other moves the market makes impossible ([`Market::is_break`]: beyond
//!   the code's limit, or without one beyond ×/÷ `max_move`) are breaks — panel-build
//!   gives them no return and re-bases the prices before them (`--breaks keep`: kept).
//! - `large_jumps_kept`: other moves beyond the code's limit (within the rounding
//!   margin), or (without a limit) |close/prev − 1| > 40 %, are kept as returns.
//!
//! Every inferred split, break and kept large move is listed in the manifest's `moves`
//! (all of them) and counted on stderr.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use af_panel::dates::{date_from_yyyymmdd, format_date, parse_date};
use af_store::sha256_file;
use anyhow::{Context, Result, anyhow, bail};
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Deserialize;

use crate::manifest::Move;
use crate::market::Market;
use crate::panel_build::Universe;
use crate::raw::{COLUMNS, Interner, NO_DATE, NO_INDUSTRY, REQUIRED, RawBars};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRows {
    Error,
    Drop,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitInference {
    /// Only where the market's limits make the move impossible as a market move.
    Auto,
    /// At every common split ratio (a market without limits whose data you know).
    Always,
    Off,
}

#[derive(Debug, Clone)]
pub struct FilesParams {
    pub glob: String,
    pub mapping: String,
    pub bad_rows: BadRows,
    pub infer_splits: SplitInference,
    pub market: Market,
    /// Static per-code data joined by code (`--meta`): industry, list_date.
    pub meta: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// contract field → column name in the file
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// contract field → multiplier applied after reading
    #[serde(default)]
    pub scale: BTreeMap<String, f64>,
    /// The source's prices are already adjusted (a 前复权 table): adj_factor is 1 and
    /// no split is inferred.
    #[serde(default)]
    pub adjusted: bool,
}

impl Mapping {
    pub fn preset(name: &str) -> Option<Mapping> {
        match name {
            "identity" => Some(Mapping::default()),
            "tushare" => Some(Mapping {
                columns: [("code", "ts_code"), ("volume", "vol")]
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
                scale: [
                    ("volume", 100.0),
                    ("amount", 1000.0),
                    ("total_mv", 10000.0),
                    ("circ_mv", 10000.0),
                ]
                .iter()
                .map(|(a, b)| (a.to_string(), *b))
                .collect(),
                adjusted: false,
            }),
            _ => None,
        }
    }

    /// A preset name or a YAML file; unknown keys are errors with line and column.
    pub fn load(spec: &str) -> Result<Mapping> {
        if let Some(m) = Self::preset(spec) {
            return Ok(m);
        }
        let path = Path::new(spec);
        if !path.exists() {
            bail!("mapping {spec:?} is neither a preset (tushare, identity) nor an existing file");
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read mapping {spec}"))?;
        let m: Mapping =
            serde_saphyr::from_str(&text).map_err(|e| anyhow!("mapping {spec}: {e}"))?;
        for key in m.columns.keys().chain(m.scale.keys()) {
            if !COLUMNS.contains(&key.as_str()) {
                bail!(
                    "mapping {spec}: unknown field {key:?} (fields: {})",
                    COLUMNS.join(", ")
                );
            }
        }
        for (k, v) in &m.scale {
            if !(v.is_finite() && *v > 0.0) || !is_numeric_field(k) {
                bail!(
                    "mapping {spec}: scale for {k:?} must be a positive number on a numeric field"
                );
            }
        }
        Ok(m)
    }
}

fn is_numeric_field(f: &str) -> bool {
    matches!(
        f,
        "open"
            | "high"
            | "low"
            | "close"
            | "pre_close"
            | "volume"
            | "amount"
            | "adj_factor"
            | "total_mv"
            | "circ_mv"
            | "up_limit"
            | "down_limit"
    )
}

/// One column of a source table, typed as the source typed it.
pub enum Col {
    Str(Vec<Option<String>>),
    F64(Vec<Option<f64>>),
    I64(Vec<Option<i64>>),
    Date(Vec<Option<i32>>),
    Bool(Vec<Option<bool>>),
}

impl Col {
    pub fn len(&self) -> usize {
        match self {
            Col::Str(v) => v.len(),
            Col::F64(v) => v.len(),
            Col::I64(v) => v.len(),
            Col::Date(v) => v.len(),
            Col::Bool(v) => v.len(),
        }
    }
}

/// A source table: a file's, or a database query's.
pub struct Table {
    pub names: Vec<String>,
    pub cols: Vec<Col>,
    /// CSV: the file line of data row 0 (header = 1), for messages.
    pub line_offset: Option<usize>,
}

/// One table to ingest: its name for messages (a file path, `postgres:daily_bars
/// year 2019`) and its content hash when it is a file.
pub struct Source {
    pub name: PathBuf,
    pub table: Table,
    pub sha256: Option<String>,
}

fn is_null_token(s: &str) -> bool {
    matches!(
        s.trim(),
        "" | "NA" | "N/A" | "NaN" | "nan" | "null" | "NULL" | "None" | "-"
    )
}

fn read_csv(path: &Path) -> Result<Table> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let names: Vec<String> = rdr
        .headers()
        .with_context(|| format!("{}: cannot read the header", path.display()))?
        .iter()
        .map(|s| s.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    let mut cols: Vec<Vec<Option<String>>> = names.iter().map(|_| Vec::new()).collect();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| anyhow!("{} line {}: {e}", path.display(), i + 2))?;
        for (j, v) in rec.iter().enumerate() {
            cols[j].push(if is_null_token(v) {
                None
            } else {
                Some(v.trim().to_string())
            });
        }
    }
    Ok(Table {
        names,
        cols: cols.into_iter().map(Col::Str).collect(),
        line_offset: Some(2),
    })
}

fn arrow_col(a: &ArrayRef, name: &str) -> Result<Col> {
    let n = a.len();
    macro_rules! prim {
        ($t:ty, $ctor:ident, $conv:expr) => {{
            let p = a.as_primitive::<$t>();
            Col::$ctor(
                (0..n)
                    .map(|i| (!p.is_null(i)).then(|| $conv(p.value(i))))
                    .collect(),
            )
        }};
    }
    Ok(match a.data_type() {
        DataType::Float64 => prim!(Float64Type, F64, |x: f64| x),
        DataType::Float32 => prim!(Float32Type, F64, |x: f32| x as f64),
        DataType::Int64 => prim!(Int64Type, I64, |x: i64| x),
        DataType::Int32 => prim!(Int32Type, I64, |x: i32| x as i64),
        DataType::Int16 => prim!(Int16Type, I64, |x: i16| x as i64),
        DataType::Int8 => prim!(Int8Type, I64, |x: i8| x as i64),
        DataType::UInt64 => prim!(UInt64Type, I64, |x: u64| x as i64),
        DataType::UInt32 => prim!(UInt32Type, I64, |x: u32| x as i64),
        DataType::Date32 => prim!(Date32Type, Date, |x: i32| x),
        DataType::Date64 => prim!(Date64Type, Date, |x: i64| x.div_euclid(86_400_000) as i32),
        DataType::Timestamp(unit, _) => {
            let per_day: i64 = match unit {
                TimeUnit::Second => 86_400,
                TimeUnit::Millisecond => 86_400_000,
                TimeUnit::Microsecond => 86_400_000_000,
                TimeUnit::Nanosecond => 86_400_000_000_000,
            };
            let raw = a.to_data();
            let vals = raw.buffers()[0].typed_data::<i64>();
            let off = raw.offset();
            Col::Date(
                (0..n)
                    .map(|i| (!a.is_null(i)).then(|| vals[off + i].div_euclid(per_day) as i32))
                    .collect(),
            )
        }
        DataType::Boolean => {
            let b = a.as_boolean();
            Col::Bool(
                (0..n)
                    .map(|i| (!b.is_null(i)).then(|| b.value(i)))
                    .collect(),
            )
        }
        DataType::Utf8 => {
            let s = a.as_string::<i32>();
            Col::Str(
                (0..n)
                    .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
                    .collect(),
            )
        }
        DataType::LargeUtf8 => {
            let s = a.as_string::<i64>();
            Col::Str(
                (0..n)
                    .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
                    .collect(),
            )
        }
        DataType::Utf8View => {
            let s = a.as_string_view();
            Col::Str(
                (0..n)
                    .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
                    .collect(),
            )
        }
        DataType::Dictionary(_, v) if matches!(**v, DataType::Utf8) => {
            let d = a.as_dictionary::<Int32Type>();
            let vals = d.values().as_string::<i32>();
            Col::Str(
                (0..n)
                    .map(|i| {
                        (!d.is_null(i)).then(|| vals.value(d.keys().value(i) as usize).to_string())
                    })
                    .collect(),
            )
        }
        other => bail!("column {name}: unsupported Parquet type {other}"),
    })
}

fn read_parquet(path: &Path) -> Result<Table> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| anyhow!("{}: corrupt or truncated Parquet file: {e}", path.display()))?;
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let reader = builder.build()?;
    let mut parts: Vec<Vec<Col>> = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| anyhow!("{}: corrupt Parquet data: {e}", path.display()))?;
        let cols = batch
            .columns()
            .iter()
            .zip(&names)
            .map(|(a, n)| arrow_col(a, n))
            .collect::<Result<Vec<_>>>()
            .with_context(|| path.display().to_string())?;
        parts.push(cols);
    }
    // Concatenate batches column by column.
    let mut cols: Vec<Col> = Vec::new();
    for (j, _) in names.iter().enumerate() {
        let mut it = parts
            .iter_mut()
            .map(|p| std::mem::replace(&mut p[j], Col::Bool(vec![])));
        let mut first = match it.next() {
            Some(c) => c,
            None => Col::Str(vec![]),
        };
        for c in it {
            match (&mut first, c) {
                (Col::Str(a), Col::Str(b)) => a.extend(b),
                (Col::F64(a), Col::F64(b)) => a.extend(b),
                (Col::I64(a), Col::I64(b)) => a.extend(b),
                (Col::Date(a), Col::Date(b)) => a.extend(b),
                (Col::Bool(a), Col::Bool(b)) => a.extend(b),
                _ => bail!(
                    "{}: column {} changes type between row groups",
                    path.display(),
                    names[j]
                ),
            }
        }
        cols.push(first);
    }
    Ok(Table {
        names,
        cols,
        line_offset: None,
    })
}

fn read_table(path: &Path) -> Result<Table> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "csv" | "txt" => read_csv(path),
        "parquet" | "pq" => read_parquet(path),
        _ => bail!(
            "{}: unknown file type (expected .csv or .parquet)",
            path.display()
        ),
    }
}

fn loc(path: &Path, t: &Table, row: usize, col: &str) -> String {
    match t.line_offset {
        Some(o) => format!(
            "{} line {} (row {}), column {col}",
            path.display(),
            row + o,
            row + 1
        ),
        None => format!("{} row {}, column {col}", path.display(), row + 1),
    }
}

fn get_f64(c: &Col, i: usize, what: impl Fn() -> String) -> Result<f64> {
    Ok(match c {
        Col::F64(v) => v[i].unwrap_or(f64::NAN),
        Col::I64(v) => v[i].map(|x| x as f64).unwrap_or(f64::NAN),
        Col::Str(v) => match &v[i] {
            None => f64::NAN,
            Some(s) => s
                .replace(',', "")
                .parse::<f64>()
                .map_err(|_| anyhow!("{}: not a number: {s:?}", what()))?,
        },
        Col::Bool(v) => v[i].map(|b| b as u8 as f64).unwrap_or(f64::NAN),
        Col::Date(_) => bail!("{}: a date where a number was expected", what()),
    })
}

fn get_date(c: &Col, i: usize, what: impl Fn() -> String) -> Result<Option<i32>> {
    Ok(match c {
        Col::Date(v) => v[i],
        Col::I64(v) => v[i]
            .map(date_from_yyyymmdd)
            .transpose()
            .map_err(|e| anyhow!("{}: {e}", what()))?,
        Col::F64(v) => v[i]
            .map(|x| date_from_yyyymmdd(x as i64))
            .transpose()
            .map_err(|e| anyhow!("{}: {e}", what()))?,
        Col::Str(v) => v[i]
            .as_deref()
            .map(parse_date)
            .transpose()
            .map_err(|e| anyhow!("{}: {e}", what()))?,
        Col::Bool(_) => bail!("{}: a boolean where a date was expected", what()),
    })
}

fn get_bool(c: &Col, i: usize, what: impl Fn() -> String) -> Result<bool> {
    Ok(match c {
        Col::Bool(v) => v[i].unwrap_or(false),
        Col::I64(v) => v[i].unwrap_or(0) != 0,
        Col::F64(v) => v[i].is_some_and(|x| x != 0.0),
        Col::Str(v) => match v[i].as_deref().map(|s| s.to_ascii_lowercase()) {
            None => false,
            Some(s) => match s.as_str() {
                "1" | "true" | "t" | "y" | "yes" => true,
                "0" | "false" | "f" | "n" | "no" => false,
                _ => bail!("{}: not a boolean: {s:?}", what()),
            },
        },
        Col::Date(_) => bail!("{}: a date where a boolean was expected", what()),
    })
}

fn get_str(c: &Col, i: usize) -> Option<String> {
    match c {
        Col::Str(v) => v[i].clone(),
        Col::I64(v) => v[i].map(|x| x.to_string()),
        Col::F64(v) => v[i].map(|x| x.to_string()),
        Col::Date(v) => v[i].map(format_date),
        Col::Bool(v) => v[i].map(|x| x.to_string()),
    }
}

pub struct Ingested {
    pub bars: RawBars,
    pub report: Report,
}

fn expand_glob(pattern: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = glob::glob(pattern)
        .map_err(|e| anyhow!("bad --path glob {pattern:?}: {e}"))?
        .filter_map(|p| p.ok())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("--path {pattern:?} matches no files");
    }
    Ok(files)
}

/// Read, map, clean and sort users' bars.
pub fn ingest(p: &FilesParams) -> Result<Ingested> {
    let files = expand_glob(&p.glob)?;
    ingest_tables(
        p,
        files.into_iter().map(|path| {
            Ok(Source {
                sha256: Some(sha256_file(&path)?),
                table: read_table(&path)?,
                name: path,
            })
        }),
    )
}

/// The files source's mapping and cleaning, fed one table at a time and finished in
/// chunks of whole dates: [`ingest_tables`] finishes once (a folder of files in any
/// order), the PostgreSQL source once per year (its memory then follows one year, not
/// the table). The per-code state that filling `pre_close` and deriving `adj_factor`
/// need — last close and factor — carries from chunk to chunk, so the chunks together
/// give the same bars as one pass.
pub struct Ingest {
    p: FilesParams,
    mapping: Mapping,
    codes: Interner,
    inds: Interner,
    cleaning: BTreeMap<String, u64>,
    present: BTreeMap<String, bool>,
    input_hashes: Vec<(String, String)>,
    carry: Carry,
    moves: Vec<Move>,
    notes: Vec<String>,
    from_meta: Vec<&'static str>,
    rows: usize,
}

/// Per code id: last close and adjustment factor so far.
#[derive(Default)]
struct Carry {
    last_close: Vec<f64>,
    adj: Vec<f64>,
    /// Real bars seen per code (a new listing's first bars have no limit).
    seen: Vec<usize>,
}

impl Carry {
    fn fit(&mut self, n: usize) {
        self.last_close
            .resize(n.max(self.last_close.len()), f64::NAN);
        self.adj.resize(n.max(self.adj.len()), 1.0);
        self.seen.resize(n.max(self.seen.len()), 0);
    }
}

/// What an ingest reports beside its bars (the manifest's columns, cleaning, notes,
/// moves and input hashes).
pub struct Report {
    pub columns: BTreeMap<String, String>,
    pub cleaning: BTreeMap<String, u64>,
    pub notes: Vec<String>,
    pub moves: Vec<Move>,
    pub input_hashes: Vec<(String, String)>,
}

impl Ingest {
    pub fn new(p: &FilesParams) -> Result<Ingest> {
        let mapping = Mapping::load(&p.mapping)?;
        let mut p = p.clone();
        if mapping.adjusted {
            p.infer_splits = SplitInference::Off;
        }
        Ok(Ingest {
            p,
            mapping,
            codes: Interner::default(),
            inds: Interner::default(),
            cleaning: BTreeMap::new(),
            present: BTreeMap::new(),
            input_hashes: Vec::new(),
            carry: Carry::default(),
            moves: Vec::new(),
            notes: Vec::new(),
            from_meta: Vec::new(),
            rows: 0,
        })
    }

    /// Codes seen so far (the manifest's `codes`).
    pub fn codes(&self) -> usize {
        self.codes.names.len()
    }

    /// Start from a previous raw folder's state (an update), fed its rows in date
    /// order: `code`'s close on a traded day (`None` when suspended) and factor.
    pub fn seed(&mut self, code: &str, close: Option<f64>, adj: f64) {
        let c = self.codes.get(code) as usize;
        self.carry.fit(c + 1);
        if let Some(x) = close {
            self.carry.last_close[c] = x;
        }
        self.carry.adj[c] = adj;
    }

    /// Map one source table's rows onto `bars` (unsorted until [`Ingest::finish`]).
    pub fn add(&mut self, src: Source, bars: &mut RawBars) -> Result<()> {
        let path = &src.name;
        if let Some(h) = &src.sha256 {
            self.input_hashes
                .push((path.display().to_string(), h.clone()));
        }
        let t = src.table;
        let n = t.cols.first().map(|c| c.len()).unwrap_or(0);
        // Resolve each contract field to a column index.
        let mut idx: BTreeMap<&str, usize> = BTreeMap::new();
        for f in COLUMNS {
            let src = self.mapping.columns.get(f).map(|s| s.as_str()).unwrap_or(f);
            if let Some(j) = t.names.iter().position(|n| n == src) {
                idx.insert(f, j);
            } else if self.mapping.columns.contains_key(f) {
                bail!(
                    "{}: mapped column {src:?} (for {f}) not found; columns present: {}",
                    path.display(),
                    t.names.join(", ")
                );
            }
        }
        let missing: Vec<&str> = REQUIRED
            .iter()
            .copied()
            .filter(|f| !idx.contains_key(f))
            .collect();
        if !missing.is_empty() || !(idx.contains_key("volume") || idx.contains_key("amount")) {
            let mut need: Vec<String> = missing.iter().map(|s| s.to_string()).collect();
            if !(idx.contains_key("volume") || idx.contains_key("amount")) {
                need.push("volume or amount".into());
            }
            bail!(
                "{}: missing required column(s) {} (columns present: {}); map them with --mapping",
                path.display(),
                need.join(", "),
                t.names.join(", ")
            );
        }
        for f in COLUMNS {
            let e = self.present.entry(f.to_string()).or_insert(true);
            *e &= idx.contains_key(f);
        }
        let fi = bars.origin_files.len() as u32;
        bars.origin_files.push(path.clone());
        let scale = |f: &str| self.mapping.scale.get(f).copied().unwrap_or(1.0);
        for i in 0..n {
            let w = |f: &str| {
                let src = self.mapping.columns.get(f).map(|s| s.as_str()).unwrap_or(f);
                loc(path, &t, i, src)
            };
            let date = get_date(&t.cols[idx["trade_date"]], i, || w("trade_date"))?
                .ok_or_else(|| anyhow!("{}: missing trade_date", w("trade_date")))?;
            let code = get_str(&t.cols[idx["code"]], i)
                .ok_or_else(|| anyhow!("{}: missing code", w("code")))?;
            let num = |f: &str| -> Result<f64> {
                match idx.get(f) {
                    Some(&j) => Ok(get_f64(&t.cols[j], i, || w(f))? * scale(f)),
                    None => Ok(f64::NAN),
                }
            };
            let (o, h, l, c) = (num("open")?, num("high")?, num("low")?, num("close")?);
            let susp = match idx.get("is_suspended") {
                Some(&j) => get_bool(&t.cols[j], i, || w("is_suspended"))?,
                None => false,
            };
            if !susp && [o, h, l, c].iter().any(|x| x.is_nan()) {
                *self
                    .cleaning
                    .entry("missing_price_dropped".into())
                    .or_default() += 1;
                continue;
            }
            let (vol, amt) = (num("volume")?, num("amount")?);
            if !susp {
                let bad = [("open", o), ("high", h), ("low", l), ("close", c)]
                    .into_iter()
                    .find(|(_, v)| *v <= 0.0)
                    .map(|(f, v)| format!("{}: non-positive price {v}", w(f)))
                    .or_else(|| (h < l).then(|| format!("{}: high {h} < low {l}", w("high"))))
                    .or_else(|| {
                        (vol < 0.0).then(|| format!("{}: negative volume {vol}", w("volume")))
                    })
                    .or_else(|| {
                        (amt < 0.0).then(|| format!("{}: negative amount {amt}", w("amount")))
                    });
                if let Some(msg) = bad {
                    match self.p.bad_rows {
                        BadRows::Error => bail!("{msg} (use --bad-rows drop to drop such rows)"),
                        BadRows::Drop => {
                            *self.cleaning.entry("bad_rows_dropped".into()).or_default() += 1;
                            continue;
                        }
                    }
                }
            }
            let (mut hh, mut ll) = (h, l);
            if !susp && (h < o.max(c) || l > o.min(c)) {
                hh = h.max(o).max(c);
                ll = l.min(o).min(c);
                *self.cleaning.entry("ohlc_repaired".into()).or_default() += 1;
            }
            bars.trade_date.push(date);
            bars.code.push(self.codes.get(&code));
            bars.open.push(o);
            bars.high.push(hh);
            bars.low.push(ll);
            bars.close.push(c);
            bars.pre_close.push(num("pre_close")?);
            bars.volume.push(vol);
            bars.amount.push(amt);
            bars.adj_factor.push(num("adj_factor")?);
            bars.is_st.push(match idx.get("is_st") {
                Some(&j) => get_bool(&t.cols[j], i, || w("is_st"))?,
                None => false,
            });
            bars.is_suspended.push(susp);
            bars.industry.push(
                idx.get("industry")
                    .and_then(|&j| get_str(&t.cols[j], i))
                    .map(|s| self.inds.get(&s))
                    .unwrap_or(NO_INDUSTRY),
            );
            bars.total_mv.push(num("total_mv")?);
            bars.circ_mv.push(num("circ_mv")?);
            bars.up_limit.push(num("up_limit")?);
            bars.down_limit.push(num("down_limit")?);
            bars.list_date.push(match idx.get("list_date") {
                Some(&j) => get_date(&t.cols[j], i, || w("list_date"))?.unwrap_or(NO_DATE),
                None => NO_DATE,
            });
            bars.origin
                .push((fi, i as u32 + t.line_offset.unwrap_or(1) as u32));
        }
        Ok(())
    }

    /// Clean a chunk of whole dates: the `--meta` join, sort, checks, `pre_close` and
    /// `adj_factor` from the carried state.
    pub fn finish(&mut self, mut bars: RawBars) -> Result<RawBars> {
        let mapping = &self.mapping;
        let p = &self.p;
        if let Some(meta) = &p.meta {
            let (joined, note) =
                join_meta(&mut bars, &self.codes.names, &mut self.inds, meta, mapping)?;
            let h = (meta.display().to_string(), sha256_file(meta)?);
            if !self.input_hashes.contains(&h) {
                self.input_hashes.push(h);
            }
            for j in joined {
                if !self.from_meta.contains(&j) {
                    self.from_meta.push(j);
                }
            }
            if let Some(n) = note.filter(|n| !self.notes.contains(n)) {
                self.notes.push(n);
            }
        }
        bars.code_names = self.codes.names.clone();
        bars.industry_names = self.inds.names.clone();
        self.rows += bars.len();
        if bars.is_empty() {
            return Ok(bars);
        }
        bars.sort();
        bars.validate()?;
        self.carry.fit(bars.code_names.len());
        let moves = fill_and_adjust(
            &mut bars,
            &self.present,
            p,
            &mut self.carry,
            &mut self.cleaning,
        );
        self.moves.extend(moves);
        if mapping.adjusted {
            // Prices are final: no factor from pre_close, none inferred.
            bars.adj_factor.iter_mut().for_each(|x| *x = 1.0);
        }
        Ok(bars)
    }

    /// The report, once every chunk is finished; an error if no chunk had a bar.
    pub fn report(self) -> Result<Report> {
        let Ingest {
            p,
            mapping,
            cleaning,
            present,
            input_hashes,
            moves,
            mut notes,
            from_meta,
            rows,
            ..
        } = self;
        if rows == 0 {
            bail!("no usable bars in {}", p.glob);
        }
        let mut columns = BTreeMap::new();
        for f in COLUMNS {
            let how = if from_meta.contains(&f) {
                "joined by code from --meta"
            } else if present[f] {
                "provided"
            } else {
                match f {
                    "pre_close" => "filled: previous close of the same code",
                    "adj_factor" if mapping.adjusted => {
                        "filled: 1.0 (the mapping says the prices are adjusted)"
                    }
                    "adj_factor" if present["pre_close"] => {
                        "derived from pre_close (corporate actions where pre_close != previous close)"
                    }
                    "adj_factor" if p.infer_splits != SplitInference::Off => {
                        "filled: 1.0, times inferred split ratios (prices are otherwise taken as given)"
                    }
                    "adj_factor" => {
                        "filled: 1.0 (prices taken as already adjusted or unadjusted, as given)"
                    }
                    "is_st" => "filled: false",
                    "is_suspended" => "filled: false (a missing bar means suspended)",
                    "industry" => "absent: one group",
                    "total_mv" | "circ_mv" => {
                        "absent: NaN (size neutralization and turnover unavailable)"
                    }
                    "list_date" => "absent: first bar (seasoned if present on the first day)",
                    "up_limit" | "down_limit" => "absent: the market profile's limit rule",
                    "volume" | "amount" => "absent: NaN",
                    _ => "absent",
                }
            };
            columns.insert(f.to_string(), how.to_string());
        }
        // One warning per absent field (issue 20: a source without volume was accepted
        // silently and GP then spent candidates on all-NaN fields).
        notes.extend(
            columns
                .iter()
                .filter(|(_, how)| how.starts_with("absent"))
                .map(|(f, how)| {
                    format!(
                        "no {f} in the source: {}",
                        how.trim_start_matches("absent").trim_start_matches(": ")
                    )
                }),
        );
        Ok(Report {
            columns,
            cleaning,
            notes,
            moves,
            input_hashes,
        })
    }
}

/// Map, clean and sort the bars of `tables` (read one at a time) under `p`'s mapping
/// and rules: the files source's logic, shared by every tabular source.
pub fn ingest_tables(
    p: &FilesParams,
    tables: impl IntoIterator<Item = Result<Source>>,
) -> Result<Ingested> {
    let mut ing = Ingest::new(p)?;
    let mut bars = RawBars::default();
    for src in tables {
        ing.add(src?, &mut bars)?;
    }
    let bars = ing.finish(bars)?;
    let report = ing.report()?;
    Ok(Ingested { bars, report })
}

const SPLIT_RATIOS: [f64; 12] = [
    2.0,
    3.0,
    4.0,
    5.0,
    10.0,
    1.5,
    0.5,
    1.0 / 3.0,
    0.25,
    0.2,
    0.1,
    2.0 / 3.0,
];

/// Fill pre_close and adj_factor per code (rows sorted by date, code); returns every
/// inferred split and kept large move.
fn fill_and_adjust(
    bars: &mut RawBars,
    present: &BTreeMap<String, bool>,
    p: &FilesParams,
    carry: &mut Carry,
    cleaning: &mut BTreeMap<String, u64>,
) -> Vec<Move> {
    let Carry {
        last_close,
        adj,
        seen,
    } = carry;
    let has_adj = present["adj_factor"];
    let has_pre = present["pre_close"];
    let mut moves = Vec::new();
    for i in 0..bars.len() {
        let c = bars.code[i] as usize;
        if bars.is_suspended[i] {
            if !has_adj {
                bars.adj_factor[i] = adj[c];
            }
            continue;
        }
        let prev = last_close[c];
        if bars.pre_close[i].is_nan() && prev.is_finite() {
            bars.pre_close[i] = prev;
            if has_pre {
                *cleaning.entry("pre_close_filled".into()).or_default() += 1;
            }
        }
        if !has_adj {
            if prev.is_finite() {
                if has_pre {
                    let pc = bars.pre_close[i];
                    if pc > 0.0 && (prev / pc - 1.0).abs() > 1e-6 {
                        adj[c] *= prev / pc;
                        *cleaning.entry("adj_from_pre_close".into()).or_default() += 1;
                    }
                } else {
                    let code = &bars.code_names[c];
                    let ratio = bars.close[i] / prev;
                    let beyond = p.market.beyond_limit(code, bars.is_st[i], ratio);
                    let has_limit = p.market.limit_pct(code, bars.is_st[i], false).is_some();
                    let allowed = match p.infer_splits {
                        SplitInference::Off => false,
                        SplitInference::Auto => beyond,
                        SplitInference::Always => true,
                    };
                    let split = SPLIT_RATIOS
                        .iter()
                        .copied()
                        .find(|k| (ratio.ln() - k.ln()).abs() < 0.03 && ratio.ln().abs() > 0.35)
                        .filter(|_| allowed);
                    let action = if let Some(k) = split {
                        adj[c] /= k;
                        *cleaning.entry("splits_inferred".into()).or_default() += 1;
                        Some(("split", k))
                    } else if p.market.is_break(code, bars.is_st[i], seen[c], ratio, prev) {
                        *cleaning.entry("breaks".into()).or_default() += 1;
                        Some(("break", f64::NAN))
                    } else if beyond || (!has_limit && (ratio - 1.0).abs() > 0.4) {
                        *cleaning.entry("large_jumps_kept".into()).or_default() += 1;
                        Some(("kept", f64::NAN))
                    } else {
                        None
                    };
                    if let Some((what, k)) = action {
                        moves.push(Move {
                            code: code.clone(),
                            date: format_date(bars.trade_date[i]),
                            ratio,
                            action: what.into(),
                            split_ratio: k.is_finite().then_some(k),
                        });
                    }
                }
            }
            bars.adj_factor[i] = adj[c];
        }
        last_close[c] = bars.close[i];
        seen[c] += 1;
    }
    moves
}

/// Join a static metadata table (`--meta`) onto the bars by code: `industry` and
/// `list_date` columns, whichever it has. With a date column (`start_date`, `in_date`
/// or `trade_date`) a row holds from its date until the code's next row (point in
/// time: a bar before a code's first dated row gets no industry from it); without one
/// each code has one row for all dates. Returns the fields joined and a note on codes
/// the table does not cover.
fn join_meta(
    bars: &mut RawBars,
    code_names: &[String],
    inds: &mut Interner,
    path: &Path,
    mapping: &Mapping,
) -> Result<(Vec<&'static str>, Option<String>)> {
    let t = read_table(path).with_context(|| format!("--meta {}", path.display()))?;
    let col = |n: &str| t.names.iter().position(|x| x == n);
    let mapped = |f: &str| mapping.columns.get(f).and_then(|c| col(c));
    let code = col("code").or_else(|| mapped("code")).ok_or_else(|| {
        anyhow!(
            "--meta {}: needs a `code` column (columns present: {})",
            path.display(),
            t.names.join(", ")
        )
    })?;
    let ind = col("industry").or_else(|| mapped("industry"));
    let lst = col("list_date").or_else(|| mapped("list_date"));
    if ind.is_none() && lst.is_none() {
        bail!(
            "--meta {}: has neither `industry` nor `list_date` (columns present: {})",
            path.display(),
            t.names.join(", ")
        );
    }
    let from = ["start_date", "in_date", "trade_date"]
        .iter()
        .find_map(|n| col(n));
    let n = t.cols[code].len();
    // Per code: (from date, industry, list_date), sorted by date.
    type Row = (i32, Option<u32>, Option<i32>);
    let mut rows: std::collections::HashMap<String, Vec<Row>> = Default::default();
    for i in 0..n {
        let c = get_str(&t.cols[code], i)
            .ok_or_else(|| anyhow!("{}: missing code", loc(path, &t, i, "code")))?;
        let day = match from {
            Some(j) => get_date(&t.cols[j], i, || loc(path, &t, i, &t.names[j]))?
                .ok_or_else(|| anyhow!("{}: missing date", loc(path, &t, i, &t.names[j])))?,
            None => i32::MIN,
        };
        let g = ind
            .and_then(|j| get_str(&t.cols[j], i))
            .map(|s| inds.get(&s));
        let l = match lst {
            Some(j) => get_date(&t.cols[j], i, || loc(path, &t, i, "list_date"))?,
            None => None,
        };
        rows.entry(c).or_default().push((day, g, l));
    }
    for (c, r) in rows.iter_mut() {
        r.sort_by_key(|x| x.0);
        if from.is_none() && r.len() > 1 {
            bail!(
                "--meta {}: code {c} has {} rows; without a start_date column each code needs one",
                path.display(),
                r.len()
            );
        }
        if r.windows(2).any(|w| w[0].0 == w[1].0) {
            bail!(
                "--meta {}: code {c} has two rows for one date",
                path.display()
            );
        }
    }
    let per_code: Vec<Option<&Vec<Row>>> = code_names.iter().map(|c| rows.get(c)).collect();
    for i in 0..bars.len() {
        let Some(r) = per_code[bars.code[i] as usize] else {
            continue;
        };
        let k = r.partition_point(|x| x.0 <= bars.trade_date[i]);
        if k == 0 {
            if ind.is_some() {
                bars.industry[i] = NO_INDUSTRY;
            }
            continue;
        }
        let (_, g, l) = r[k - 1];
        if ind.is_some() {
            bars.industry[i] = g.unwrap_or(NO_INDUSTRY);
        }
        if lst.is_some() {
            bars.list_date[i] = l.unwrap_or(NO_DATE);
        }
    }
    let uncovered = per_code.iter().filter(|r| r.is_none()).count();
    let mut joined = Vec::new();
    if ind.is_some() {
        joined.push("industry");
    }
    if lst.is_some() {
        joined.push("list_date");
    }
    let note = (uncovered > 0).then(|| {
        format!(
            "--meta {} covers {} of {} codes; the other {uncovered} have no {}",
            path.display(),
            code_names.len() - uncovered,
            code_names.len(),
            joined.join(" / ")
        )
    });
    Ok((joined, note))
}

/// Read an index-membership file: `code` plus `trade_date` (one row per member day) or
/// `in_date` / `out_date` (ranges; an empty out_date means still a member).
pub fn read_universe(path: &Path) -> Result<Universe> {
    let t = read_table(path).with_context(|| format!("universe file {}", path.display()))?;
    let col = |n: &str| t.names.iter().position(|x| x == n);
    let code = col("code").ok_or_else(|| {
        anyhow!(
            "universe file {}: needs a `code` column (columns present: {})",
            path.display(),
            t.names.join(", ")
        )
    })?;
    let n = t.cols[code].len();
    let mut u = Universe::default();
    if let Some(d) = col("trade_date") {
        for i in 0..n {
            let c = get_str(&t.cols[code], i)
                .ok_or_else(|| anyhow!("{}: missing code", loc(path, &t, i, "code")))?;
            let day = get_date(&t.cols[d], i, || loc(path, &t, i, "trade_date"))?
                .ok_or_else(|| anyhow!("{}: missing date", loc(path, &t, i, "trade_date")))?;
            u.members.entry(c).or_default().push((day, day));
        }
    } else if let Some(a) = col("in_date") {
        let b = col("out_date");
        for i in 0..n {
            let c = get_str(&t.cols[code], i)
                .ok_or_else(|| anyhow!("{}: missing code", loc(path, &t, i, "code")))?;
            let from = get_date(&t.cols[a], i, || loc(path, &t, i, "in_date"))?.unwrap_or(i32::MIN);
            let to = match b {
                Some(b) => {
                    get_date(&t.cols[b], i, || loc(path, &t, i, "out_date"))?.unwrap_or(i32::MAX)
                }
                None => i32::MAX,
            };
            u.members.entry(c).or_default().push((from, to));
        }
    } else {
        bail!(
            "universe file {}: needs `trade_date` or `in_date`/`out_date` columns beside `code`",
            path.display()
        );
    }
    Ok(u)
}
