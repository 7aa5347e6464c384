//! Opening a panel: memory-map the IPC file and expose its columns as slices.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use af_store::Provenance;
use anyhow::{Context, Result, anyhow, bail};
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, RecordBatch};
use arrow_buffer::Buffer;
use arrow_ipc::convert::try_fb_to_schema;
use arrow_ipc::reader::{FileDecoder, read_footer_length};
use arrow_ipc::root_as_footer;
use arrow_schema::DataType;
use memmap2::Mmap;
use serde::Deserialize;

use crate::dates::parse_date;
use crate::{META_PANEL, PANEL_FORMAT};

/// A row-major `[n_dates][n_assets]` view of one field.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    pub data: &'a [f64],
    pub n_dates: usize,
    pub n_assets: usize,
}

impl<'a> Matrix<'a> {
    /// All assets on date index `t`.
    #[inline]
    pub fn row(&self, t: usize) -> &'a [f64] {
        &self.data[t * self.n_assets..(t + 1) * self.n_assets]
    }
    #[inline]
    pub fn get(&self, t: usize, a: usize) -> f64 {
        self.data[t * self.n_assets + a]
    }
}

/// A group field (e.g. industry): per-cell key into `names`.
#[derive(Clone, Copy, Debug)]
pub struct Groups<'a> {
    pub keys: &'a [i32],
    pub names: &'a [String],
}

#[derive(Debug, Deserialize)]
struct Desc {
    format: String,
    n_dates: usize,
    n_assets: usize,
    dates: Vec<String>,
    codes: Vec<String>,
    content_hash: String,
}

/// An open panel. Field slices borrow from it and point into the mapped file.
pub struct Panel {
    path: PathBuf,
    map: Arc<Mmap>,
    batch: RecordBatch,
    dates: Vec<i32>,
    codes: Vec<String>,
    content_hash: String,
    metadata: BTreeMap<String, String>,
    group_names: BTreeMap<String, Vec<String>>,
    /// Masks unpacked to one bool per cell, kept: evaluation reads `in_universe` for
    /// every cross-sectional node, and unpacking 12.5 M bits each time costs more than
    /// many kernels.
    masks: Mutex<BTreeMap<String, Arc<Vec<bool>>>>,
}

struct MmapOwner(#[allow(dead_code)] Arc<Mmap>);

impl std::fmt::Debug for Panel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Panel({}, {}x{})",
            self.path.display(),
            self.dates.len(),
            self.codes.len()
        )
    }
}

/// Where a long table's rows fell on a panel's grid ([`Panel::on_grid`]).
#[derive(Debug, Default)]
pub struct OnGrid {
    /// `[date][asset]` values, NaN where no row; a repeated cell keeps its last row.
    pub values: Vec<f64>,
    /// Cells that had a row.
    pub seen: Vec<bool>,
    /// The first row (date, code) whose date is not a trading date of the panel.
    pub off_calendar: Option<(i32, String)>,
    /// The first row whose code is not on the panel, and the count of such rows per code.
    pub first_unknown: Option<(i32, String)>,
    pub unknown: BTreeMap<String, usize>,
    /// The first (date, code) given twice.
    pub duplicate: Option<(i32, String)>,
}

impl Panel {
    /// Map `path` and check it is a complete alpha-factory panel.
    pub fn open(path: &Path) -> Result<Panel> {
        Self::open_inner(path).with_context(|| format!("cannot open panel {}", path.display()))
    }

