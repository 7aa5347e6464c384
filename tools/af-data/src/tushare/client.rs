//! The Tushare Pro HTTP protocol: one POST per call, JSON in and out, paged answers,
//! a client-side rate limiter, retries with backoff, and errors told apart by code and
//! message (`40101` bad token; `40203` is both "rate limited" and "no permission").
//!
//! The token never leaves this module except in the request body: errors name the
//! endpoint and the server's message, never the token.

use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use serde_json::{Map, Value, json};

/// How the client talks to the service.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// e.g. `http://api.waditu.com/dataapi` (the official client's); the endpoint name is
    /// appended as a path segment, as the official client does.
    pub url: String,
    pub token: String,
    /// Calls per minute over all endpoints (0 = no limit).
    pub rate_per_min: f64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries of a call after timeouts, dropped connections and 5xx answers.
    pub retries: u32,
    /// First backoff; doubled per retry, with up to 50 % jitter.
    pub backoff: Duration,
    /// Pause after a rate-limit answer (the service wants about a minute).
    pub limit_pause: Duration,
    /// Rate-limit answers tolerated for one call before giving up.
    pub limit_retries: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            url: "http://api.waditu.com/dataapi".into(),
            token: String::new(),
            rate_per_min: 200.0,
            timeout: Duration::from_secs(30),
            retries: 6,
            backoff: Duration::from_millis(500),
            limit_pause: Duration::from_secs(61),
            limit_retries: 10,
        }
    }
}

/// One answer: column names and rows, as the service sent them.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Frame {
    pub fields: Vec<String>,
    pub items: Vec<Vec<Value>>,
}

impl Frame {
    /// The index of a column the caller needs; a clear error when the answer lacks it.
    pub fn col(&self, api: &str, name: &str) -> Result<usize> {
        self.fields.iter().position(|f| f == name).ok_or_else(|| {
            anyhow!(
                "tushare {api}: the answer has no field {name:?} (fields: {})",
                self.fields.join(", ")
            )
        })
    }
}

/// What the caller counts (tests and the summary line).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub calls: u64,
    pub retries: u64,
    pub rate_limited: u64,
}

pub struct Client {
    cfg: ClientConfig,
    agent: ureq::Agent,
    next_slot: Option<Instant>,
    jitter: u64,
    pub stats: Stats,
}

