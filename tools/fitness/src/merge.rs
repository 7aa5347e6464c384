//! `fitness --merge`: the n files of `--shard i/n` runs joined into the file the
//! unsharded run writes — the same rows in candidate order, the same metadata without
//! the shard — byte for byte. A missing, repeated or foreign shard is an error.

use std::path::{Path, PathBuf};

use af_store::{META_INPUTS, META_PARAMS, META_TOOL, META_VERSION, Provenance};
use af_table::arrow_array::cast::AsArray;
use af_table::arrow_array::types::UInt32Type;
use af_table::{Table, read_parquet, write_parquet_kv};
use anyhow::{Context, Result, anyhow, bail};

use crate::pass::parse_shard;

pub fn merge(files: &[PathBuf], out: &Path) -> Result<()> {
    let _lock = af_store::OutputLock::acquire(out)?;
    let mut base: Option<(Provenance, Vec<(String, String)>)> = None;
    let mut seen: Vec<Option<PathBuf>> = Vec::new();
    let mut batches = Vec::new();
    for f in files {
        let t = read_parquet(f)?;
        let mut prov =
            Provenance::from_kv(t.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .filter(|p| p.tool == "fitness")
                .ok_or_else(|| anyhow!("{}: not a fitness file", f.display()))?;
        let spec = prov
            .params
            .remove("shard")
            .and_then(|v| v.as_str().map(String::from))
            .ok_or_else(|| anyhow!("{}: not a shard (made without --shard)", f.display()))?;
        let (i, n) = parse_shard(&spec).with_context(|| f.display().to_string())?;
        if seen.is_empty() {
            seen = vec![None; n];
        }
        if seen.len() != n {
            bail!(
                "{}: shard {spec} of another split ({} shards elsewhere)",
                f.display(),
                seen.len()
            );
        }
        if let Some(other) = &seen[i] {
            bail!(
                "shard {spec} given twice: {} and {}",
                other.display(),
                f.display()
            );
        }
        seen[i] = Some(f.clone());
        // Everything but provenance (processing, …) must agree too.
        let extra: Vec<(String, String)> = t
            .metadata
            .iter()
            .filter(|(k, _)| {
                k.starts_with("af.")
                    && ![META_TOOL, META_VERSION, META_PARAMS, META_INPUTS].contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        match &base {
            None => base = Some((prov, extra)),
            Some((p, e)) => {
                if *p != prov || *e != extra {
                    bail!(
                        "{}: a shard of another run (other candidates, panel, library or settings)",
                        f.display()
                    );
                }
            }
        }
        batches.extend(t.batches);
    }
    if let Some(i) = seen.iter().position(|s| s.is_none()) {
        bail!("shard {i}/{} is missing", seen.len());
    }
    let (prov, extra) = base.ok_or_else(|| anyhow!("--merge needs shard files"))?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| anyhow!("the shards hold no rows"))?;
    let all = af_table::arrow_select::concat::concat_batches(&schema, &batches)?;
    // Rows in candidate order; a candidate's rows keep their order (stable sort).
    let cand = all
        .column_by_name("candidate")
        .ok_or_else(|| anyhow!("shards have no candidate column"))?
        .as_primitive::<UInt32Type>()
        .clone();
    let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
    order.sort_by_key(|&r| cand.value(r as usize));
    let idx = af_table::arrow_array::UInt32Array::from(order);
    let sorted = af_table::arrow_select::take::take_record_batch(&all, &idx)?;
    write_parquet_kv(out, Table::from_batch(sorted), &prov, &extra)?;
    println!(
        "merged {} shards ({} rows)\nwrote {}",
        seen.len(),
        all.num_rows(),
        out.display()
    );
    Ok(())
}
