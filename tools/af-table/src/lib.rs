//! Tidy tables in and out.
//!
//! Every tool that writes a table (factor values, fitness rows, candidates, libraries)
//! writes it through [`write_parquet`]: zstd, the producing tool's provenance in the
//! key-value metadata, and an atomic rename, so no reader ever sees half a file. A
//! [`Table`] is built column by column; [`read_parquet`] reads one back, naming the file
//! in every error.

pub mod candidates;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use af_store::{Provenance, write_atomic};
use anyhow::{Context, Result, bail};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt32Type};
use arrow_array::{
    Array, ArrayAccessor, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array,
    RecordBatch, StringArray, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

pub use arrow_array;
pub use arrow_select;

/// Column-by-column builder of one record batch.
#[derive(Default)]
pub struct Table {
    fields: Vec<Field>,
    cols: Vec<ArrayRef>,
}

impl Table {
    pub fn new() -> Self {
        Self::default()
    }
    /// A batch read back (e.g. rows of several files joined), to be written again.
    pub fn from_batch(b: RecordBatch) -> Self {
        let schema = b.schema();
        Table {
            fields: schema.fields().iter().map(|f| f.as_ref().clone()).collect(),
            cols: b.columns().to_vec(),
        }
    }
    fn push(mut self, name: &str, nullable: bool, a: ArrayRef) -> Self {
        self.fields
            .push(Field::new(name, a.data_type().clone(), nullable));
        self.cols.push(a);
        self
    }
    /// A long table's keys for cells `t·na + a` of a `[date][asset]` grid: `date` and
    /// `code` columns (what predictions, dumps and factor values are written with).
    pub fn cells(dates: &[i32], codes: &[String], cells: &[usize]) -> Self {
        let na = codes.len();
        Table::new()
            .date("date", cells.iter().map(|&c| dates[c / na]).collect())
            .str("code", cells.iter().map(|&c| codes[c % na].as_str()))
    }
    /// f64 column; NaN stays NaN (not null), as pandas reads it.
    pub fn f64(self, name: &str, v: Vec<f64>) -> Self {
        self.push(name, false, Arc::new(Float64Array::from(v)))
    }
    pub fn i64(self, name: &str, v: Vec<i64>) -> Self {
        self.push(name, false, Arc::new(Int64Array::from(v)))
    }
    pub fn u32(self, name: &str, v: Vec<u32>) -> Self {
        self.push(name, false, Arc::new(UInt32Array::from(v)))
    }
    pub fn bool(self, name: &str, v: Vec<bool>) -> Self {
        self.push(name, false, Arc::new(BooleanArray::from(v)))
    }
    /// Days since 1970-01-01.
    pub fn date(self, name: &str, v: Vec<i32>) -> Self {
        self.push(name, false, Arc::new(Date32Array::from(v)))
    }
    pub fn str<S: AsRef<str>>(self, name: &str, v: impl IntoIterator<Item = S>) -> Self {
        self.push(name, false, Arc::new(StringArray::from_iter_values(v)))
    }
    /// Nullable strings (e.g. "which library factor", absent when there is no library).
    pub fn opt_str(self, name: &str, v: Vec<Option<String>>) -> Self {
        self.push(name, true, Arc::new(StringArray::from(v)))
    }
    pub fn len(&self) -> usize {
        self.cols.first().map_or(0, |c| c.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn into_batch(self) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(self.fields)),
            self.cols,
        )?)
    }
}

/// Writer properties every artifact shares: zstd level 3 and the provenance as
/// key-value metadata (pyarrow: `pq.read_metadata(path).metadata`).
pub fn properties(prov: &Provenance, extra: &[(String, String)]) -> Result<WriterProperties> {
    let kv: Vec<KeyValue> = prov
        .to_kv()
        .into_iter()
        .chain(extra.iter().cloned())
        .map(|(k, v)| KeyValue::new(k, v))
        .collect();
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(1 << 20))
        .set_key_value_metadata(Some(kv))
        .build())
}

/// Write `table` to `path` atomically (temp file, fsync, rename).
pub fn write_parquet(path: &Path, table: Table, prov: &Provenance) -> Result<()> {
    write_parquet_kv(path, table, prov, &[])
}

