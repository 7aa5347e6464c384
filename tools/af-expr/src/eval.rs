//! Evaluating many expressions at once as one DAG.
//!
//! [`Program::compile`] canonicalises every expression and merges equal sub-expressions
//! (by canonical text) into one node, in topological order. [`Program::run`] evaluates
//! the nodes in order, hands each requested output to a callback as soon as it exists,
//! and frees every intermediate matrix after its last consumer, so memory holds only
//! what is live; the peak is reported. [`Program::run_cached`] first asks a
//! [`NodeCache`] for every node's values by content id: a hit is used as is (read,
//! never recomputed) and the nodes only it needed are skipped altogether.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;

use af_panel::Panel;
use anyhow::{Result, anyhow, bail};

use crate::ast::Expr;
use crate::kernels;
use crate::kernels::buf;
use crate::kernels::cs::{self, CsOp};
use crate::kernels::elementwise::{self, Operand};
use crate::registry::{Arg, Kind};

#[derive(Debug, Clone)]
pub struct Node {
    pub expr: Expr,
    pub text: String,
    /// Indices of argument nodes (windows, scalars and groups are read from `expr`).
    pub inputs: Vec<usize>,
    /// How many later nodes read this one.
    pub consumers: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Program {
    pub nodes: Vec<Node>,
    /// For each expression given to `compile`, its node.
    pub outputs: Vec<usize>,
    /// Fuse element-wise chains (on after `compile`): a non-shared element-wise node
    /// whose only reader is element-wise is computed tile by tile inside its reader's
    /// pass instead of as a matrix of its own. Same values; off for comparisons.
    pub fuse: bool,
}

/// Cells per tile of a fused element-wise chain: a few of its intermediate tiles stay
/// in L1/L2 while the chain's inputs stream through.
const TILE: usize = 2048;

/// Where a fused chain's node reads an argument: a tile of an earlier node of the chain
/// (its position), or a value that exists as a whole.
#[derive(Clone, Copy)]
enum Src<'a> {
    Tile(usize),
    Whole(Operand<'a>),
}

#[derive(Debug, Clone, Default)]
pub struct RunStats {
    pub nodes_evaluated: usize,
    pub peak_bytes: usize,
    /// Nodes whose values came from the cache.
    pub cache_hits: usize,
    /// Operator nodes that had to be computed although a cache was given.
    pub cache_misses: usize,
    /// Operator nodes neither computed nor read: only cached nodes needed them.
    pub skipped: Vec<usize>,
    /// Cached nodes used (indices into `nodes`).
    pub hit_nodes: Vec<usize>,
    /// Element-wise nodes computed inside their reader's pass (fused), not as a matrix.
    pub fused: usize,
    /// Wall seconds each operator node took (0 for nodes not computed), for profiles
    /// such as `expr bench --all-at-once`.
    pub node_secs: Vec<f64>,
}

/// Precomputed node values, keyed by the node's content id (sha256 of its canonical
/// text). Implementations must return values of the panel the program runs on.
pub trait NodeCache {
    fn get(&self, id: &str) -> Option<&[f64]>;
    /// Nothing to look up: the evaluator then does not hash its nodes.
    fn is_empty(&self) -> bool {
        false
    }
}

enum Val<'p> {
    Scalar(f64),
    Field(&'p [f64]),
    Owned(Vec<f64>),
    Group,
}

/// A value as an operand of a numeric op (a group field is not one).
fn operand<'v>(v: &'v Val) -> Result<Operand<'v>> {
    Ok(match v {
        Val::Scalar(x) => Operand::S(*x),
        Val::Field(s) => Operand::M(s),
        Val::Owned(v) => Operand::M(v),
        Val::Group => bail!("a group field used as a number"),
    })
}

