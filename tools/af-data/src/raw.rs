//! Raw daily bars (docs/data_contract.md): in memory as columns, on disk as Parquet files
//! partitioned by year (`year=YYYY/part-0.parquet`, zstd), sorted by (trade_date, code).
//!
//! Codes and industries are interned (`u32` indices into name tables) so the `full`
//! market's 12.5 M rows cost a few hundred MB, not gigabytes of small strings. Every
//! row remembers where it came from (file, row) so that validation errors can name
//! them.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use af_panel::dates::{format_date, year_of};
use af_store::Provenance;
use anyhow::{Context, Result, anyhow, bail};
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

pub const NO_INDUSTRY: u32 = u32::MAX;

/// The contract's column names, in file order.
pub const COLUMNS: [&str; 18] = [
    "trade_date",
    "code",
    "open",
    "high",
    "low",
    "close",
    "pre_close",
    "volume",
    "amount",
    "adj_factor",
    "is_st",
    "is_suspended",
    "industry",
    "total_mv",
    "circ_mv",
    "list_date",
    "up_limit",
    "down_limit",
];
pub const REQUIRED: [&str; 6] = ["trade_date", "code", "open", "high", "low", "close"];

/// Column-oriented raw bars. Numeric NaN = missing; `list_date` uses `i32::MIN`.
#[derive(Debug, Default, Clone)]
pub struct RawBars {
    pub trade_date: Vec<i32>,
    pub code: Vec<u32>,
    pub code_names: Vec<String>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub pre_close: Vec<f64>,
    pub volume: Vec<f64>,
    pub amount: Vec<f64>,
    pub adj_factor: Vec<f64>,
    pub is_st: Vec<bool>,
    pub is_suspended: Vec<bool>,
    pub industry: Vec<u32>,
    pub industry_names: Vec<String>,
    pub total_mv: Vec<f64>,
    pub circ_mv: Vec<f64>,
    pub list_date: Vec<i32>,
    /// The exchange's limit prices for the day (unadjusted, Tushare's `stk_limit`);
    /// NaN when the source does not give them (panel-build then applies the market
    /// profile's rule) or the bar has no limit.
    pub up_limit: Vec<f64>,
    pub down_limit: Vec<f64>,
    /// Where each row came from: index into `origin_files` and the 1-based data row
    /// (for CSV files, the file line).
    pub origin: Vec<(u32, u32)>,
    pub origin_files: Vec<PathBuf>,
}

pub const NO_DATE: i32 = i32::MIN;

/// Interns strings to dense indices.
#[derive(Default)]
pub struct Interner {
    pub names: Vec<String>,
    map: HashMap<String, u32>,
}

impl Interner {
    pub fn from_names(names: Vec<String>) -> Self {
        let map = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        Self { names, map }
    }
    pub fn lookup(&self, s: &str) -> Option<u32> {
        self.map.get(s).copied()
    }

    pub fn get(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.to_string());
        self.map.insert(s.to_string(), i);
        i
    }
}

impl RawBars {
    pub fn len(&self) -> usize {
        self.trade_date.len()
    }
    pub fn is_empty(&self) -> bool {
        self.trade_date.is_empty()
    }

