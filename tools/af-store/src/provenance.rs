//! Provenance: what made an artifact, stored in its key-value metadata.
//!
//! Parameters and inputs are serialised as canonical JSON (sorted keys, no spaces), so
//! the same run always writes the same bytes and a person can read them back with
//! `pyarrow.parquet.read_metadata(path).metadata`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use crate::hash::sha256_file;

pub const META_TOOL: &str = "af.tool";
pub const META_VERSION: &str = "af.version";
pub const META_PARAMS: &str = "af.params";
pub const META_INPUTS: &str = "af.inputs";

/// JSON with object keys sorted at every level and no insignificant whitespace.
pub fn canonical_json(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<_, _> = m.iter().map(|(k, v)| (k.clone(), sort(v))).collect();
                Value::Object(sorted.into_iter().collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sort(v)).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    pub tool: String,
    pub version: String,
    /// Canonical parameters (never secrets: callers pass only what defines the output).
    pub params: BTreeMap<String, Value>,
    /// Input name (usually a path relative to the repository) -> sha256 of its bytes.
    pub inputs: BTreeMap<String, String>,
}

impl Provenance {
    pub fn new(tool: &str, version: &str) -> Self {
        Self {
            tool: tool.into(),
            version: version.into(),
            params: BTreeMap::new(),
            inputs: BTreeMap::new(),
        }
    }

    pub fn param(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.params.insert(key.into(), value.into());
        self
    }

    pub fn input_hash(mut self, name: &str, sha256: &str) -> Self {
        self.inputs.insert(name.into(), sha256.into());
        self
    }

    /// Record an input file by its content hash.
    pub fn input_file(self, name: &str, path: &Path) -> Result<Self> {
        let h = sha256_file(path)?;
        Ok(self.input_hash(name, &h))
    }

    /// Key-value pairs for Parquet / Arrow metadata, in a fixed order.
    pub fn to_kv(&self) -> Vec<(String, String)> {
        let params = Value::Object(self.params.clone().into_iter().collect());
        let inputs = Value::Object(
            self.inputs
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        );
        vec![
            (META_TOOL.into(), self.tool.clone()),
            (META_VERSION.into(), self.version.clone()),
            (META_PARAMS.into(), canonical_json(&params)),
            (META_INPUTS.into(), canonical_json(&inputs)),
        ]
    }

    /// Same content as a JSON object (for manifests).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "tool": self.tool,
            "version": self.version,
            "params": Value::Object(self.params.clone().into_iter().collect()),
            "inputs": self.inputs,
        })
    }

    /// Read back from key-value metadata; `None` when the file carries none.
    pub fn from_kv<'a>(kv: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        let mut p = Provenance::new("", "");
        let mut seen = false;
        for (k, v) in kv {
            match k {
                META_TOOL => {
                    p.tool = v.into();
                    seen = true
                }
                META_VERSION => p.version = v.into(),
                META_PARAMS => {
                    if let Ok(Value::Object(m)) = serde_json::from_str(v) {
                        p.params = m.into_iter().collect();
                    }
                }
                META_INPUTS => {
                    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(v) {
                        p.inputs = m
                            .into_iter()
                            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
                            .collect();
                    }
                }
                _ => {}
            }
        }
        seen.then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_canonical() {
        let p = Provenance::new("ts-fetch", "0.1.0")
            .param("seed", 7)
            .param("assets", 200)
            .input_hash("a", "ff");
        let kv = p.to_kv();
        assert_eq!(kv[2].1, r#"{"assets":200,"seed":7}"#);
        let back = Provenance::from_kv(kv.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert_eq!(back, p);
    }
}