enum Attempt {
    Ok(Value),
    /// Worth retrying after a backoff.
    Transient(String),
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(cfg.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            cfg,
            agent,
            next_slot: None,
            jitter: 0x9E37_79B9_7F4A_7C15,
            stats: Stats::default(),
        }
    }

    /// Wait for the rate limiter: calls are spaced 60/rate seconds apart (1 % slack),
    /// so no 60-second window ever holds more than `rate` calls.
    fn throttle(&mut self) {
        if self.cfg.rate_per_min <= 0.0 {
            return;
        }
        let gap = Duration::from_secs_f64(60.0 / self.cfg.rate_per_min * 1.01);
        let now = Instant::now();
        if let Some(t) = self.next_slot {
            if t > now {
                sleep(t - now);
            }
        }
        self.next_slot = Some(Instant::now() + gap);
    }

    fn backoff(&mut self, k: u32) -> Duration {
        // xorshift jitter: spreads retries of parallel users; not part of any output.
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let base = self.cfg.backoff.as_secs_f64() * 2f64.powi(k as i32);
        Duration::from_secs_f64(base * (1.0 + 0.5 * (self.jitter % 1000) as f64 / 1000.0))
    }

    fn post(&mut self, api: &str, body: &str) -> Attempt {
        self.throttle();
        self.stats.calls += 1;
        let url = format!("{}/{api}", self.cfg.url.trim_end_matches('/'));
        let mut resp = match self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body)
        {
            Ok(r) => r,
            Err(e) => return Attempt::Transient(format!("{e}")),
        };
        let status = resp.status().as_u16();
        let text = match resp.body_mut().read_to_string() {
            Ok(t) => t,
            Err(e) => return Attempt::Transient(format!("reading the answer: {e}")),
        };
        if status >= 500 || status == 429 {
            return Attempt::Transient(format!("HTTP {status}"));
        }
        if status != 200 {
            // Not retried: a 4xx other than 429 will not get better.
            return Attempt::Ok(json!({"code": -(status as i64), "msg": format!("HTTP {status}")}));
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(v) => Attempt::Ok(v),
            Err(e) => {
                Attempt::Ok(json!({"code": -1, "msg": format!("malformed JSON answer ({e})")}))
            }
        }
    }

    /// One page: retries transient failures, pauses on rate limits, errors on the rest.
    fn call_page(&mut self, api: &str, params: &Map<String, Value>, fields: &str) -> Result<Value> {
        let body =
            json!({"api_name": api, "token": self.cfg.token, "params": params, "fields": fields})
                .to_string();
        let (mut transient, mut limited) = (0u32, 0u32);
        loop {
            let v = match self.post(api, &body) {
                Attempt::Transient(why) => {
                    if transient >= self.cfg.retries {
                        bail!(
                            "tushare {api}: {} unreachable after {} attempts (last: {why})",
                            self.cfg.url,
                            transient + 1
                        );
                    }
                    let d = self.backoff(transient);
                    transient += 1;
                    self.stats.retries += 1;
                    say(&format!(
                        "tushare {api}: {why}; retry {transient}/{} in {:.1} s",
                        self.cfg.retries,
                        d.as_secs_f64()
                    ));
                    sleep(d);
                    continue;
                }
                Attempt::Ok(v) => v,
            };
            let code = v.get("code").and_then(|c| c.as_i64()).unwrap_or(-1);
            let msg = v
                .get("msg")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string();
            match code {
                0 => return Ok(v),
                40101 => bail!(
                    "tushare {api}: the token was rejected (40101: {msg}); set TUSHARE_TOKEN to a valid token"
                ),
                40203 if msg.contains("权限") && !msg.contains("最多访问") => bail!(
                    "tushare {api}: the account has no permission for this endpoint (40203: {msg})"
                ),
                40203 => {
                    self.stats.rate_limited += 1;
                    if limited >= self.cfg.limit_retries {
                        bail!(
                            "tushare {api}: still rate-limited after {limited} pauses (40203: {msg}); lower --rate"
                        );
                    }
                    limited += 1;
                    say(&format!(
                        "tushare {api}: rate-limited (40203); pausing {:.0} s",
                        self.cfg.limit_pause.as_secs_f64()
                    ));
                    sleep(self.cfg.limit_pause);
                }
                _ => bail!("tushare {api}: error {code}: {msg}"),
            }
        }
    }

    /// A whole answer: pages with limit/offset until `has_more` is false. Fields are
    /// checked: an answer missing a requested field is an error naming it.
    pub fn query(&mut self, api: &str, params: &[(&str, &str)], fields: &[&str]) -> Result<Frame> {
        let mut p: Map<String, Value> = params
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let fields_s = fields.join(",");
        let mut out = Frame::default();
        let mut offset = 0usize;
        loop {
            if offset > 0 {
                p.insert("offset".into(), json!(offset));
            }
            let v = self.call_page(api, &p, &fields_s)?;
            let data = v
                .get("data")
                .filter(|d| d.is_object())
                .ok_or_else(|| anyhow!("tushare {api}: the answer has no data"))?;
            let names: Vec<String> = data
                .get("fields")
                .and_then(|f| f.as_array())
                .ok_or_else(|| anyhow!("tushare {api}: the answer has no field list"))?
                .iter()
                .map(|f| f.as_str().unwrap_or("").to_string())
                .collect();
            let items: Vec<Vec<Value>> = data
                .get("items")
                .and_then(|i| i.as_array())
                .ok_or_else(|| anyhow!("tushare {api}: the answer has no items"))?
                .iter()
                .map(|r| r.as_array().cloned().unwrap_or_default())
                .collect();
            if offset == 0 {
                out.fields = names.clone();
            } else if names != out.fields {
                bail!("tushare {api}: pages disagree on their fields");
            }
            for f in fields {
                out.col(api, f)?;
            }
            if items.iter().any(|r| r.len() != names.len()) {
                bail!("tushare {api}: a row's length differs from the field list");
            }
            let n = items.len();
            out.items.extend(items);
            let more = data
                .get("has_more")
                .and_then(|m| m.as_bool())
                .unwrap_or(false);
            if !more || n == 0 {
                return Ok(out);
            }
            offset += n;
        }
    }
}

/// Progress and retry lines go to stderr (the tools' log stream).
fn say(line: &str) {
    tracing::warn!("{line}");
}