    /// "file F, row R" for error messages.
    pub fn where_(&self, i: usize) -> String {
        match self.origin.get(i) {
            Some((f, r)) => {
                let file = self.origin_files.get(*f as usize);
                // CSV origins are file lines (header = line 1); Parquet origins are rows.
                let unit = if file
                    .is_some_and(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")))
                {
                    "line"
                } else {
                    "row"
                };
                format!(
                    "{} {unit} {r}",
                    file.map(|p| p.display().to_string()).unwrap_or_default()
                )
            }
            None => format!("row {}", i + 1),
        }
    }

    /// Append `other`'s rows (codes and industries matched by name), then sort.
    pub fn extend_from(&mut self, mut other: RawBars) {
        self.pad_limits();
        other.pad_limits();
        let mut codes = Interner::from_names(std::mem::take(&mut self.code_names));
        let mut inds = Interner::from_names(std::mem::take(&mut self.industry_names));
        let cmap: Vec<u32> = other.code_names.iter().map(|c| codes.get(c)).collect();
        let imap: Vec<u32> = other.industry_names.iter().map(|c| inds.get(c)).collect();
        self.code
            .extend(other.code.iter().map(|&c| cmap[c as usize]));
        self.industry.extend(other.industry.iter().map(|&g| {
            if g == NO_INDUSTRY {
                g
            } else {
                imap[g as usize]
            }
        }));
        self.trade_date.extend(other.trade_date);
        self.open.extend(other.open);
        self.high.extend(other.high);
        self.low.extend(other.low);
        self.close.extend(other.close);
        self.pre_close.extend(other.pre_close);
        self.volume.extend(other.volume);
        self.amount.extend(other.amount);
        self.adj_factor.extend(other.adj_factor);
        self.is_st.extend(other.is_st);
        self.is_suspended.extend(other.is_suspended);
        self.total_mv.extend(other.total_mv);
        self.circ_mv.extend(other.circ_mv);
        self.list_date.extend(other.list_date);
        self.up_limit.extend(other.up_limit);
        self.down_limit.extend(other.down_limit);
        let nf = self.origin_files.len() as u32;
        self.origin
            .extend(other.origin.iter().map(|(f, r)| (f + nf, *r)));
        self.origin_files.extend(other.origin_files);
        self.code_names = codes.names;
        self.industry_names = inds.names;
        self.sort();
    }

    /// Reorder rows by (trade_date, code name).
    pub fn sort(&mut self) {
        let mut rank = vec![0u32; self.code_names.len()];
        let mut by_name: Vec<u32> = (0..self.code_names.len() as u32).collect();
        by_name.sort_by(|a, b| self.code_names[*a as usize].cmp(&self.code_names[*b as usize]));
        for (r, c) in by_name.iter().enumerate() {
            rank[*c as usize] = r as u32;
        }
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.sort_by_key(|&i| (self.trade_date[i], rank[self.code[i] as usize], i));
        self.permute(&idx);
    }

    /// Keep rows `idx` in that order.
    pub fn permute(&mut self, idx: &[usize]) {
        fn p<T: Clone>(v: &mut Vec<T>, idx: &[usize]) {
            if !v.is_empty() {
                *v = idx.iter().map(|&i| v[i].clone()).collect();
            }
        }
        p(&mut self.trade_date, idx);
        p(&mut self.code, idx);
        p(&mut self.open, idx);
        p(&mut self.high, idx);
        p(&mut self.low, idx);
        p(&mut self.close, idx);
        p(&mut self.pre_close, idx);
        p(&mut self.volume, idx);
        p(&mut self.amount, idx);
        p(&mut self.adj_factor, idx);
        p(&mut self.is_st, idx);
        p(&mut self.is_suspended, idx);
        p(&mut self.industry, idx);
        p(&mut self.total_mv, idx);
        p(&mut self.circ_mv, idx);
        p(&mut self.list_date, idx);
        p(&mut self.up_limit, idx);
        p(&mut self.down_limit, idx);
        p(&mut self.origin, idx);
    }

    /// The bad-input checks every source and the panel builder apply. Rows must be
    /// sorted. Errors name the file, row and column.
    pub fn validate(&self) -> Result<()> {
        for i in 0..self.len() {
            if i > 0
                && self.trade_date[i] == self.trade_date[i - 1]
                && self.code[i] == self.code[i - 1]
            {
                bail!(
                    "duplicate bar for ({}, {}): {} and {}",
                    format_date(self.trade_date[i]),
                    self.code_names[self.code[i] as usize],
                    self.where_(i - 1),
                    self.where_(i)
                );
            }
            if self.is_suspended[i] {
                continue;
            }
            for (col, v) in [
                ("open", self.open[i]),
                ("high", self.high[i]),
                ("low", self.low[i]),
                ("close", self.close[i]),
            ] {
                if !(v > 0.0) || !v.is_finite() {
                    bail!(
                        "{}, column {col}: non-positive or missing price {v}",
                        self.where_(i)
                    );
                }
            }
            if self.high[i] < self.low[i] {
                bail!(
                    "{}, column high: high {} < low {}",
                    self.where_(i),
                    self.high[i],
                    self.low[i]
                );
            }
            for (col, v) in [("volume", self.volume[i]), ("amount", self.amount[i])] {
                if v < 0.0 {
                    bail!("{}, column {col}: negative {col} {v}", self.where_(i));
                }
            }
            if self.adj_factor[i].is_finite() && self.adj_factor[i] <= 0.0 {
                bail!(
                    "{}, column adj_factor: non-positive adj_factor {}",
                    self.where_(i),
                    self.adj_factor[i]
                );
            }
        }
        Ok(())
    }

    /// Pad the limit-price columns with NaN to the row count: sources without limit
    /// prices leave them empty.
    pub fn pad_limits(&mut self) {
        let n = self.len();
        self.up_limit.resize(n, f64::NAN);
        self.down_limit.resize(n, f64::NAN);
    }

    /// The day's (up, down) limit prices from the source, when it gave them.
    pub fn limits_of(&self, i: usize) -> Option<(f64, f64)> {
        let (u, d) = (*self.up_limit.get(i)?, *self.down_limit.get(i)?);
        (u.is_finite() && d.is_finite()).then_some((u, d))
    }

    fn slice_batch(&self, rows: std::ops::Range<usize>) -> Result<RecordBatch> {
        let r = rows.clone();
        let f = |v: &Vec<f64>| -> ArrayRef {
            if v.is_empty() {
                return Arc::new(Float64Array::from(vec![None::<f64>; r.len()]));
            }
            Arc::new(Float64Array::from_iter(
                v[r.clone()]
                    .iter()
                    .map(|x| if x.is_nan() { None } else { Some(*x) }),
            ))
        };
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Date32Array::from(self.trade_date[r.clone()].to_vec())),
            Arc::new(StringArray::from_iter_values(
                self.code[r.clone()]
                    .iter()
                    .map(|c| &self.code_names[*c as usize]),
            )),
            f(&self.open),
            f(&self.high),
            f(&self.low),
            f(&self.close),
            f(&self.pre_close),
            f(&self.volume),
            f(&self.amount),
            f(&self.adj_factor),
            Arc::new(BooleanArray::from(self.is_st[r.clone()].to_vec())),
            Arc::new(BooleanArray::from(self.is_suspended[r.clone()].to_vec())),
            Arc::new(StringArray::from_iter(self.industry[r.clone()].iter().map(
                |g| (*g != NO_INDUSTRY).then(|| self.industry_names[*g as usize].as_str()),
            ))),
            f(&self.total_mv),
            f(&self.circ_mv),
            Arc::new(Date32Array::from_iter(
                self.list_date[r.clone()]
                    .iter()
                    .map(|d| (*d != NO_DATE).then_some(*d)),
            )),
            f(&self.up_limit),
            f(&self.down_limit),
        ];
        Ok(RecordBatch::try_new(raw_schema(), cols)?)
    }

    /// Write year partitions under `dir` (rows must be sorted). Returns (relative path,
    /// rows) per file. A partition's metadata is the provenance without the fetch's
    /// `end` (plus its `year`), so a year's file depends on that year's rows and the
    /// source, not on how far the fetch reached.
    ///
    /// `keep`: an update's previous folder and the first year its new dates touch.
    /// Earlier years are taken from that folder as they are (hard-linked, else copied)
    /// when the file there carries the same metadata — same rows, same bytes — instead
    /// of being rewritten.
    pub fn write_partitions(
        &self,
        dir: &Path,
        prov: &Provenance,
        keep: Option<(&Path, i32)>,
    ) -> Result<Partitions> {
        let mut out = Partitions::default();
        let mut start = 0;
        while start < self.len() {
            let year = year_of(self.trade_date[start]);
            let mut end = start;
            while end < self.len() && year_of(self.trade_date[end]) == year {
                end += 1;
            }
            let rel = format!("year={year}/part-0.parquet");
            let path = dir.join(&rel);
            std::fs::create_dir_all(path.parent().unwrap_or(dir))
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let mut part = prov.clone();
            part.params.remove("end");
            part.params.insert("year".into(), year.into());
            let kv: Vec<KeyValue> = part
                .to_kv()
                .into_iter()
                .map(|(k, v)| KeyValue::new(k, v))
                .collect();
            let old = keep
                .filter(|(_, touched)| year < *touched)
                .map(|(d, _)| d.join(&rel))
                .filter(|o| same_metadata(o, &kv));
            if let Some(old) = old {
                if std::fs::hard_link(&old, &path).is_err() {
                    std::fs::copy(&old, &path).with_context(|| {
                        format!("cannot copy {} to {}", old.display(), path.display())
                    })?;
                }
                out.kept.push(year);
            } else {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
                    .set_max_row_group_row_count(Some(1 << 20))
                    .set_key_value_metadata(Some(kv))
                    .build();
                let file = File::create(&path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                let mut w = ArrowWriter::try_new(file, raw_schema(), Some(props))?;
                let mut s = start;
                while s < end {
                    let e = (s + (1 << 20)).min(end);
                    w.write(&self.slice_batch(s..e)?)?;
                    s = e;
                }
                w.close()?;
                out.written.push(year);
            }
            out.files.push((rel, end - start));
            start = end;
        }
        Ok(out)
    }
}

