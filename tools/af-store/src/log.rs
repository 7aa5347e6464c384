//! Logging for every tool through `tracing`: `-v` / `-vv` / `-q` and `RUST_LOG` set the
//! level, `--log-format json` writes one JSON object per line (`level`, `tool`, `step`,
//! `message`, and the event's fields) for Airflow / GitHub log collectors. Text lines
//! read as before: `warning: …` and `error: …` for those levels, the plain message for
//! info. Logs go to stderr; the pipeline runner sets `AF_STEP` so each line names its step.
//!
//! A small subscriber of our own: the tools need levels and two line formats, not
//! spans or filters by module, and it keeps `tracing-subscriber` out of the build.

use std::io::Write;
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// The logging flags every tool takes (`#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LogArgs {
    /// More detail on stderr (-vv for everything); RUST_LOG=debug works too.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log lines as text or as one JSON object per line.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

struct Sub {
    tool: &'static str,
    step: Option<String>,
    max: Level,
    json: bool,
}

static FORMAT: OnceLock<(&'static str, bool)> = OnceLock::new();

fn level_from_env() -> Option<Level> {
    // RUST_LOG: a level, or `target=level` pairs (the most verbose one counts).
    let v = std::env::var("RUST_LOG").ok()?;
    v.split(',')
        .filter_map(|p| p.rsplit('=').next())
        .filter_map(|l| l.trim().parse::<Level>().ok())
        .max()
}

/// Install the subscriber for `tool` (once per process).
pub fn init(tool: &'static str, a: &LogArgs) {
    let max = if a.quiet {
        Level::WARN
    } else {
        match a.verbose {
            0 => level_from_env().unwrap_or(Level::INFO),
            1 => Level::DEBUG,
            _ => Level::TRACE,
        }
    };
    let json = a.log_format == LogFormat::Json;
    let _ = FORMAT.set((tool, json));
    let _ = tracing::subscriber::set_global_default(Sub {
        tool,
        step: std::env::var("AF_STEP").ok().filter(|s| !s.is_empty()),
        max,
        json,
    });
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        if f.name() == "message" {
            self.message = format!("{v:?}");
        } else {
            self.rest.insert(
                f.name().to_string(),
                serde_json::Value::String(format!("{v:?}")),
            );
        }
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        if f.name() == "message" {
            self.message = v.to_string();
        } else {
            self.rest.insert(f.name().to_string(), v.into());
        }
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.rest.insert(f.name().to_string(), v.into());
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.rest.insert(f.name().to_string(), v.into());
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.rest.insert(f.name().to_string(), v.into());
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.rest.insert(f.name().to_string(), v.into());
    }
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// One line in the chosen format (also used for the final `error:` line).
pub fn line(
    tool: &str,
    step: Option<&str>,
    level: &Level,
    message: &str,
    rest: serde_json::Map<String, serde_json::Value>,
    json: bool,
) -> String {
    if json {
        let mut o = serde_json::Map::new();
        o.insert("level".into(), level_name(level).into());
        o.insert("tool".into(), tool.into());
        o.insert(
            "step".into(),
            step.map_or(serde_json::Value::Null, |s| s.into()),
        );
        o.insert("message".into(), message.into());
        for (k, v) in rest {
            o.entry(k).or_insert(v);
        }
        serde_json::Value::Object(o).to_string()
    } else {
        let prefix = match *level {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            Level::INFO => "",
            _ => "debug: ",
        };
        let mut s = format!("{prefix}{message}");
        for (k, v) in rest {
            s += &format!(
                " {k}={}",
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string())
            );
        }
        s
    }
}

/// The error line `main_with` prints: JSON when the tool logs JSON.
pub fn error_line(message: &str) -> String {
    match FORMAT.get() {
        Some((tool, true)) => line(
            tool,
            std::env::var("AF_STEP").ok().as_deref(),
            &Level::ERROR,
            message,
            Default::default(),
            true,
        ),
        _ => format!("error: {message}"),
    }
}

impl Subscriber for Sub {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= &self.max
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut f = Fields::default();
        e.record(&mut f);
        let s = line(
            self.tool,
            self.step.as_deref(),
            e.metadata().level(),
            &f.message,
            f.rest,
            self.json,
        );
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{s}");
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
