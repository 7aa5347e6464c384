//! Parsing the three dialects (`native`, `qlib`, `alpha101`) into one [`Expr`] tree.
//!
//! A Pratt parser over a small token stream. Precedence, loosest first: `c ? a : b`,
//! `||`, `&&`, comparisons, `+ -`, `* /`, unary `-`/`!`, `^` (right-associative),
//! calls. Every error carries the byte span it is about and renders with a caret under
//! the source, plus what was expected (nearest valid names for an unknown one).

use std::fmt;

use crate::ast::Expr;
use crate::registry::{self, Arg, MAX_WINDOW, OpDef};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Dialect {
    Native,
    Qlib,
    Alpha101,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Native => "native",
            Dialect::Qlib => "qlib",
            Dialect::Alpha101 => "alpha101",
        }
    }
    pub fn from_name(s: &str) -> Option<Dialect> {
        match s {
            "native" => Some(Dialect::Native),
            "qlib" => Some(Dialect::Qlib),
            "alpha101" => Some(Dialect::Alpha101),
            _ => None,
        }
    }
}

/// Fields an expression may read: the panel's numeric fields and its group fields.
#[derive(Debug, Clone)]
pub struct Fields {
    pub numeric: Vec<String>,
    pub groups: Vec<String>,
}

impl Default for Fields {
    fn default() -> Self {
        Fields {
            numeric: [
                "open", "high", "low", "close", "vwap", "volume", "amount", "returns", "turnover",
                "cap",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            groups: vec![af_panel::columns::INDUSTRY.into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub message: String,
    pub start: usize,
    pub end: usize,
    pub source: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let col = self.source[..self.start.min(self.source.len())]
            .chars()
            .count();
        let width = self
            .source
            .get(self.start..self.end.max(self.start + 1).min(self.source.len()))
            .map(|s| s.chars().count())
            .unwrap_or(1)
            .max(1);
        write!(
            f,
            "{} (at column {})\n  {}\n  {}{}",
            self.message,
            col + 1,
            self.source,
            " ".repeat(col),
            "^".repeat(width)
        )
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Sym(&'static str),
    End,
}

const SYMBOLS: [&str; 19] = [
    "&&", "||", "<=", ">=", "==", "!=", "+", "-", "*", "/", "^", "<", ">", "(", ")", ",", "?", ":",
    "!",
];

fn lex(src: &str) -> Result<Vec<(Tok, usize, usize)>, ParseError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |m: String, s: usize, e: usize| ParseError {
        message: m,
        start: s,
        end: e,
        source: src.to_string(),
    };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() || (c == b'.' && i + 1 < b.len() && b[i + 1].is_ascii_digit()) {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let save = i;
                i += 1;
                if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                    i += 1;
                }
                if i < b.len() && b[i].is_ascii_digit() {
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                } else {
                    i = save;
                }
            }
            let text = &src[start..i];
            let v: f64 = text
                .parse()
                .map_err(|_| err(format!("malformed number {text:?}"), start, i))?;
            if !v.is_finite() {
                return Err(err(
                    format!("number {text} is out of range (largest is about 1.8e308)"),
                    start,
                    i,
                ));
            }
            out.push((Tok::Num(v), start, i));
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                i += 1;
            }
            out.push((Tok::Ident(src[start..i].to_string()), start, i));
            continue;
        }
        if let Some(s) = SYMBOLS.iter().find(|s| src[i..].starts_with(**s)) {
            i += s.len();
            out.push((Tok::Sym(s), start, i));
            continue;
        }
        let ch = src[i..].chars().next().unwrap_or('?');
        return Err(err(
            format!("unexpected character {ch:?}"),
            i,
            i + ch.len_utf8(),
        ));
    }
    out.push((Tok::End, src.len(), src.len()));
    Ok(out)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(Tok, usize, usize)>,
    pos: usize,
    dialect: Dialect,
    fields: &'a Fields,
    depth: usize,
}

type Spanned = (Expr, usize, usize);

/// Parse `src` in `dialect`, checking fields against `fields`. The result is not yet
/// canonical; call [`Expr::canonical`] for that.
pub fn parse(src: &str, dialect: Dialect, fields: &Fields) -> Result<Expr, ParseError> {
    let toks = lex(src)?;
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        dialect,
        fields,
        depth: 0,
    };
    let (e, _, _) = p.expr(0)?;
    match p.peek() {
        Tok::End => Ok(e),
        _ => {
            let (_, s, en) = p.toks[p.pos].clone();
            Err(p.err(
                "unexpected text after the expression (expected an operator or the end)".into(),
                s,
                en,
            ))
        }
    }
}