/// Writes a raw folder chunk by chunk — each chunk whole dates, later than the last
/// (a year of a PostgreSQL table, say) — so a fetch holds one chunk, not the market,
/// and keeps the totals the manifest needs.
pub struct RawWriter {
    dir: PathBuf,
    prov: Provenance,
    keep: Option<(PathBuf, i32)>,
    pub parts: Partitions,
    dates: Vec<i32>,
    rows: usize,
}

impl RawWriter {
    /// `keep`: as [`RawBars::write_partitions`]'s.
    pub fn new(dir: &Path, prov: &Provenance, keep: Option<(&Path, i32)>) -> RawWriter {
        RawWriter {
            dir: dir.to_path_buf(),
            prov: prov.clone(),
            keep: keep.map(|(d, y)| (d.to_path_buf(), y)),
            parts: Partitions::default(),
            dates: Vec::new(),
            rows: 0,
        }
    }

    /// Write a chunk's year partitions (rows sorted). A chunk must start in a later
    /// year than the last one written, or a year file would be written twice.
    pub fn write(&mut self, bars: &RawBars) -> Result<()> {
        if bars.is_empty() {
            return Ok(());
        }
        let first = year_of(bars.trade_date[0]);
        let last_written = self.parts.written.iter().chain(&self.parts.kept).max();
        if let Some(&y) = last_written.filter(|&&y| y >= first) {
            bail!("raw chunks out of order: year {first} after year {y} was written");
        }
        let keep = self.keep.as_ref().map(|(d, y)| (d.as_path(), *y));
        let p = bars.write_partitions(&self.dir, &self.prov, keep)?;
        self.parts.files.extend(p.files);
        self.parts.written.extend(p.written);
        self.parts.kept.extend(p.kept);
        for &d in &bars.trade_date {
            if self.dates.last() != Some(&d) {
                self.dates.push(d);
            }
        }
        self.rows += bars.len();
        Ok(())
    }

