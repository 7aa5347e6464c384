//! `ts-fetch --source postgres`: daily bars from a PostgreSQL table or query, streamed
//! with binary COPY (`COPY (SELECT …) TO STDOUT (FORMAT binary)`) into the files
//! source's tables, handed one at a time to the caller, which maps, cleans and checks
//! them with the same code ([`af_data::files::Ingest`]): the mapping (column names,
//! unit scales, `adjusted: true`) means the same thing for a table as for a CSV.
//!
//! When the date column is a DATE or TIMESTAMP the rows come one calendar year per COPY
//! (oldest first), so ts-fetch holds one year's table and bars, not the table's. The connection string
//! comes only from `DATABASE_URL` (environment or a git-ignored `.env`) and is never
//! printed: errors name host, port and database.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use af_data::files::{Col, FilesParams, Mapping, Source, Table};
use af_panel::dates::{format_date, year_of, ymd_to_days};
use anyhow::{Context, Result, anyhow, bail};
use postgres::types::Type;
use postgres::{Client, Config, NoTls};

/// What to read.
pub struct PgParams {
    /// Mapping, bad-row rule, market, split inference: the files source's settings.
    pub files: FilesParams,
    /// A table (or view) name…
    pub table: Option<String>,
    /// …or a query.
    pub query: Option<String>,
    /// `--update`: only rows dated after this day.
    pub after: Option<i32>,
}

/// `DATABASE_URL` from the environment, else from `.env` in the working directory.
pub fn database_url() -> Result<String> {
    af_store::secret("DATABASE_URL").ok_or_else(|| {
        anyhow!(
            "--source postgres needs DATABASE_URL (postgresql://user:password@host:port/db) in the environment or a git-ignored .env"
        )
    })
}

/// `host:port/db` of `DATABASE_URL`, for provenance and messages (never the password).
pub fn place() -> Result<String> {
    Ok(describe(&config()?))
}

fn config() -> Result<Config> {
    database_url()?
        .parse()
        .map_err(|_| anyhow!("DATABASE_URL is not a postgresql:// connection string"))
}

/// `host:port/db` of a connection string, for messages (never the password).
fn describe(cfg: &Config) -> String {
    let host = match cfg.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", cfg.get_dbname().unwrap_or("?"))
}

/// A server error's own words (its message and SQLSTATE), without the connection string.
fn why(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let s = e.to_string();
            match std::error::Error::source(e) {
                Some(src) => format!("{s}: {src}"),
                None => s,
            }
        }
    }
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Days since 1970 ← days since 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH: i32 = 10_957;

fn col_for(t: &Type, name: &str) -> Result<Col> {
    Ok(match *t {
        Type::BOOL => Col::Bool(Vec::new()),
        Type::INT2 | Type::INT4 | Type::INT8 => Col::I64(Vec::new()),
        Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => Col::F64(Vec::new()),
        Type::DATE | Type::TIMESTAMP | Type::TIMESTAMPTZ => Col::Date(Vec::new()),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Col::Str(Vec::new()),
        _ => bail!(
            "column {name:?} has type {t} that the mapping cannot convert (use numeric, float, integer, date, timestamp, text or boolean; or cast it in --query)"
        ),
    })
}

/// PostgreSQL's binary NUMERIC: ndigits, weight, sign, dscale, then base-10000 digits.
fn numeric(b: &[u8]) -> Result<f64> {
    if b.len() < 8 {
        bail!("short numeric");
    }
    let n = u16::from_be_bytes([b[0], b[1]]) as usize;
    let weight = i16::from_be_bytes([b[2], b[3]]) as i32;
    let sign = u16::from_be_bytes([b[4], b[5]]);
    if sign == 0xC000 {
        return Ok(f64::NAN);
    }
    if b.len() < 8 + 2 * n {
        bail!("short numeric");
    }
    // Digits as an integer, then one scaling: exact for the usual price sizes.
    let mut int: i128 = 0;
    for k in 0..n {
        int = int * 10_000 + u16::from_be_bytes([b[8 + 2 * k], b[9 + 2 * k]]) as i128;
    }
    let exp = 4 * (weight - (n as i32 - 1));
    let v = if exp >= 0 {
        int as f64 * 10f64.powi(exp)
    } else {
        int as f64 / 10f64.powi(-exp)
    };
    Ok(if sign == 0x4000 { -v } else { v })
}