    fn open_inner(path: &Path) -> Result<Panel> {
        let file = File::open(path)?;
        // SAFETY: artifacts are replaced by rename, never modified in place, so the
        // mapped bytes do not change under us while the mapping lives.
        let map = Arc::new(unsafe { Mmap::map(&file)? });
        let len = map.len();
        if len < 16 || &map[..6] != b"ARROW1" || &map[len - 6..] != b"ARROW1" {
            bail!("not an Arrow IPC file, or truncated ({len} bytes)");
        }
        let owner: Arc<dyn arrow_buffer::alloc::Allocation> = Arc::new(MmapOwner(map.clone()));
        // SAFETY: the pointer and length describe the mapping, kept alive by `owner`.
        let buffer = unsafe {
            Buffer::from_custom_allocation(
                NonNull::new(map.as_ptr() as *mut u8).ok_or_else(|| anyhow!("empty map"))?,
                len,
                owner,
            )
        };
        let trailer_start = len - 10;
        let footer_len = read_footer_length(buffer[trailer_start..].try_into()?)?;
        if footer_len + 10 > len {
            bail!("corrupt footer");
        }
        let footer = root_as_footer(&buffer[trailer_start - footer_len..trailer_start])
            .map_err(|e| anyhow!("corrupt footer: {e}"))?;
        let schema = Arc::new(try_fb_to_schema(
            footer.schema().ok_or_else(|| anyhow!("no schema"))?,
        )?);
        let metadata: BTreeMap<String, String> = schema
            .metadata()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let desc_json = metadata
            .get(META_PANEL)
            .ok_or_else(|| anyhow!("not an alpha-factory panel (no {META_PANEL} metadata)"))?;
        let desc: Desc = serde_json::from_str(desc_json).context("corrupt panel description")?;
        if desc.format != PANEL_FORMAT {
            bail!(
                "unsupported panel format {:?} (this build reads {PANEL_FORMAT})",
                desc.format
            );
        }
        let mut decoder = FileDecoder::new(schema.clone(), footer.version());
        for block in footer.dictionaries().iter().flatten() {
            let block_len = block.bodyLength() as usize + block.metaDataLength() as usize;
            let end = block.offset() as usize + block_len;
            if end > len {
                bail!("truncated (dictionary block past end of file)");
            }
            let data = buffer.slice_with_length(block.offset() as _, block_len);
            decoder.read_dictionary(block, &data)?;
        }
        let batches = footer
            .recordBatches()
            .ok_or_else(|| anyhow!("no record batches"))?;
        if batches.len() != 1 {
            bail!("expected one record batch, found {}", batches.len());
        }
        let block = batches.get(0);
        let block_len = block.bodyLength() as usize + block.metaDataLength() as usize;
        if block.offset() as usize + block_len > len {
            bail!("truncated (record batch past end of file)");
        }
        let data = buffer.slice_with_length(block.offset() as _, block_len);
        let batch = decoder
            .read_record_batch(block, &data)?
            .ok_or_else(|| anyhow!("empty record batch"))?;
        let n = desc.n_dates * desc.n_assets;
        if batch.num_rows() != n {
            bail!(
                "{} rows, but the description says {} dates x {} assets",
                batch.num_rows(),
                desc.n_dates,
                desc.n_assets
            );
        }
        if desc.dates.len() != desc.n_dates || desc.codes.len() != desc.n_assets {
            bail!("corrupt panel description (calendar or asset list length)");
        }
        let dates = desc
            .dates
            .iter()
            .map(|s| parse_date(s))
            .collect::<Result<Vec<_>>>()?;
        let mut group_names = BTreeMap::new();
        for f in schema.fields() {
            if let DataType::Dictionary(_, _) = f.data_type() {
                let col = batch
                    .column_by_name(f.name())
                    .ok_or_else(|| anyhow!("missing column {}", f.name()))?;
                let dict = col
                    .as_dictionary_opt::<Int32Type>()
                    .ok_or_else(|| anyhow!("column {} is not an Int32 dictionary", f.name()))?;
                let names = dict
                    .values()
                    .as_string_opt::<i32>()
                    .ok_or_else(|| anyhow!("column {} has non-string dictionary", f.name()))?;
                let names: Vec<String> = (0..names.len())
                    .map(|i| names.value(i).to_string())
                    .collect();
                group_names.insert(f.name().clone(), names);
            }
        }
        Ok(Panel {
            path: path.to_path_buf(),
            map,
            batch,
            dates,
            codes: desc.codes,
            content_hash: desc.content_hash,
            metadata,
            group_names,
            masks: Mutex::new(BTreeMap::new()),
        })
    }