/// A matrix operand, broadcasting a number to every cell when needed.
fn dense(o: Operand<'_>, n: usize) -> Cow<'_, [f64]> {
    match o {
        Operand::M(s) => Cow::Borrowed(s),
        Operand::S(c) => Cow::Owned(vec![c; n]),
    }
}

impl Program {
    pub fn compile(exprs: &[Expr]) -> Program {
        let mut p = Program {
            fuse: true,
            ..Program::default()
        };
        let mut memo: HashMap<String, usize> = HashMap::new();
        for e in exprs {
            let c = e.canonical();
            let id = p.add(&c, &mut memo);
            p.outputs.push(id);
        }
        p
    }

    fn add(&mut self, e: &Expr, memo: &mut HashMap<String, usize>) -> usize {
        let text = e.canonical_text();
        if let Some(&i) = memo.get(&text) {
            return i;
        }
        let inputs: Vec<usize> = e.children().iter().map(|c| self.add(c, memo)).collect();
        for &i in &inputs {
            self.nodes[i].consumers += 1;
        }
        self.nodes.push(Node {
            expr: e.clone(),
            text: text.clone(),
            inputs,
            consumers: 0,
        });
        let i = self.nodes.len() - 1;
        memo.insert(text, i);
        i
    }

    /// Nodes used by more than one consumer (shared sub-expressions).
    pub fn shared(&self) -> Vec<&Node> {
        let out_count = |i: usize| self.outputs.iter().filter(|o| **o == i).count();
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| n.consumers + out_count(*i) > 1 && matches!(n.expr, Expr::Call(..)))
            .map(|(_, n)| n)
            .collect()
    }

    /// Estimated cost in cell-operations (registry cost × cells), for `explain`.
    pub fn cost(&self, cells: usize) -> f64 {
        self.nodes
            .iter()
            .map(|n| {
                if let Expr::Call(op, _) = &n.expr {
                    op.cost * cells as f64
                } else {
                    0.0
                }
            })
            .sum()
    }

    /// Content ids of the nodes, in node order.
    pub fn node_ids(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| af_store::sha256_bytes(n.text.as_bytes()))
            .collect()
    }

    /// Evaluate on `panel`; `emit(expression index, values)` is called once per
    /// expression, as soon as its value exists.
    pub fn run<F>(&self, panel: &Panel, emit: F) -> Result<RunStats>
    where
        F: FnMut(usize, &[f64]) -> Result<()>,
    {
        self.run_cached(panel, None, emit)
    }

    /// [`Program::run`], reading every operator node `cache` holds instead of
    /// computing it.
    pub fn run_cached<'a, F>(
        &self,
        panel: &'a Panel,
        cache: Option<&'a dyn NodeCache>,
        mut emit: F,
    ) -> Result<RunStats>
    where
        F: FnMut(usize, &[f64]) -> Result<()>,
    {
        buf::keep_freed_memory();
        let (nd, na) = (panel.n_dates(), panel.n_assets());
        let n = nd * na;
        // Read by cross-sectional nodes only; unpacked once per panel.
        let universe_cell: OnceCell<Arc<Vec<bool>>> = OnceCell::new();
        let universe = || {
            universe_cell
                .get_or_init(|| {
                    panel
                        .mask_shared(af_panel::columns::UNIVERSE)
                        .unwrap_or_else(|_| Arc::new(vec![true; n]))
                })
                .clone()
        };
        let mut vals: Vec<Option<Val>> = (0..self.nodes.len()).map(|_| None).collect();
        let mut pending_out: Vec<usize> = vec![0; self.nodes.len()];
        for &o in &self.outputs {
            pending_out[o] += 1;
        }
        let mut stats = RunStats {
            node_secs: vec![0.0; self.nodes.len()],
            ..RunStats::default()
        };
        // Cache hits, then which nodes are still needed: walking back from the outputs
        // (inputs always precede their consumers), a hit needs none of its inputs.
        let hits: Vec<Option<&'a [f64]>> = match cache.filter(|c| !c.is_empty()) {
            Some(c) => self
                .nodes
                .iter()
                .map(|n| match n.expr {
                    Expr::Call(..) => c
                        .get(&af_store::sha256_bytes(n.text.as_bytes()))
                        .filter(|v| v.len() == nd * na),
                    _ => None,
                })
                .collect(),
            None => vec![None; self.nodes.len()],
        };
        let mut needed = vec![false; self.nodes.len()];
        for &o in &self.outputs {
            needed[o] = true;
        }
        let mut left = vec![0usize; self.nodes.len()];
        for i in (0..self.nodes.len()).rev() {
            if needed[i] && hits[i].is_none() {
                for &j in &self.nodes[i].inputs {
                    needed[j] = true;
                    left[j] += 1;
                }
            }
        }
        // Element-wise fusion: which nodes are computed inside their only reader's pass.
        let fusible = |i: usize| {
            matches!(&self.nodes[i].expr, Expr::Call(op, _)
                if op.kind == Kind::Elementwise && !op.name.starts_with("q_"))
        };
        let mut scalar = vec![false; self.nodes.len()];
        let mut reader = vec![usize::MAX; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            scalar[i] = match &node.expr {
                Expr::Num(_) => true,
                Expr::Call(..) => fusible(i) && node.inputs.iter().all(|&j| scalar[j]),
                _ => false,
            };
            for &j in &node.inputs {
                reader[j] = i;
            }
        }
        let absorbed: Vec<bool> = (0..self.nodes.len())
            .map(|i| {
                self.fuse
                    && needed[i]
                    && fusible(i)
                    && !scalar[i]
                    && hits[i].is_none()
                    && pending_out[i] == 0
                    && self.nodes[i].consumers == 1
                    && left[i] == 1
                    && reader[i] != usize::MAX
                    && fusible(reader[i])
            })
            .collect();
        // Assets' listed spans, for Qlib-semantics ops; computed once, on first use.
        let span_cell: OnceCell<Arc<Vec<(usize, usize)>>> = OnceCell::new();
        let span = || {
            span_cell
                .get_or_init(|| {
                    let f = panel.field("close").map(|m| m.data);
                    Arc::new(match f {
                        Ok(c) => kernels::spans(c, nd, na),
                        Err(_) => vec![(0, nd.saturating_sub(1)); na],
                    })
                })
                .clone()
        };
        let mut live = 0usize;
        for (i, node) in self.nodes.iter().enumerate() {
            let is_call = matches!(node.expr, Expr::Call(..));
            if absorbed[i] {
                continue;
            }
            // This node and the nodes fused into it, in evaluation order.
            let group: Vec<usize> = if node.inputs.iter().any(|&j| absorbed[j]) {
                let mut g = vec![i];
                let mut k = 0;
                while k < g.len() {
                    let more: Vec<usize> = self.nodes[g[k]]
                        .inputs
                        .iter()
                        .copied()
                        .filter(|&j| absorbed[j] && !g.contains(&j))
                        .collect();
                    g.extend(more);
                    k += 1;
                }
                g.sort_unstable();
                g
            } else {
                vec![i]
            };
            if !needed[i] {
                if is_call {
                    stats.skipped.push(i);
                }
                continue;
            }
            if hits[i].is_some() {
                stats.cache_hits += 1;
                stats.hit_nodes.push(i);
            } else if cache.is_some() && is_call {
                stats.cache_misses += 1;
            }
            let v = match (&node.expr, hits[i]) {
                (_, Some(h)) => Val::Field(h),
                (Expr::Num(x), _) => Val::Scalar(*x),
                (Expr::Field(f), _) => {
                    if panel.has_field(f) {
                        Val::Field(panel.field(f)?.data)
                    } else if panel.groups(f).is_ok() {
                        Val::Group
                    } else {
                        bail!("panel {} has no field {f:?}", panel.path().display());
                    }
                }
                (Expr::Call(op, args), _) => {
                    let t0 = std::time::Instant::now();
                    let arg = |k: usize| -> &Val {
                        vals[node.inputs[k]]
                            .as_ref()
                            .expect("inputs are evaluated first")
                    };
                    let mat = |k: usize| operand(arg(k));
                    let num = |k: usize| -> f64 {
                        if let Expr::Num(x) = args[k] {
                            x
                        } else {
                            f64::NAN
                        }
                    };
                    let out = match op.kind {
                        Kind::Elementwise if group.len() > 1 => {
                            let leaf = |j: usize| {
                                operand(vals[j].as_ref().expect("inputs are evaluated first"))
                            };
                            let mut plan: Vec<(&'static str, Vec<Src>)> = Vec::new();
                            for &g in &group {
                                let Expr::Call(gop, _) = &self.nodes[g].expr else {
                                    bail!("fused node is not a call")
                                };
                                let srcs = self.nodes[g]
                                    .inputs
                                    .iter()
                                    .map(|&j| match group.iter().position(|&x| x == j) {
                                        Some(at) => Ok(Src::Tile(at)),
                                        None => leaf(j).map(Src::Whole),
                                    })
                                    .collect::<Result<Vec<_>>>()?;
                                plan.push((gop.name, srcs));
                            }
                            stats.fused += group.len() - 1;
                            Val::Owned(fused(&plan, n))
                        }
                        Kind::Elementwise => {
                            let ops = (0..args.len()).map(mat).collect::<Result<Vec<_>>>()?;
                            if ops.iter().all(|o| matches!(o, Operand::S(_))) {
                                let xs: Vec<f64> = ops
                                    .iter()
                                    .map(|o| if let Operand::S(x) = o { *x } else { 0.0 })
                                    .collect();
                                Val::Scalar(elementwise::scalar(op.name, &xs).unwrap_or(f64::NAN))
                            } else {
                                let mut v = elementwise::apply(op.name, &ops, n);
                                if op.name.starts_with("q_") {
                                    // Qlib's comparisons: 0/1 inside the span, NaN outside.
                                    kernels::clip_to_span(&mut v, &span(), na);
                                }
                                Val::Owned(v)
                            }
                        }
                        Kind::TimeSeries => {
                            // Series arguments first, then the window, then a scalar.
                            let series = op.args.iter().filter(|a| **a == Arg::Series).count();
                            let d = num(series) as usize;
                            let q = if args.len() > series + 1 {
                                num(series + 1)
                            } else {
                                f64::NAN
                            };
                            let x = dense(mat(0)?, n);
                            let y = if series == 2 {
                                Some(dense(mat(1)?, n))
                            } else {
                                None
                            };
                            Val::Owned(
                                kernels::time_series(
                                    op.name,
                                    &x,
                                    y.as_deref(),
                                    nd,
                                    na,
                                    d,
                                    q,
                                    &span,
                                )
                                .ok_or_else(|| anyhow!("no kernel for {}", op.name))?,
                            )
                        }
                        Kind::CrossSection => {
                            let (csop, groups) = match op.name {
                                "rank" => (CsOp::Rank, None),
                                "cs_zscore" => (CsOp::ZScore, None),
                                "cs_demean" => (CsOp::Demean, None),
                                "scale" => (CsOp::Scale(num(1)), None),
                                "cs_winsorize" => (CsOp::Winsorize(num(1).clamp(0.0, 0.5)), None),
                                "group_neutralize" | "group_rank" | "group_mean" => {
                                    let Expr::Field(g) = &args[1] else {
                                        bail!("group argument is not a field")
                                    };
                                    let keys = panel.groups(g)?.keys;
                                    let o = match op.name {
                                        "group_neutralize" => CsOp::GroupNeutralize,
                                        "group_rank" => CsOp::GroupRank,
                                        _ => CsOp::GroupMean,
                                    };
                                    (o, Some(keys))
                                }
                                other => bail!("no kernel for {other}"),
                            };
                            let x = dense(mat(0)?, n);
                            Val::Owned(cs::apply(csop, &x, &universe(), groups, nd, na))
                        }
                    };
                    stats.nodes_evaluated += group.len();
                    stats.node_secs[i] = t0.elapsed().as_secs_f64();
                    out
                }
            };
            if let Val::Owned(v) = &v {
                live += v.len() * 8;
                stats.peak_bytes = stats.peak_bytes.max(live);
            }
            vals[i] = Some(v);
            if pending_out[i] > 0 {
                let data = match vals[i].as_ref().expect("just set") {
                    Val::Field(s) => Cow::Borrowed(*s),
                    Val::Owned(v) => Cow::Borrowed(v.as_slice()),
                    Val::Scalar(x) => dense(Operand::S(*x), n),
                    Val::Group => bail!("an expression cannot be just a group field"),
                };
                for (e, &o) in self.outputs.iter().enumerate() {
                    if o == i {
                        emit(e, &data)?;
                    }
                }
            }
            // Free inputs whose last consumer this was, and this node if nobody reads it.
            if hits[i].is_none() {
                let inputs = group.iter().flat_map(|&g| &self.nodes[g].inputs);
                for &j in inputs.filter(|&&j| !absorbed[j]) {
                    left[j] -= 1;
                    if left[j] == 0 {
                        if let Some(Val::Owned(v)) = vals[j].take() {
                            live -= v.len() * 8;
                            buf::give(v);
                        }
                    }
                }
            }
            if left[i] == 0 {
                if let Some(Val::Owned(v)) = vals[i].take() {
                    live -= v.len() * 8;
                    buf::give(v);
                }
            }
        }
        Ok(stats)
    }
}