fn push(col: &mut Col, t: &Type, b: Option<&[u8]>) -> Result<()> {
    let be8 = |b: &[u8]| -> [u8; 8] { b[..8].try_into().unwrap_or([0; 8]) };
    match (col, b) {
        (Col::Bool(v), x) => v.push(x.map(|b| b.first() == Some(&1))),
        (Col::I64(v), x) => v.push(x.map(|b| match b.len() {
            2 => i16::from_be_bytes([b[0], b[1]]) as i64,
            4 => i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as i64,
            _ => i64::from_be_bytes(be8(b)),
        })),
        (Col::F64(v), None) => v.push(None),
        (Col::F64(v), Some(b)) => v.push(Some(match *t {
            Type::FLOAT4 => f32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64,
            Type::FLOAT8 => f64::from_be_bytes(be8(b)),
            _ => numeric(b)?,
        })),
        (Col::Date(v), None) => v.push(None),
        (Col::Date(v), Some(b)) => v.push(Some(if *t == Type::DATE {
            i32::from_be_bytes([b[0], b[1], b[2], b[3]]) + PG_EPOCH
        } else {
            (i64::from_be_bytes(be8(b)).div_euclid(86_400_000_000)) as i32 + PG_EPOCH
        })),
        (Col::Str(v), x) => v.push(x.map(|b| String::from_utf8_lossy(b).into_owned())),
    }
    Ok(())
}

/// One COPY: the rows of `sql` into a [`Table`]. NULL prices are errors naming the row.
fn copy(client: &mut Client, sql: &str, what: &str, prices: &[usize]) -> Result<Table> {
    let stmt = client
        .prepare(sql)
        .map_err(|e| anyhow!("{what}: {}", why(&e)))?;
    let cols: Vec<(String, Type)> = stmt
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.type_().clone()))
        .collect();
    let mut table = Table {
        names: cols.iter().map(|c| c.0.clone()).collect(),
        cols: cols
            .iter()
            .map(|(n, t)| col_for(t, n))
            .collect::<Result<_>>()
            .map_err(|e| anyhow!("{what}: {e}"))?,
        line_offset: None,
    };
    let mut r = client
        .copy_out(&format!("COPY ({sql}) TO STDOUT (FORMAT binary)"))
        .map_err(|e| anyhow!("{what}: {}", why(&e)))?;
    let mut buf = Vec::new();
    r.read_to_end(&mut buf).map_err(|e| {
        anyhow!("{what}: the stream broke off ({e}); the previous raw folder is unchanged")
    })?;
    drop(r);
    let bad = || anyhow!("{what}: malformed binary COPY stream");
    if buf.len() < 19 || &buf[..11] != b"PGCOPY\n\xff\r\n\0" {
        return Err(bad());
    }
    let ext = u32::from_be_bytes(buf[15..19].try_into().map_err(|_| bad())?) as usize;
    let mut at = 19 + ext;
    let mut row = 0usize;
    loop {
        let n = i16::from_be_bytes(
            buf.get(at..at + 2)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        );
        at += 2;
        if n == -1 {
            break;
        }
        if n as usize != cols.len() {
            return Err(bad());
        }
        for (j, (name, t)) in cols.iter().enumerate() {
            let len = i32::from_be_bytes(
                buf.get(at..at + 4)
                    .ok_or_else(bad)?
                    .try_into()
                    .map_err(|_| bad())?,
            );
            at += 4;
            let val = if len < 0 {
                if prices.contains(&j) {
                    bail!(
                        "{what}: row {}: {name} is NULL (a price must be present)",
                        row + 1
                    );
                }
                None
            } else {
                let v = buf.get(at..at + len as usize).ok_or_else(bad)?;
                at += len as usize;
                Some(v)
            };
            push(&mut table.cols[j], t, val).map_err(|e| anyhow!("{what}: {name}: {e}"))?;
        }
        row += 1;
    }
    Ok(table)
}