    /// A smaller panel: dates `rows` and the assets at positions `assets` (ascending),
    /// copied out of the mapping. Used for screening passes (fitness FAST) that trade
    /// exactness for speed; its content hash is derived from this panel's hash and the
    /// selection, so nothing keyed by hash mistakes it for the whole panel.
    pub fn subset(&self, rows: std::ops::Range<usize>, assets: &[usize]) -> Result<Panel> {
        use arrow_array::types::{Date32Type, Float64Type};
        use arrow_array::{BooleanArray, Date32Array, DictionaryArray, Float64Array, Int32Array};
        let na = self.n_assets();
        if rows.end > self.n_dates() || rows.is_empty() {
            bail!("subset rows {rows:?} outside 0..{}", self.n_dates());
        }
        if assets.is_empty()
            || assets.windows(2).any(|w| w[0] >= w[1])
            || assets[assets.len() - 1] >= na
        {
            bail!("subset assets must be ascending positions below {na}");
        }
        let cells = || {
            rows.clone()
                .flat_map(move |t| assets.iter().map(move |&a| t * na + a))
        };
        let mut cols: Vec<arrow_array::ArrayRef> = Vec::new();
        for (f, c) in self
            .batch
            .schema()
            .fields()
            .iter()
            .zip(self.batch.columns())
        {
            let a: arrow_array::ArrayRef = match f.data_type() {
                DataType::Float64 => {
                    let v = c.as_primitive::<Float64Type>().values();
                    Arc::new(Float64Array::from_iter_values(cells().map(|i| v[i])))
                }
                DataType::Date32 => {
                    let v = c.as_primitive::<Date32Type>().values();
                    Arc::new(Date32Array::from_iter_values(cells().map(|i| v[i])))
                }
                DataType::Boolean => {
                    let v = c.as_boolean();
                    Arc::new(BooleanArray::from_iter(cells().map(|i| Some(v.value(i)))))
                }
                DataType::Dictionary(_, _) => {
                    let d = c
                        .as_dictionary_opt::<Int32Type>()
                        .ok_or_else(|| anyhow!("column {} is not an Int32 dictionary", f.name()))?;
                    let k = d.keys().values();
                    let keys = Int32Array::from_iter_values(cells().map(|i| k[i]));
                    Arc::new(DictionaryArray::<Int32Type>::try_new(
                        keys,
                        d.values().clone(),
                    )?)
                }
                t => bail!("cannot subset column {} of type {t}", f.name()),
            };
            cols.push(a);
        }
        let batch = RecordBatch::try_new(self.batch.schema(), cols)?;
        let spec = format!(
            "{}|rows={}..{}|assets={}",
            self.content_hash,
            rows.start,
            rows.end,
            assets
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        Ok(Panel {
            path: self.path.clone(),
            map: self.map.clone(),
            batch,
            dates: self.dates[rows.clone()].to_vec(),
            codes: assets.iter().map(|&a| self.codes[a].clone()).collect(),
            content_hash: af_store::sha256_bytes(spec.as_bytes()),
            metadata: self.metadata.clone(),
            group_names: self.group_names.clone(),
            masks: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn n_dates(&self) -> usize {
        self.dates.len()
    }
    pub fn n_assets(&self) -> usize {
        self.codes.len()
    }
    /// Trading calendar, days since 1970-01-01.
    pub fn dates(&self) -> &[i32] {
        &self.dates
    }
    pub fn codes(&self) -> &[String] {
        &self.codes
    }

    /// A long table's rows (date as days, code, value) placed on this panel's
    /// `[date][asset]` grid — a prediction file, a user's signal. What does not fit is
    /// reported, not decided: each reader has its own rule for it.
    pub fn on_grid(&self, dates: &[f64], codes: &[String], vals: &[f64]) -> OnGrid {
        let na = self.codes.len();
        let di: std::collections::HashMap<i32, usize> = self
            .dates
            .iter()
            .enumerate()
            .map(|(i, d)| (*d, i))
            .collect();
        let ci: std::collections::HashMap<&str, usize> = self
            .codes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let mut g = OnGrid {
            values: vec![f64::NAN; self.dates.len() * na],
            seen: vec![false; self.dates.len() * na],
            ..OnGrid::default()
        };
        for ((d, c), v) in dates.iter().zip(codes).zip(vals) {
            let d = *d as i32;
            let Some(&t) = di.get(&d) else {
                g.off_calendar.get_or_insert((d, c.clone()));
                continue;
            };
            let Some(&k) = ci.get(c.as_str()) else {
                g.first_unknown.get_or_insert((d, c.clone()));
                *g.unknown.entry(c.clone()).or_default() += 1;
                continue;
            };
            if g.seen[t * na + k] {
                g.duplicate.get_or_insert((d, c.clone()));
            }
            g.seen[t * na + k] = true;
            g.values[t * na + k] = *v;
        }
        g
    }
    /// sha256 of the panel's values (not of the file): the key that cache entries and
    /// fitness tables are tied to.
    pub fn content_hash(&self) -> &str {
        &self.content_hash
    }
    /// The full `af.panel` description and provenance as stored.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }
    pub fn description(&self) -> serde_json::Value {
        self.metadata
            .get(META_PANEL)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }
    pub fn provenance(&self) -> Option<Provenance> {
        Provenance::from_kv(self.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Names of the f64 fields (prices, volumes, labels), in column order.
    pub fn field_names(&self) -> Vec<&str> {
        self.batch
            .schema_ref()
            .fields()
            .iter()
            .filter(|f| f.data_type() == &DataType::Float64)
            .map(|f| f.name().as_str())
            .collect()
    }

    pub fn has_field(&self, name: &str) -> bool {
        self.batch
            .schema_ref()
            .field_with_name(name)
            .map(|f| f.data_type() == &DataType::Float64)
            .unwrap_or(false)
    }

    /// A numeric field as a zero-copy matrix.
    pub fn field(&self, name: &str) -> Result<Matrix<'_>> {
        let col = self.batch.column_by_name(name).ok_or_else(|| {
            anyhow!(
                "panel {} has no field {name:?} (fields: {})",
                self.path.display(),
                self.field_names().join(", ")
            )
        })?;
        let arr = col
            .as_primitive_opt::<arrow_array::types::Float64Type>()
            .ok_or_else(|| anyhow!("panel field {name:?} is not f64"))?;
        Ok(Matrix {
            data: arr.values(),
            n_dates: self.n_dates(),
            n_assets: self.n_assets(),
        })
    }

    /// A boolean mask (`tradable`, `in_universe`) unpacked to one bool per cell.
    pub fn mask(&self, name: &str) -> Result<Vec<bool>> {
        Ok(self.mask_shared(name)?.as_ref().clone())
    }

    /// As [`Panel::mask`], unpacked once per panel and shared.
    pub fn mask_shared(&self, name: &str) -> Result<Arc<Vec<bool>>> {
        if let Some(m) = self.masks.lock().ok().and_then(|c| c.get(name).cloned()) {
            return Ok(m);
        }
        let col = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| anyhow!("panel {} has no mask {name:?}", self.path.display()))?;
        let arr = col
            .as_boolean_opt()
            .ok_or_else(|| anyhow!("panel column {name:?} is not a mask"))?;
        let m: Arc<Vec<bool>> = Arc::new(arr.values().iter().collect());
        if let Ok(mut c) = self.masks.lock() {
            c.insert(name.to_string(), m.clone());
        }
        Ok(m)
    }

    /// A group field (`industry`): per-cell keys (zero-copy) and the group names.
    pub fn groups(&self, name: &str) -> Result<Groups<'_>> {
        let col = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| anyhow!("panel {} has no group field {name:?}", self.path.display()))?;
        let dict = col
            .as_dictionary_opt::<Int32Type>()
            .ok_or_else(|| anyhow!("panel column {name:?} is not a group field"))?;
        let names = self
            .group_names
            .get(name)
            .ok_or_else(|| anyhow!("no names for group field {name:?}"))?;
        Ok(Groups {
            keys: dict.keys().values(),
            names,
        })
    }

    /// Whether a field's slice lies inside the mapped file (it does unless the file's
    /// buffers were misaligned and had to be copied).
    pub fn is_zero_copy(&self, name: &str) -> bool {
        match self.field(name) {
            Ok(m) => {
                let start = self.map.as_ptr() as usize;
                let p = m.data.as_ptr() as usize;
                p >= start && p + m.data.len() * 8 <= start + self.map.len()
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::{PanelData, write_panel};

    fn sample() -> PanelData {
        let (nd, na) = (3, 2);
        PanelData {
            dates: vec![19000, 19001, 19004],
            codes: vec!["000001.SZ".into(), "600000.SH".into()],
            fields: vec![
                (
                    "close".into(),
                    (0..nd * na).map(|i| i as f64 + 0.5).collect(),
                ),
                ("returns".into(), vec![f64::NAN; nd * na]),
            ],
            groups: vec![(
                "industry".into(),
                vec![0, 1, 0, 1, 0, 1],
                vec!["Bank".into(), "Tech".into()],
            )],
            masks: vec![(
                "tradable".into(),
                vec![true, false, true, true, false, true],
            )],
            extra: Default::default(),
        }
    }

    #[test]
    fn write_then_map() {
        let dir = std::env::temp_dir().join(format!("af-panel-{}", std::process::id()));
        let p = dir.join("p.arrow");
        let prov = Provenance::new("test", "0");
        let h = write_panel(&p, sample(), &prov).unwrap();
        let panel = Panel::open(&p).unwrap();
        assert_eq!(panel.content_hash(), h);
        assert_eq!(panel.n_dates(), 3);
        let c = panel.field("close").unwrap();
        assert_eq!(c.row(1), &[2.5, 3.5]);
        assert!(panel.is_zero_copy("close"));
        assert!(
            panel
                .field("returns")
                .unwrap()
                .data
                .iter()
                .all(|x| x.is_nan())
        );
        assert_eq!(
            panel.mask("tradable").unwrap(),
            vec![true, false, true, true, false, true]
        );
        let g = panel.groups("industry").unwrap();
        assert_eq!(g.keys, &[0, 1, 0, 1, 0, 1]);
        assert_eq!(g.names[1], "Tech");
        assert_eq!(panel.provenance().unwrap().tool, "test");
        let err = panel.field("nope").unwrap_err().to_string();
        assert!(err.contains("close"), "{err}");
        // Determinism: same data, same bytes.
        let p2 = dir.join("p2.arrow");
        write_panel(&p2, sample(), &prov).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(&p2).unwrap());
        // Truncation is detected, never read as numbers.
        let bytes = std::fs::read(&p).unwrap();
        for cut in [bytes.len() - 1, bytes.len() / 2, 20] {
            let t = dir.join("t.arrow");
            std::fs::write(&t, &bytes[..cut]).unwrap();
            assert!(Panel::open(&t).is_err(), "cut at {cut}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