    /// Rows and the distinct dates written so far (ascending).
    pub fn totals(&self) -> (usize, &[i32]) {
        (self.rows, &self.dates)
    }
}

/// What [`RawBars::write_partitions`] did.
#[derive(Debug, Default)]
pub struct Partitions {
    /// (relative path, rows) per year file.
    pub files: Vec<(String, usize)>,
    /// Years written now, and years taken unchanged from the previous folder.
    pub written: Vec<i32>,
    pub kept: Vec<i32>,
}

/// The Parquet file at `path` exists and its key-value metadata is `kv` (beside the
/// `ARROW:schema` entry the Arrow writer adds).
fn same_metadata(path: &Path, kv: &[KeyValue]) -> bool {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let Ok(f) = File::open(path) else {
        return false;
    };
    let Ok(r) = SerializedFileReader::new(f) else {
        return false;
    };
    let Some(have) = r.metadata().file_metadata().key_value_metadata() else {
        return false;
    };
    // The Arrow writer adds `ARROW:schema`; the order on disk is the writer's.
    fn pairs(v: &[KeyValue]) -> Vec<(&str, Option<&str>)> {
        let mut p: Vec<(&str, Option<&str>)> = v
            .iter()
            .filter(|k| k.key != "ARROW:schema")
            .map(|k| (k.key.as_str(), k.value.as_deref()))
            .collect();
        p.sort();
        p
    }
    pairs(have) == pairs(kv)
}