/// Stream the rows, one [`Source`] table per calendar year (per query when the date
/// column is not a date type) to `each`; returns the connection's `host:port/db`.
pub fn fetch(p: &PgParams, mut each: impl FnMut(Source) -> Result<()>) -> Result<String> {
    let mut cfg = config()?;
    cfg.connect_timeout(Duration::from_secs(10));
    let place = describe(&cfg);
    let mut client = cfg
        .connect(NoTls)
        .map_err(|e| anyhow!("postgres {place}: cannot connect: {}", why(&e)))?;
    let mapping = Mapping::load(&p.files.mapping)?;
    let src = |f: &str| {
        mapping
            .columns
            .get(f)
            .cloned()
            .unwrap_or_else(|| f.to_string())
    };
    let base = match (&p.table, &p.query) {
        (Some(t), None) => format!("SELECT * FROM {}", quote_ident(t)),
        (None, Some(q)) => format!("SELECT * FROM ({}) AS q", q.trim().trim_end_matches(';')),
        _ => bail!("--source postgres needs one of --table NAME or --query 'SELECT …'"),
    };
    let what = p.table.clone().unwrap_or_else(|| "--query".into());
    let date = quote_ident(&src("trade_date"));
    // The date column's type decides how rows are partitioned and filtered.
    let probe = client
        .prepare(&format!("{base} LIMIT 0"))
        .map_err(|e| anyhow!("postgres {place}: {what}: {}", why(&e)))?;
    let names: Vec<String> = probe
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let dtype = probe
        .columns()
        .iter()
        .find(|c| c.name() == src("trade_date"))
        .map(|c| c.type_().clone())
        .ok_or_else(|| {
            anyhow!(
                "postgres {place}: {what} has no date column {:?} (columns: {}); map trade_date",
                src("trade_date"),
                names.join(", ")
            )
        })?;
    let prices: Vec<usize> = ["open", "high", "low", "close"]
        .iter()
        .filter_map(|f| names.iter().position(|n| *n == src(f)))
        .collect();
    let is_date = matches!(dtype, Type::DATE | Type::TIMESTAMP | Type::TIMESTAMPTZ);
    let after = |d: i32| -> String {
        if is_date {
            format!("{date} > DATE '{}'", format_date(d))
        } else if matches!(dtype, Type::INT4 | Type::INT8) {
            format!("{date} > {}", format_date(d).replace('-', ""))
        } else {
            format!("{date} > '{}'", format_date(d).replace('-', ""))
        }
    };
    let mut queries: Vec<(String, String)> = Vec::new();
    if is_date {
        let (lo, hi): (Option<String>, Option<String>) = client
            .query_one(
                &format!(
                    "SELECT min({date})::date::text, max({date})::date::text FROM ({base}) AS b"
                ),
                &[],
            )
            .map(|r| (r.get(0), r.get(1)))
            .map_err(|e| anyhow!("postgres {place}: {what}: {}", why(&e)))?;
        let (Some(lo), Some(hi)) = (lo, hi) else {
            bail!("postgres {place}: {what} has no rows");
        };
        let (y0, y1) = (
            year_of(af_panel::dates::parse_date(&lo)?),
            year_of(af_panel::dates::parse_date(&hi)?),
        );
        for y in y0..=y1 {
            let mut w = format!(
                "{date} >= DATE '{}' AND {date} < DATE '{}'",
                format_date(ymd_to_days(y, 1, 1)),
                format_date(ymd_to_days(y + 1, 1, 1))
            );
            if let Some(d) = p.after {
                w += &format!(" AND {}", after(d));
            }
            queries.push((
                format!("{base} WHERE {w} ORDER BY {date}"),
                format!("{what} {y}"),
            ));
        }
    } else {
        let w = p
            .after
            .map(|d| format!(" WHERE {}", after(d)))
            .unwrap_or_default();
        queries.push((format!("SELECT * FROM ({base}) AS b{w}"), what.clone()));
    }
    for (sql, label) in queries {
        let table = copy(&mut client, &sql, &label, &prices)?;
        each(Source {
            name: PathBuf::from(format!("postgres:{label}")),
            table,
            sha256: None,
        })
        .context(format!("postgres {place}"))?;
    }
    Ok(place)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_binary_decodes() {
        // 12.34: ndigits 2, weight 0, sign +, dscale 2, digits [12, 3400]
        let b = [0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x0D, 0x48];
        assert_eq!(numeric(&b).unwrap(), 12.34);
        // -0.05: ndigits 1, weight -1, sign -, digits [500]
        let b = [0, 1, 0xFF, 0xFF, 0x40, 0, 0, 2, 0x01, 0xF4];
        assert_eq!(numeric(&b).unwrap(), -0.05);
        // 1234567.5: digits [123, 4567, 5000], weight 1
        let b = [0, 3, 0, 1, 0, 0, 0, 1, 0, 123, 0x11, 0xD7, 0x13, 0x88];
        assert_eq!(numeric(&b).unwrap(), 1234567.5);
    }
}
