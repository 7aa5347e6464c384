//! Writing a panel: columns in a fixed order, uncompressed (so it can be mapped), with
//! the calendar, asset list and a content hash of the values in the schema metadata.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use af_store::{Provenance, Sha256Writer, write_atomic};
use anyhow::{Result, ensure};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, DictionaryArray, Float64Array, Int32Array, RecordBatch,
    StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use serde_json::{Value, json};

use crate::dates::format_date;
use crate::{META_PANEL, PANEL_FORMAT};

/// Everything a panel holds, as dense date-major vectors of length n_dates × n_assets.
#[derive(Debug, Clone, Default)]
pub struct PanelData {
    pub dates: Vec<i32>,
    pub codes: Vec<String>,
    /// Numeric fields and labels, in column order.
    pub fields: Vec<(String, Vec<f64>)>,
    /// Group fields (e.g. `industry`): per-cell key into the names list.
    pub groups: Vec<(String, Vec<i32>, Vec<String>)>,
    /// Boolean masks (`tradable`, `in_universe`).
    pub masks: Vec<(String, Vec<bool>)>,
    /// Extra description merged into the `af.panel` metadata (adjustment, label, …).
    pub extra: serde_json::Map<String, Value>,
}

impl PanelData {
    pub fn cells(&self) -> usize {
        self.dates.len() * self.codes.len()
    }

    /// sha256 over the values in column order: equal for equal content, independent of
    /// how the file happens to be laid out.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256Writer::new();
        for d in &self.dates {
            h.update(&d.to_le_bytes());
        }
        for c in &self.codes {
            h.update(c.as_bytes());
            h.update(&[0]);
        }
        for (name, v) in &self.fields {
            h.update(name.as_bytes());
            for x in v {
                // Canonical NaN so NaN payload bits cannot change the hash.
                let x = if x.is_nan() { f64::NAN } else { *x };
                h.update(&x.to_bits().to_le_bytes());
            }
        }
        for (name, keys, names) in &self.groups {
            h.update(name.as_bytes());
            for k in keys {
                h.update(&k.to_le_bytes());
            }
            for n in names {
                h.update(n.as_bytes());
                h.update(&[0]);
            }
        }
        for (name, v) in &self.masks {
            h.update(name.as_bytes());
            for b in v {
                h.update(&[*b as u8]);
            }
        }
        h.hex()
    }
}

fn dict_column(keys: Vec<i32>, names: &[String]) -> Result<ArrayRef> {
    let values = Arc::new(StringArray::from_iter_values(names.iter()));
    Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(
        Int32Array::from(keys),
        values,
    )?))
}

/// Write `data` to `path` atomically. Returns the content hash stored in the metadata.
pub fn write_panel(path: &Path, data: PanelData, prov: &Provenance) -> Result<String> {
    let (nd, na) = (data.dates.len(), data.codes.len());
    let n = nd * na;
    ensure!(
        nd > 0 && na > 0,
        "a panel needs at least one date and one asset"
    );
    for (name, v) in &data.fields {
        ensure!(
            v.len() == n,
            "field {name} has {} values, expected {n}",
            v.len()
        );
    }
    for (name, v, _) in &data.groups {
        ensure!(
            v.len() == n,
            "group {name} has {} values, expected {n}",
            v.len()
        );
    }
    for (name, v) in &data.masks {
        ensure!(
            v.len() == n,
            "mask {name} has {} values, expected {n}",
            v.len()
        );
    }
    let content_hash = data.content_hash();

    let mut desc = json!({
        "format": PANEL_FORMAT,
        "n_dates": nd,
        "n_assets": na,
        "dates": data.dates.iter().map(|d| format_date(*d)).collect::<Vec<_>>(),
        "codes": data.codes,
        "fields": data.fields.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "groups": data.groups.iter().map(|(n, _, _)| n.clone()).collect::<Vec<_>>(),
        "masks": data.masks.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "content_hash": content_hash,
    });
    if let Value::Object(m) = &mut desc {
        for (k, v) in &data.extra {
            m.insert(k.clone(), v.clone());
        }
    }
    let mut meta: BTreeMap<String, String> = prov.to_kv().into_iter().collect();
    meta.insert(META_PANEL.into(), af_store::canonical_json(&desc));

    let mut fields = vec![
        Field::new("date", DataType::Date32, false),
        Field::new_dictionary("code", DataType::Int32, DataType::Utf8, false),
    ];
    let mut cols: Vec<ArrayRef> = Vec::new();
    let mut date_col = Vec::with_capacity(n);
    for d in &data.dates {
        date_col.extend(std::iter::repeat_n(*d, na));
    }
    cols.push(Arc::new(Date32Array::from(date_col)));
    let code_keys: Vec<i32> = (0..nd).flat_map(|_| 0..na as i32).collect();
    cols.push(dict_column(code_keys, &data.codes)?);
    let PanelData {
        fields: f64s,
        groups,
        masks,
        ..
    } = data;
    for (name, v) in f64s {
        fields.push(Field::new(&name, DataType::Float64, false));
        cols.push(Arc::new(Float64Array::from(v)));
    }
    for (name, keys, names) in groups {
        fields.push(Field::new_dictionary(
            &name,
            DataType::Int32,
            DataType::Utf8,
            false,
        ));
        cols.push(dict_column(keys, &names)?);
    }
    for (name, v) in masks {
        fields.push(Field::new(&name, DataType::Boolean, false));
        cols.push(Arc::new(BooleanArray::from(v)));
    }
    let schema = Arc::new(Schema::new(fields).with_metadata(meta));
    let batch = RecordBatch::try_new(schema.clone(), cols)?;
    write_atomic(path, |w| {
        let mut fw = arrow_ipc::writer::FileWriter::try_new(w, &schema)?;
        fw.write(&batch)?;
        fw.finish()?;
        Ok(())
    })?;
    Ok(content_hash)
}
