//! Secrets (a Tushare token, a database URL): from the environment, else from a
//! git-ignored `.env` in the working directory (`NAME=value`, optionally quoted).
//! Callers never log or record the value.

/// The value of `name`, or None when neither the environment nor `.env` sets it.
pub fn secret(name: &str) -> Option<String> {
    if let Ok(v) = std::env::var(name) {
        if !v.trim().is_empty() {
            return Some(v.trim().to_string());
        }
    }
    let text = std::fs::read_to_string(".env").ok()?;
    text.lines().find_map(|line| {
        let v = line
            .trim()
            .strip_prefix(name)?
            .trim_start()
            .strip_prefix('=')?;
        let v = v.trim().trim_matches('"').trim_matches('\'');
        (!v.is_empty()).then(|| v.to_string())
    })
}