pub fn raw_schema() -> Arc<Schema> {
    let f = |n: &str| Field::new(n, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("trade_date", DataType::Date32, false),
        Field::new("code", DataType::Utf8, false),
        f("open"),
        f("high"),
        f("low"),
        f("close"),
        f("pre_close"),
        f("volume"),
        f("amount"),
        f("adj_factor"),
        Field::new("is_st", DataType::Boolean, false),
        Field::new("is_suspended", DataType::Boolean, false),
        Field::new("industry", DataType::Utf8, true),
        f("total_mv"),
        f("circ_mv"),
        Field::new("list_date", DataType::Date32, true),
        f("up_limit"),
        f("down_limit"),
    ]))
}

/// The raw Parquet files under `dir` (`year=*/​*.parquet`), in a stable order.
pub fn partition_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let rd = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read raw folder {}", dir.display()))?;
    let mut parts: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("year="))
        })
        .collect();
    parts.sort();
    for p in parts {
        let mut fs: Vec<PathBuf> = std::fs::read_dir(&p)?
            .flatten()
            .map(|e| e.path())
            .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
            .collect();
        fs.sort();
        files.extend(fs);
    }
    if files.is_empty() {
        bail!(
            "no raw Parquet files under {} (expected year=YYYY/part-0.parquet; run ts-fetch first)",
            dir.display()
        );
    }
    Ok(files)
}

/// The raw partition files under `dir`, oldest year first (see [`read_partition`]).
pub fn partitions(dir: &Path) -> Result<Vec<PathBuf>> {
    partition_files(dir)
}

/// One raw partition file on its own (a year: what an update reads at a time).
pub fn read_partition(path: &Path) -> Result<RawBars> {
    let mut bars = RawBars::default();
    let (mut codes, mut inds) = (Interner::default(), Interner::default());
    bars.origin_files.push(path.to_path_buf());
    read_raw_file(path, 0, &mut bars, &mut codes, &mut inds)
        .with_context(|| format!("raw file {}", path.display()))?;
    bars.code_names = codes.names;
    bars.industry_names = inds.names;
    Ok(bars)
}

/// Read every raw partition under `dir` (as written by `ts-fetch`).
pub fn read_partitions(dir: &Path) -> Result<RawBars> {
    let files = partition_files(dir)?;
    let mut bars = RawBars::default();
    let mut codes = Interner::default();
    let mut inds = Interner::default();
    for (fi, path) in files.iter().enumerate() {
        bars.origin_files.push(path.clone());
        read_raw_file(path, fi as u32, &mut bars, &mut codes, &mut inds)
            .with_context(|| format!("raw file {}", path.display()))?;
    }
    bars.code_names = codes.names;
    bars.industry_names = inds.names;
    Ok(bars)
}