/// As [`write_parquet`], with extra key-value metadata entries (e.g. a library's own
/// description).
pub fn write_parquet_kv(
    path: &Path,
    table: Table,
    prov: &Provenance,
    extra: &[(String, String)],
) -> Result<()> {
    let batch = table.into_batch()?;
    let props = properties(prov, extra)?;
    write_atomic(path, |w| {
        let mut aw = ArrowWriter::try_new(w, batch.schema(), Some(props))?;
        // Row groups of 1 M rows keep memory bounded for wide factor tables.
        let mut s = 0;
        while s < batch.num_rows() {
            let e = (s + (1 << 20)).min(batch.num_rows());
            aw.write(&batch.slice(s, e - s))?;
            s = e;
        }
        aw.close()?;
        Ok(())
    })
    .with_context(|| format!("cannot write {}", path.display()))
}

/// Append a text array's values (nulls as empty strings), whatever its encoding.
fn push_strings<'a>(a: impl ArrayAccessor<Item = &'a str>, out: &mut Vec<String>) {
    out.extend((0..a.len()).map(|i| {
        if a.is_null(i) {
            String::new()
        } else {
            a.value(i).to_string()
        }
    }));
}

/// A whole Parquet file: its batches and key-value metadata.
pub struct ReadTable {
    pub batches: Vec<RecordBatch>,
    pub metadata: BTreeMap<String, String>,
    pub schema: Arc<Schema>,
}

/// Read `path`; a missing, truncated or non-Parquet file is an error naming it.
pub fn read_parquet(path: &Path) -> Result<ReadTable> {
    let inner = || -> Result<ReadTable> {
        let f = File::open(path)?;
        let b = ParquetRecordBatchReaderBuilder::try_new(f)?;
        let metadata = b
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .map(|kv| {
                kv.iter()
                    .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let schema = b.schema().clone();
        let batches = b.build()?.collect::<Result<Vec<_>, _>>()?;
        Ok(ReadTable {
            batches,
            metadata,
            schema,
        })
    };
    inner().with_context(|| format!("cannot read Parquet file {}", path.display()))
}

impl ReadTable {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
    pub fn has_column(&self, name: &str) -> bool {
        self.schema.field_with_name(name).is_ok()
    }
    fn columns(&self, name: &str) -> Result<Vec<&ArrayRef>> {
        if !self.has_column(name) {
            let have: Vec<&str> = self
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            bail!("no column {name:?} (columns: {})", have.join(", "));
        }
        Ok(self
            .batches
            .iter()
            .filter_map(|b| b.column_by_name(name))
            .collect())
    }
    /// A string column; nulls become empty strings.
    pub fn strings(&self, name: &str) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(self.num_rows());
        for c in self.columns(name)? {
            match c.data_type() {
                DataType::Utf8 => push_strings(c.as_string::<i32>(), &mut out),
                DataType::LargeUtf8 => push_strings(c.as_string::<i64>(), &mut out),
                DataType::Utf8View => push_strings(c.as_string_view(), &mut out),
                t => bail!("column {name:?} is {t}, not text"),
            }
        }
        Ok(out)
    }
    /// A boolean column; nulls become false.
    pub fn bools(&self, name: &str) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(self.num_rows());
        for c in self.columns(name)? {
            let a = c.as_boolean_opt().ok_or_else(|| {
                anyhow::anyhow!("column {name:?} is {}, not boolean", c.data_type())
            })?;
            out.extend((0..a.len()).map(|i| a.is_valid(i) && a.value(i)));
        }
        Ok(out)
    }
    /// A numeric column as f64 (integers converted); nulls become NaN.
    pub fn f64s(&self, name: &str) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(self.num_rows());
        for c in self.columns(name)? {
            let get = |i: usize, v: f64| if c.is_null(i) { f64::NAN } else { v };
            match c.data_type() {
                DataType::Float64 => {
                    let a = c.as_primitive::<Float64Type>();
                    out.extend((0..a.len()).map(|i| get(i, a.value(i))));
                }
                DataType::Int64 => {
                    let a = c.as_primitive::<Int64Type>();
                    out.extend((0..a.len()).map(|i| get(i, a.value(i) as f64)));
                }
                DataType::UInt32 => {
                    let a = c.as_primitive::<UInt32Type>();
                    out.extend((0..a.len()).map(|i| get(i, a.value(i) as f64)));
                }
                // Days since the epoch, as the panel stores dates.
                DataType::Date32 => {
                    let a = c.as_primitive::<arrow_array::types::Date32Type>();
                    out.extend((0..a.len()).map(|i| get(i, a.value(i) as f64)));
                }
                t => bail!("column {name:?} is {t}, not a number"),
            }
        }
        Ok(out)
    }
}
