//! The pipeline file: variables, steps, and the `for` construct, expanded into a plain
//! list of steps with every `${var}` substituted.
//!
//! ```yaml
//! name: mine
//! vars: {generations: 10, pop: 200}
//! steps:
//!   - name: gen-${g:03}
//!     for: {g: "1..${generations}"}      # one step per g, end exclusive
//!     tool: gp-gen
//!     args: [--prev, "c/gen-${g-1:03}.parquet", --out, "c/gen-${g:03}.parquet"]
//!     inputs: ["c/gen-${g-1:03}.parquet"]
//!     outputs: ["c/gen-${g:03}.parquet"]
//! ```
//! `${name}`, `${name+1}`, `${name-1}`, and a zero-padded width `${name:03}`.
//!
//! A variable whose value is `~` (null) is *unset*: an argument that mentions it, such
//! as `--assets=${assets}`, is left out, so the tool's own default applies — one place
//! for each default, the tool's — until `--set assets=…` gives one. Anywhere else an
//! unset variable is an error.
//!
//! An argument that is exactly `${@name}` is the variable's value split into words
//! (whitespace; '…' and "…" group): a way to pass any flag of a step's tool from
//! `--set` (`--set fetch_args='--bad-rows drop --max-move 4'`) without a variable per
//! flag. The words are the step's arguments, so they are in its key like any other.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;

/// One argument of a step: the substituted text (left out when it mentions an unset
/// variable), or for `${@name}` the variable's words.
fn expand_arg(a: &str, vars: &BTreeMap<String, String>) -> Result<Vec<String>> {
    if let Some(name) = a.strip_prefix("${@").and_then(|r| r.strip_suffix('}')) {
        let v = vars
            .get(name)
            .ok_or_else(|| anyhow!("`{a}`: no variable {name}"))?;
        let v = subst(v, vars)?;
        if v.contains(UNSET) {
            return Ok(Vec::new());
        }
        return split_words(&v).map_err(|e| anyhow!("variable {name} = {v:?}: {e}"));
    }
    let s = subst(a, vars)?;
    Ok(if s.contains(UNSET) {
        Vec::new()
    } else {
        vec![s]
    })
}

/// Shell-like words: whitespace separates, '…' and "…" group (no escapes, no
/// expansion).
pub fn split_words(s: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(cur.take()),
            (None, c) => cur.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(q) = quote {
        bail!("unclosed {q}");
    }
    words.extend(cur);
    Ok(words)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub name: String,
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
    pub steps: Vec<RawStep>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub name: String,
    pub tool: String,
    #[serde(default)]
    pub args: Vec<serde_json::Value>,
    #[serde(default)]
    pub inputs: Vec<String>,
    #[serde(default)]
    pub outputs: Vec<String>,
    #[serde(default)]
    pub needs: Vec<String>,
    /// One variable and a range `A..B` (end exclusive), e.g. `{g: "1..${generations}"}`.
    #[serde(default, rename = "for")]
    pub for_each: BTreeMap<String, String>,
    /// Run the step as N shard steps (`--shard=i/N`, each writing its own part) and one
    /// step of the same name that joins them (`--merge parts… --out OUTPUT`): for
    /// tools that take both (fitness). Unset or 1: one step.
    #[serde(default)]
    pub shards: Option<serde_json::Value>,
}

/// A step as `n` shard steps and the merge step that keeps its name and output.
fn sharded(step: Step, n: usize) -> Result<Vec<Step>> {
    if n <= 1 {
        return Ok(vec![step]);
    }
    let [out] = step.outputs.as_slice() else {
        bail!("`shards` needs a step with exactly one output");
    };
    if !step.args.iter().any(|a| a.contains(out.as_str())) {
        bail!("`shards`: no argument names the output {out}");
    }
    let stem = out.strip_suffix(".parquet").unwrap_or(out);
    let parts: Vec<String> = (0..n)
        .map(|i| format!("{stem}.shard-{i}of{n}.parquet"))
        .collect();
    let mut v: Vec<Step> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut s = step.clone();
            s.name = format!("{}-shard-{i}of{n}", step.name);
            s.args = step
                .args
                .iter()
                .map(|a| a.replace(out.as_str(), p))
                .collect();
            s.args.push(format!("--shard={i}/{n}"));
            s.outputs = vec![p.clone()];
            s
        })
        .collect();
    let mut args = vec!["--merge".to_string()];
    args.extend(parts.iter().cloned());
    args.extend(["--out".to_string(), out.clone()]);
    v.push(Step {
        name: step.name.clone(),
        tool: step.tool.clone(),
        args,
        inputs: parts,
        outputs: vec![out.clone()],
        needs: Vec::new(),
    });
    Ok(v)
}