/// Parse and canonicalise.
pub fn parse_canonical(src: &str, dialect: Dialect, fields: &Fields) -> Result<Expr, ParseError> {
    parse(src, dialect, fields).map(|e| e.canonical())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            cur[j] = (prev[j] + 1)
                .min(cur[j - 1] + 1)
                .min(prev[j - 1] + (a[i - 1] != b[j - 1]) as usize);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn nearest(name: &str, candidates: &[&str]) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = candidates
        .iter()
        .map(|c| (levenshtein(name, c), *c))
        .filter(|(d, _)| *d <= 3.max(name.len() / 3))
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_string())
        .collect()
}

const MAX_DEPTH: usize = 200;

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }
    fn span(&self) -> (usize, usize) {
        (self.toks[self.pos].1, self.toks[self.pos].2)
    }
    fn err(&self, message: String, start: usize, end: usize) -> ParseError {
        ParseError {
            message,
            start,
            end,
            source: self.src.to_string(),
        }
    }
    fn expect(&mut self, sym: &'static str, what: &str) -> Result<usize, ParseError> {
        match self.peek() {
            Tok::Sym(s) if *s == sym => {
                let e = self.toks[self.pos].2;
                self.pos += 1;
                Ok(e)
            }
            _ => {
                let (s, e) = self.span();
                Err(self.err(format!("expected `{sym}` {what}"), s, e))
            }
        }
    }

    fn binop_info(&self) -> Option<(&'static str, u8, bool)> {
        // (symbol, precedence, right-assoc)
        match self.peek() {
            Tok::Sym(s) => match *s {
                "?" => Some(("?", 1, true)),
                "||" => Some(("||", 2, false)),
                "&&" => Some(("&&", 3, false)),
                "<" | "<=" | ">" | ">=" | "==" | "!=" => Some((s, 4, false)),
                "+" | "-" => Some((s, 5, false)),
                "*" | "/" => Some((s, 6, false)),
                "^" => Some(("^", 8, true)),
                _ => None,
            },
            _ => None,
        }
    }

    fn expr(&mut self, min_prec: u8) -> Result<Spanned, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let (s, e) = self.span();
            return Err(self.err(
                format!("expression nested deeper than {MAX_DEPTH} levels"),
                s,
                e,
            ));
        }
        let mut lhs = self.unary()?;
        while let Some((sym, prec, right)) = self.binop_info() {
            if prec < min_prec {
                break;
            }
            self.pos += 1;
            if sym == "?" {
                let (a, _, _) = self.expr(0)?;
                self.expect(":", "in `c ? a : b`")?;
                let (b, _, be) = self.expr(prec)?;
                let op = registry::get("if_else").expect("if_else is registered");
                lhs = (Expr::call(op, vec![lhs.0, a, b]), lhs.1, be);
                continue;
            }
            let (rhs, _, re) = self.expr(if right { prec } else { prec + 1 })?;
            let op = registry::resolve_symbol(self.dialect.name(), sym)
                .expect("every infix symbol is registered");
            lhs = (Expr::call(op, vec![lhs.0, rhs]), lhs.1, re);
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Spanned, ParseError> {
        let (s, _) = self.span();
        match self.peek() {
            Tok::Sym("-") => {
                self.pos += 1;
                // Unary minus binds looser than `^` (so -x^2 = -(x^2)), tighter than `*`.
                let (e, _, end) = self.expr(7)?;
                let e = match e {
                    Expr::Num(x) => Expr::Num(-x),
                    e => Expr::call(registry::get("neg").expect("neg"), vec![e]),
                };
                Ok((e, s, end))
            }
            Tok::Sym("+") => {
                self.pos += 1;
                self.expr(7)
            }
            Tok::Sym("!") => {
                self.pos += 1;
                let (e, _, end) = self.expr(7)?;
                Ok((
                    Expr::call(registry::get("eq").expect("eq"), vec![e, Expr::Num(0.0)]),
                    s,
                    end,
                ))
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Spanned, ParseError> {
        let (tok, s, e) = self.toks[self.pos].clone();
        match tok {
            Tok::Num(x) => {
                self.pos += 1;
                Ok((Expr::Num(x), s, e))
            }
            Tok::Sym("(") => {
                self.pos += 1;
                let (inner, _, _) = self.expr(0)?;
                let end = self.expect(")", "to close `(`")?;
                Ok((inner, s, end))
            }
            Tok::Ident(name) => {
                self.pos += 1;
                if matches!(self.peek(), Tok::Sym("(")) {
                    self.call(&name, s, e)
                } else {
                    self.field(&name, s, e)
                }
            }
            Tok::End => Err(self.err(
                "unexpected end of expression (expected a number, field or function)".into(),
                s,
                e,
            )),
            Tok::Sym(sym) => Err(self.err(
                format!("unexpected `{sym}` (expected a number, field or function)"),
                s,
                e,
            )),
        }
    }

    fn field(&mut self, raw: &str, s: usize, e: usize) -> Result<Spanned, ParseError> {
        let mut name = raw.to_string();
        match self.dialect {
            Dialect::Qlib => {
                name = match raw.strip_prefix('$') {
                    Some(n) => n.to_string(),
                    None => return Err(self.err(
                        format!(
                            "unknown name `{raw}` (Qlib fields are written with `$`, e.g. `$close`)"
                        ),
                        s,
                        e,
                    )),
                };
            }
            Dialect::Alpha101 => {
                if let Some(class) = raw.strip_prefix("IndClass.") {
                    if matches!(class, "sector" | "industry" | "subindustry") {
                        return Ok((
                            Expr::Field(
                                self.fields
                                    .groups
                                    .first()
                                    .cloned()
                                    .unwrap_or_else(|| af_panel::columns::INDUSTRY.into()),
                            ),
                            s,
                            e,
                        ));
                    }
                }
                if let Some(d) = raw.strip_prefix("adv") {
                    if let Ok(d) = d.parse::<u32>() {
                        if !(2..=MAX_WINDOW).contains(&d) {
                            return Err(self.err(
                                format!("window {d} out of range 2..={MAX_WINDOW}"),
                                s,
                                e,
                            ));
                        }
                        // adv{d}: average daily dollar volume over d days.
                        let mean = registry::get("ts_mean").expect("ts_mean");
                        return Ok((
                            Expr::call(
                                mean,
                                vec![Expr::Field("amount".into()), Expr::Num(d as f64)],
                            ),
                            s,
                            e,
                        ));
                    }
                }
            }
            Dialect::Native => {
                if raw.starts_with('$') {
                    return Err(self.err(format!("`{raw}`: `$` fields are Qlib syntax (use --dialect qlib, or write `{}`)", &raw[1..]), s, e));
                }
            }
        }
        if name.starts_with(af_panel::columns::LABEL_PREFIX) {
            return Err(self.err(
                format!("`{name}` is a label (future returns): expressions may not read it"),
                s,
                e,
            ));
        }
        if self.fields.numeric.iter().any(|f| *f == name)
            || self.fields.groups.iter().any(|f| *f == name)
        {
            return Ok((Expr::Field(name), s, e));
        }
        let mut cands: Vec<&str> = self
            .fields
            .numeric
            .iter()
            .chain(&self.fields.groups)
            .map(|s| s.as_str())
            .collect();
        let ops = registry::names(self.dialect.name());
        cands.extend(ops.iter());
        let near = nearest(&name, &cands);
        let hint = if near.is_empty() {
            String::new()
        } else {
            format!("; did you mean {}?", near.join(", "))
        };
        Err(self.err(
            format!(
                "unknown field `{name}` (fields: {}){hint}",
                self.fields.numeric.join(", ")
            ),
            s,
            e,
        ))
    }

    fn call(&mut self, name: &str, s: usize, e: usize) -> Result<Spanned, ParseError> {
        self.expect("(", "")?;
        let mut args: Vec<Spanned> = Vec::new();
        if !matches!(self.peek(), Tok::Sym(")")) {
            loop {
                args.push(self.expr(0)?);
                match self.peek() {
                    Tok::Sym(",") => self.pos += 1,
                    Tok::Sym(")") => break,
                    _ => {
                        let (a, b) = self.span();
                        return Err(self.err(
                            format!("expected `,` or `)` in the arguments of `{name}`"),
                            a,
                            b,
                        ));
                    }
                }
            }
        }
        let end = self.expect(")", &format!("to close `{name}(`"))?;
        let op = self.resolve_op(name, &args, s, e)?;
        self.check_args(op, name, args, s, end)
    }

    fn resolve_op(
        &self,
        name: &str,
        args: &[Spanned],
        s: usize,
        e: usize,
    ) -> Result<&'static OpDef, ParseError> {
        let d = self.dialect.name();
        if self.dialect == Dialect::Alpha101 {
            let lower = name.to_ascii_lowercase();
            // The paper's min(x, d) / max(x, d) with a constant d are ts_min / ts_max.
            if (lower == "min" || lower == "max")
                && args.len() == 2
                && matches!(args[1].0.canonical(), Expr::Num(_))
            {
                return Ok(
                    registry::get(if lower == "min" { "ts_min" } else { "ts_max" })
                        .expect("registered"),
                );
            }
            if let Some(op) = registry::resolve(d, name).or_else(|| registry::resolve(d, &lower)) {
                return Ok(op);
            }
        } else if let Some(op) = registry::resolve(d, name) {
            return Ok(op);
        }
        if self.dialect == Dialect::Qlib && registry::QLIB_PENDING.contains(&name) {
            return Err(self.err(
                format!(
                    "Qlib's `{name}` (partial windows / Qlib-specific rules) is not supported yet"
                ),
                s,
                e,
            ));
        }
        let near = nearest(name, &registry::names(d));
        let hint = if near.is_empty() {
            String::new()
        } else {
            format!("; did you mean {}?", near.join(", "))
        };
        Err(self.err(
            format!("unknown function `{name}` in the {d} dialect{hint}"),
            s,
            e,
        ))
    }

    fn check_args(
        &self,
        op: &'static OpDef,
        name: &str,
        mut args: Vec<Spanned>,
        s: usize,
        end: usize,
    ) -> Result<Spanned, ParseError> {
        let n = op.args.len();
        let min = n - op.defaults.len();
        if args.len() < min || args.len() > n {
            let want = if min == n {
                format!("{n}")
            } else {
                format!("{min} to {n}")
            };
            let sig: Vec<&str> = op
                .args
                .iter()
                .map(|a| match a {
                    Arg::Series => "x",
                    Arg::Window => "d",
                    Arg::Scalar => "a",
                    Arg::Group => "group",
                })
                .collect();
            return Err(self.err(
                format!(
                    "`{name}` takes {want} arguments ({}({})), got {}",
                    op.name,
                    sig.join(", "),
                    args.len()
                ),
                s,
                end,
            ));
        }
        for k in args.len()..n {
            args.push((Expr::Num(op.defaults[k - min]), end, end));
        }
        let mut out = Vec::with_capacity(n);
        for (k, (a, as_, ae)) in args.into_iter().enumerate() {
            match op.args[k] {
                Arg::Series => {
                    if let Expr::Field(f) = &a {
                        if self.fields.groups.contains(f) {
                            return Err(self.err(format!("`{f}` is a group field: it can only be the group argument of group_* ops"), as_, ae));
                        }
                    }
                    out.push(a)
                }
                Arg::Window => {
                    let c = a.canonical();
                    let Expr::Num(mut w) = c else {
                        return Err(self.err(
                            format!("the window of `{name}` must be an integer constant"),
                            as_,
                            ae,
                        ));
                    };
                    if self.dialect == Dialect::Alpha101 {
                        w = w.floor(); // the paper's fractional windows, floored as the paper does
                    }
                    if w != w.trunc() {
                        return Err(self.err(
                            format!("the window of `{name}` must be an integer, got {w}"),
                            as_,
                            ae,
                        ));
                    }
                    if w < op.min_window as f64 || w > MAX_WINDOW as f64 {
                        return Err(self.err(
                            format!(
                                "window {w} of `{name}` out of range {}..={MAX_WINDOW}",
                                op.min_window
                            ),
                            as_,
                            ae,
                        ));
                    }
                    out.push(Expr::Num(w));
                }
                Arg::Scalar => {
                    let c = a.canonical();
                    if !matches!(c, Expr::Num(_)) {
                        return Err(self.err(
                            format!("argument {} of `{name}` must be a numeric constant", k + 1),
                            as_,
                            ae,
                        ));
                    }
                    out.push(c);
                }
                Arg::Group => match &a {
                    Expr::Field(f) if self.fields.groups.contains(f) => out.push(a),
                    _ => {
                        return Err(self.err(
                            format!(
                                "argument {} of `{name}` must be a group field ({})",
                                k + 1,
                                self.fields.groups.join(", ")
                            ),
                            as_,
                            ae,
                        ));
                    }
                },
            }
        }
        Ok((Expr::call(op, out), s, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(src: &str, d: Dialect) -> String {
        parse_canonical(src, d, &Fields::default())
            .unwrap_or_else(|e| panic!("{e}"))
            .canonical_text()
    }

    #[test]
    fn precedence_and_canonical() {
        assert_eq!(
            canon("rank(ts_mean(close, 20) / close) * -1", Dialect::Native),
            "mul(-1,rank(div(ts_mean(close,20),close)))"
        );
        assert_eq!(canon("1 + 2 * 3", Dialect::Native), "7");
        assert_eq!(
            canon("-x^2".replace('x', "close").as_str(), Dialect::Native),
            "neg(signed_power(close,2))"
        );
        assert_eq!(
            canon("close > open ? 1 : volume", Dialect::Native),
            "if_else(gt(close,open),1,volume)"
        );
        assert_eq!(
            canon(
                "a && b || c"
                    .replace('a', "open")
                    .replace('b', "high")
                    .replace('c', "low")
                    .as_str(),
                Dialect::Native
            ),
            "or(and(high,open),low)"
        );
        // Commutative arguments sort, so spellings agree.
        assert_eq!(
            canon("volume * close", Dialect::Native),
            canon("close * volume", Dialect::Native)
        );
        assert_eq!(canon("scale(close)", Dialect::Native), "scale(close,1)");
        // A negative zero prints as "0" inside the surrounding text.
        assert_eq!(canon("close + -0", Dialect::Native), "add(0,close)");
    }

    #[test]
    fn dialects_share_ids() {
        let f = Fields::default();
        let a = parse_canonical("ts_delay(close, 5) / close", Dialect::Native, &f).unwrap();
        let b = parse_canonical("Ref($close, 5) / $close", Dialect::Qlib, &f).unwrap();
        let c = parse_canonical("delay(close, 5) / close", Dialect::Alpha101, &f).unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id(), c.id());
        assert_eq!(
            canon("Ts_Rank(volume, 9.87) + min(close, 3.2)", Dialect::Alpha101),
            "add(ts_min(close,3),ts_rank(volume,9))"
        );
        assert_eq!(
            canon(
                "IndNeutralize(returns, IndClass.subindustry)",
                Dialect::Alpha101
            ),
            "group_neutralize(returns,industry)"
        );
        assert_eq!(canon("adv20", Dialect::Alpha101), "ts_mean(amount,20)");
    }

    #[test]
    fn errors_point_at_the_problem() {
        let f = Fields::default();
        let e = parse("ts_maen(close, 5)", Dialect::Native, &f).unwrap_err();
        assert!(e.message.contains("ts_mean"), "{e}");
        assert_eq!((e.start, e.end), (0, 7));
        let e = parse("ts_mean(close, volume)", Dialect::Native, &f).unwrap_err();
        assert!(e.message.contains("integer constant"), "{e}");
        assert_eq!(&e.source[e.start..e.end], "volume");
        let e = parse("ts_mean(close, 500)", Dialect::Native, &f).unwrap_err();
        assert!(e.message.contains("out of range"), "{e}");
        let e = parse("ts_mean(close)", Dialect::Native, &f).unwrap_err();
        assert!(e.message.contains("takes 2 arguments"), "{e}");
        let e = parse("close + fwd_ret_5", Dialect::Native, &f).unwrap_err();
        assert!(e.message.contains("label"), "{e}");
        let e = parse("rank(close", Dialect::Native, &f).unwrap_err();
        assert!(e.message.contains("`)`"), "{e}");
        assert!(e.to_string().contains('^'));
        let e = parse("Mad($close, 5)", Dialect::Qlib, &f).unwrap_err();
        assert!(e.message.contains("not supported yet"), "{e}");
        // Qlib's rolling ops are the q_ family; its comparisons are numpy's.
        let q = parse_canonical("Mean($close > Ref($close, 1), 5)", Dialect::Qlib, &f).unwrap();
        assert_eq!(
            q.canonical_text(),
            "q_mean(q_gt(close,ts_delay(close,1)),5)"
        );
        assert!(parse("((((", Dialect::Native, &f).is_err());
        assert!(parse(&"(".repeat(10_000), Dialect::Native, &f).is_err());
        assert!(parse("1e", Dialect::Native, &f).is_err());
    }
}

/// An expression file: one expression per line, optionally named (`name = expr`);
/// blank lines and `#` comments are skipped, and a `# dialect: qlib` line sets the
/// dialect. Returns (name or "", expression text) pairs in file order.
pub fn expression_lines(text: &str) -> Result<(Vec<(String, String)>, Option<Dialect>), String> {
    let mut d = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(h) = l.strip_prefix('#') {
            if let Some(v) = h.trim().strip_prefix("dialect:") {
                d = Some(
                    Dialect::from_name(v.trim())
                        .ok_or_else(|| format!("unknown dialect {:?}", v.trim()))?,
                );
            }
            continue;
        }
        if l.is_empty() {
            continue;
        }
        match l.split_once('=') {
            Some((n, e))
                if !n.trim().is_empty()
                    && n.trim()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !e.starts_with('=') =>
            {
                out.push((n.trim().to_string(), e.trim().to_string()))
            }
            _ => out.push((String::new(), l.to_string())),
        }
    }
    Ok((out, d))
}
