//! Feature sets shipped with the product: named expression files the tools accept
//! wherever they take a file of expressions (`lgbm-train --features alpha158`,
//! `expr sets`). Each is the text of an expression file (`name = expression` lines,
//! a `# dialect:` line).

/// Qlib's Alpha158 (pyqlib 0.9.7), generated from Qlib's own source by
/// tests/py/alpha158.py and checked against Qlib's own values in tests/qlib.rs.
pub const ALPHA158: &str = include_str!("../sets/alpha158.txt");

/// (name, what it is, text) of every shipped set.
pub const SETS: [(&str, &str, &str); 1] = [(
    "alpha158",
    "Qlib's Alpha158: the 158 features of its LightGBM benchmark, in the qlib dialect",
    ALPHA158,
)];

/// A shipped set's text by name.
pub fn get(name: &str) -> Option<&'static str> {
    SETS.iter().find(|s| s.0 == name).map(|s| s.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha158_has_158_features_in_the_qlib_dialect() {
        let (lines, d) = crate::expression_lines(get("alpha158").unwrap()).unwrap();
        assert_eq!(lines.len(), 158);
        assert_eq!(d, Some(crate::Dialect::Qlib));
        assert!(get("alpha360").is_none());
    }
}