/// Evaluate a fused element-wise chain over `n` cells: `plan` lists its nodes in
/// evaluation order (the last is the result), each with its op and where its arguments
/// come from. Tiles run in parallel; each keeps one small buffer per intermediate node.
fn fused(plan: &[(&'static str, Vec<Src>)], n: usize) -> Vec<f64> {
    use rayon::prelude::*;
    let mut out = buf::take(n);
    let last = plan.len() - 1;
    out.par_chunks_mut(TILE).enumerate().for_each_init(
        || vec![vec![0.0; TILE]; last],
        |scratch, (t, o)| {
            let (c0, len) = (t * TILE, o.len());
            for (gi, (name, srcs)) in plan.iter().enumerate() {
                let (done, rest) = scratch.split_at_mut(gi.min(last));
                let args: Vec<Operand> = srcs
                    .iter()
                    .map(|s| match *s {
                        Src::Tile(at) => Operand::M(&done[at][..len]),
                        Src::Whole(Operand::M(m)) => Operand::M(&m[c0..c0 + len]),
                        Src::Whole(sc) => sc,
                    })
                    .collect();
                let dst = if gi == last {
                    &mut *o
                } else {
                    &mut rest[0][..len]
                };
                elementwise::apply_tile(name, &args, dst);
            }
        },
    );
    out
}