/// A step after expansion: what runs, what it reads and writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub tool: String,
    pub args: Vec<String>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub needs: Vec<String>,
}

pub struct Pipeline {
    pub name: String,
    pub steps: Vec<Step>,
}

/// What an unset variable expands to: no argument or path contains it.
const UNSET: &str = "\u{1}unset:";

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Substitute `${…}` in `s`.
pub fn subst(s: &str, vars: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let j = after
            .find('}')
            .ok_or_else(|| anyhow!("unclosed ${{ in {s:?}"))?;
        let inner = &after[..j];
        let (expr, width) = match inner.split_once(':') {
            Some((e, w)) => (e, Some(w)),
            None => (inner, None),
        };
        let (name, delta) = match expr.find(['+', '-']) {
            Some(k) if k > 0 => {
                let d: i64 = expr[k..]
                    .parse()
                    .map_err(|_| anyhow!("bad offset in ${{{inner}}}"))?;
                (&expr[..k], d)
            }
            _ => (expr, 0),
        };
        let v = vars.get(name.trim()).ok_or_else(|| {
            anyhow!(
                "unknown variable ${{{}}} in {s:?} (variables: {})",
                name.trim(),
                vars.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        let text = if delta != 0 || width.is_some() {
            let n: i64 = v
                .parse()
                .map_err(|_| anyhow!("${{{inner}}}: {name} = {v:?} is not an integer"))?;
            let n = n + delta;
            match width {
                Some(w) => {
                    let w: usize = w.trim_start_matches('0').parse().unwrap_or(0);
                    format!("{n:0w$}")
                }
                None => n.to_string(),
            }
        } else {
            v.clone()
        };
        out.push_str(&text);
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `file:line:column: message` (as compilers print), then the parser's snippet.
fn yaml_error(path: &Path, msg: &str) -> anyhow::Error {
    let first = msg.lines().next().unwrap_or("");
    let loc = first.find("line ").and_then(|i| {
        let rest = &first[i + 5..];
        let (line, rest) = rest.split_once(" column ")?;
        let (col, what) = rest.split_once(':')?;
        Some((
            line.trim().to_string(),
            col.trim().to_string(),
            what.trim().to_string(),
        ))
    });
    match loc {
        Some((l, c, what)) => {
            let snippet: Vec<&str> = msg.lines().skip(1).collect();
            anyhow!("{}:{l}:{c}: {what}\n{}", path.display(), snippet.join("\n"))
        }
        None => anyhow!("{}: {msg}", path.display()),
    }
}

/// Read, override variables with `sets` (`key=value`), expand.
pub fn load(path: &Path, sets: &[String]) -> Result<Pipeline> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read pipeline {}", path.display()))?;
    let f: File = serde_saphyr::from_str(&text).map_err(|e| yaml_error(path, &e.to_string()))?;
    let mut vars: BTreeMap<String, String> =
        f.vars.iter().map(|(k, v)| (k.clone(), scalar(v))).collect();
    let mut unset: std::collections::BTreeSet<String> = f
        .vars
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    for s in sets {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {s}: expected key=value"))?;
        if !vars.contains_key(k) {
            bail!(
                "--set {k}: {} has no variable {k} (variables: {})",
                path.display(),
                vars.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        vars.insert(k.to_string(), v.to_string());
        unset.remove(k);
    }
    for k in &unset {
        vars.insert(k.clone(), format!("{UNSET}{k}"));
    }
    // Variables may refer to earlier ones.
    let keys: Vec<String> = vars.keys().cloned().collect();
    for _ in 0..4 {
        for k in &keys {
            let v = subst(&vars[k], &vars)?;
            vars.insert(k.clone(), v);
        }
    }
    let mut steps = Vec::new();
    for raw in &f.steps {
        let ctx = |e: anyhow::Error| e.context(format!("{}: step {}", path.display(), raw.name));
        let expand_one = |vars: &BTreeMap<String, String>| -> Result<Step> {
            let list = |v: &[String]| v.iter().map(|s| subst(s, vars)).collect::<Result<Vec<_>>>();
            let step = Step {
                name: subst(&raw.name, vars)?,
                tool: subst(&raw.tool, vars)?,
                args: raw
                    .args
                    .iter()
                    .map(|a| expand_arg(&scalar(a), vars))
                    .collect::<Result<Vec<Vec<String>>>>()?
                    .into_iter()
                    .flatten()
                    .collect(),
                // An input naming an unset variable (a user's files when the source is
                // synthetic) is left out, like its argument.
                inputs: list(&raw.inputs)?
                    .into_iter()
                    .filter(|i| !i.contains(UNSET))
                    .collect(),
                outputs: list(&raw.outputs)?,
                needs: list(&raw.needs)?,
            };
            let fields = [&step.name, &step.tool]
                .into_iter()
                .chain(&step.outputs)
                .chain(&step.needs);
            for f in fields {
                if let Some(i) = f.find(UNSET) {
                    let name: String = f[i + UNSET.len()..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    bail!(
                        "variable {name} is unset (~): only an argument may mention it (--set {name}=…)"
                    );
                }
            }
            Ok(step)
        };
        let shards = |vars: &BTreeMap<String, String>| -> Result<usize> {
            let Some(v) = &raw.shards else { return Ok(1) };
            let t = subst(&scalar(v), vars)?;
            if t.contains(UNSET) {
                return Ok(1);
            }
            t.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| anyhow!("`shards: {t}`: expected a positive integer"))
        };
        let expand = |vars: &BTreeMap<String, String>| -> Result<Vec<Step>> {
            sharded(expand_one(vars)?, shards(vars)?)
        };
        if raw.for_each.is_empty() {
            steps.extend(expand(&vars).map_err(ctx)?);
            continue;
        }
        if raw.for_each.len() != 1 {
            return Err(ctx(anyhow!("`for` takes one variable")));
        }
        let (var, range) = raw.for_each.iter().next().expect("one entry");
        let range = subst(range, &vars).map_err(ctx)?;
        let (a, b) = range
            .split_once("..")
            .ok_or_else(|| ctx(anyhow!("`for` range {range:?}: expected A..B")))?;
        let (a, b): (i64, i64) = (
            a.trim()
                .parse()
                .map_err(|_| ctx(anyhow!("`for` range {range:?}: A is not an integer")))?,
            b.trim()
                .parse()
                .map_err(|_| ctx(anyhow!("`for` range {range:?}: B is not an integer")))?,
        );
        for v in a..b {
            let mut vs = vars.clone();
            vs.insert(var.clone(), v.to_string());
            steps.extend(expand(&vs).map_err(ctx)?);
        }
    }
    Ok(Pipeline {
        name: f.name,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution() {
        let v: BTreeMap<String, String> = [
            ("g".to_string(), "7".to_string()),
            ("n".to_string(), "csi".to_string()),
        ]
        .into();
        assert_eq!(
            subst("gen-${g:03}-${g-1:03}-${g+1}-${n}", &v).unwrap(),
            "gen-007-006-8-csi"
        );
        assert!(
            subst("${x}", &v)
                .unwrap_err()
                .to_string()
                .contains("unknown variable")
        );
        assert!(subst("${n-1}", &v).is_err());
    }

    #[test]
    fn an_unset_variable_leaves_its_argument_out() {
        let dir = std::env::temp_dir().join(format!("af-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("p.yaml");
        std::fs::write(
            &p,
            "name: t\nvars: {assets: ~, out: o}\nsteps:\n  - name: a\n    tool: ts-fetch\n    \
             args: [\"--assets=${assets}\", --out, \"${out}\"]\n    outputs: [\"${out}\"]\n",
        )
        .unwrap();
        let args = |sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            load(&p, &sets).unwrap().steps[0].args.clone()
        };
        assert_eq!(args(&[]), ["--out", "o"]);
        assert_eq!(args(&["assets=200"]), ["--assets=200", "--out", "o"]);
        std::fs::write(
            &p,
            "name: t\nvars: {out: ~}\nsteps:\n  - name: a\n    tool: x\n    outputs: [\"${out}\"]\n",
        )
        .unwrap();
        let e = load(&p, &[]).err().unwrap();
        assert!(format!("{e:#}").contains("variable out is unset"), "{e:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn splat_arguments_are_words() {
        assert_eq!(
            split_words(" --bad-rows drop  --meta 'my sectors.csv' -x\"\"").unwrap(),
            vec!["--bad-rows", "drop", "--meta", "my sectors.csv", "-x"]
        );
        assert!(split_words("--a 'b").is_err());
        assert!(split_words("   ").unwrap().is_empty());
        let dir = std::env::temp_dir().join(format!("af-spec-splat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("p.yaml");
        std::fs::write(
            &f,
            "name: t\nvars: {extra: ~, o: out}\nsteps:\n  - name: a\n    tool: ts-fetch\n    \
             args: [\"${@extra}\", --out, \"${o}\"]\n    outputs: [\"${o}\"]\n",
        )
        .unwrap();
        let none = load(&f, &[]).unwrap();
        assert_eq!(none.steps[0].args, vec!["--out", "out"]);
        let some = load(&f, &["extra=--bad-rows drop".to_string()]).unwrap();
        assert_eq!(
            some.steps[0].args,
            vec!["--bad-rows", "drop", "--out", "out"]
        );
    }
}