fn read_raw_file(
    path: &Path,
    fi: u32,
    bars: &mut RawBars,
    codes: &mut Interner,
    inds: &mut Interner,
) -> Result<()> {
    let file = File::open(path)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| anyhow!("corrupt or truncated Parquet file: {e}"))?
        .with_batch_size(1 << 16)
        .build()?;
    let mut row = 0u32;
    for batch in reader {
        let batch = batch.map_err(|e| anyhow!("corrupt Parquet data: {e}"))?;
        let col = |name: &str| -> Result<&ArrayRef> {
            batch.column_by_name(name).ok_or_else(|| {
                anyhow!(
                    "missing column {name} (columns present: {})",
                    batch
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        };
        let n = batch.num_rows();
        let date = col("trade_date")?
            .as_primitive_opt::<Date32Type>()
            .ok_or_else(|| anyhow!("column trade_date is not a date"))?;
        if date.null_count() > 0 {
            bail!("column trade_date has missing values");
        }
        bars.trade_date.extend(date.values().iter());
        let code = col("code")?
            .as_string_opt::<i32>()
            .ok_or_else(|| anyhow!("column code is not a string"))?;
        for i in 0..n {
            bars.code.push(codes.get(code.value(i)));
        }
        for (name, dst) in [
            ("open", &mut bars.open),
            ("high", &mut bars.high),
            ("low", &mut bars.low),
            ("close", &mut bars.close),
            ("pre_close", &mut bars.pre_close),
            ("volume", &mut bars.volume),
            ("amount", &mut bars.amount),
            ("adj_factor", &mut bars.adj_factor),
            ("total_mv", &mut bars.total_mv),
            ("circ_mv", &mut bars.circ_mv),
        ] {
            let a = col(name)?
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| anyhow!("column {name} is not f64"))?;
            dst.extend((0..n).map(|i| if a.is_null(i) { f64::NAN } else { a.value(i) }));
        }
        for (name, dst) in [
            ("is_st", &mut bars.is_st),
            ("is_suspended", &mut bars.is_suspended),
        ] {
            let a = col(name)?
                .as_boolean_opt()
                .ok_or_else(|| anyhow!("column {name} is not boolean"))?;
            dst.extend((0..n).map(|i| !a.is_null(i) && a.value(i)));
        }
        let ind = col("industry")?
            .as_string_opt::<i32>()
            .ok_or_else(|| anyhow!("column industry is not a string"))?;
        bars.industry.extend((0..n).map(|i| {
            if ind.is_null(i) {
                NO_INDUSTRY
            } else {
                inds.get(ind.value(i))
            }
        }));
        let ld = col("list_date")?
            .as_primitive_opt::<Date32Type>()
            .ok_or_else(|| anyhow!("column list_date is not a date"))?;
        bars.list_date
            .extend((0..n).map(|i| if ld.is_null(i) { NO_DATE } else { ld.value(i) }));
        // Optional: folders written before the contract had limit prices lack them.
        for (name, dst) in [
            ("up_limit", &mut bars.up_limit),
            ("down_limit", &mut bars.down_limit),
        ] {
            match batch.column_by_name(name) {
                Some(c) => {
                    let a = c
                        .as_primitive_opt::<Float64Type>()
                        .ok_or_else(|| anyhow!("column {name} is not f64"))?;
                    dst.extend((0..n).map(|i| if a.is_null(i) { f64::NAN } else { a.value(i) }));
                }
                None => dst.extend(std::iter::repeat_n(f64::NAN, n)),
            }
        }
        bars.origin.extend((0..n as u32).map(|i| (fi, row + i + 1)));
        row += n as u32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{SynthParams, generate};

    fn inode(p: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().ino()
    }

    #[test]
    fn an_update_keeps_the_years_it_does_not_touch() {
        let tmp = std::env::temp_dir().join(format!("af-raw-keep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let start = af_panel::dates::parse_date("2016-11-01").unwrap();
        let bars = generate(&SynthParams {
            assets: 6,
            days: 120,
            seed: 3,
            start,
            planted: Default::default(),
        })
        .unwrap()
        .bars;
        let prov = |end: &str| {
            Provenance::new("ts-fetch", "t")
                .param("source", "s")
                .param("end", end)
        };
        let (old, new, other) = (tmp.join("old"), tmp.join("new"), tmp.join("other"));
        let first = bars
            .write_partitions(&old, &prov("2017-03-01"), None)
            .unwrap();
        assert_eq!(first.written, vec![2016, 2017]);
        // The update reaches further (another `end`) and touches 2017 only.
        let second = bars
            .write_partitions(&new, &prov("2017-04-30"), Some((&old, 2017)))
            .unwrap();
        assert_eq!((second.kept, second.written), (vec![2016], vec![2017]));
        let y = |d: &Path, y: i32| d.join(format!("year={y}/part-0.parquet"));
        assert_eq!(
            inode(&y(&old, 2016)),
            inode(&y(&new, 2016)),
            "2016 is the same file"
        );
        assert_ne!(inode(&y(&old, 2017)), inode(&y(&new, 2017)));
        // 2017 rewritten is byte-identical too: `end` is not in a partition's metadata.
        assert_eq!(
            std::fs::read(y(&old, 2017)).unwrap(),
            std::fs::read(y(&new, 2017)).unwrap()
        );
        // Other provenance (another source): nothing is kept.
        let p = Provenance::new("ts-fetch", "t").param("source", "other");
        let third = bars
            .write_partitions(&other, &p, Some((&old, 2017)))
            .unwrap();
        assert!(third.kept.is_empty());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
