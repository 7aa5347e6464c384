//! Candidate files, as `fitness` and `cache-plan` read them: gp-gen's Parquet (an
//! `expression` column in canonical native form, and the `generation` of each) or a
//! text file of expressions (`af_expr::expression_lines`: one per line, `name = expr`,
//! `# dialect: qlib`).

use std::io::Read;
use std::path::Path;

use af_expr::{Dialect, expression_lines};
use anyhow::{Context, Result, anyhow};

use crate::read_parquet;

pub struct Candidates {
    /// Expression sources in file order.
    pub exprs: Vec<String>,
    /// gp-gen's generation of each, −1 when the file does not record it.
    pub generations: Vec<i64>,
    /// The dialect the file is in: native for Parquet, the `# dialect:` line of a text
    /// file, or None (the caller's default).
    pub dialect: Option<Dialect>,
}

pub fn read(path: &Path) -> Result<Candidates> {
    let is_parquet = std::fs::File::open(path)
        .and_then(|mut f| {
            let mut m = [0u8; 4];
            f.read_exact(&mut m).map(|_| &m == b"PAR1")
        })
        .unwrap_or(false);
    if is_parquet {
        let t = read_parquet(path)?;
        let exprs = t
            .strings("expression")
            .with_context(|| format!("candidates {}", path.display()))?;
        let generations = if t.has_column("generation") {
            t.f64s("generation")?
                .into_iter()
                .map(|g| g as i64)
                .collect()
        } else {
            vec![-1; exprs.len()]
        };
        return Ok(Candidates {
            exprs,
            generations,
            dialect: Some(Dialect::Native),
        });
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read candidates {}", path.display()))?;
    let (lines, dialect) =
        expression_lines(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let exprs: Vec<String> = lines.into_iter().map(|(_, e)| e).collect();
    Ok(Candidates {
        generations: vec![-1; exprs.len()],
        exprs,
        dialect,
    })
}
