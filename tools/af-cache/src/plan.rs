//! Choosing what to cache.
//!
//! The workload is a list of batches of expressions, evaluated the way `fitness` does:
//! each batch as one DAG (a sub-expression shared inside a batch is computed once per
//! batch), `runs` times. The cost of a batch given a cached set S is the calibrated cost
//! of every node it still computes plus the cost of reading the S nodes it reaches.
//! Materializing S costs one evaluation of S's nodes (as one DAG) plus the writes.
//!
//! The planner maximises the net saving
//! `runs · (W(∅) − W(S)) − materialize(S)` subject to `bytes(S) ≤ budget`. Every entry
//! has the same size (one `[date][asset]` matrix), so saving per byte and saving rank
//! alike: it is a greedy knapsack that repeatedly adds the node with the largest
//! marginal net saving (lazily re-evaluated, best first) while that saving is positive
//! and the budget holds. A node used by a single batch never pays for itself at
//! `runs` = 1 (it is computed once either way, plus a write and a read).

use std::collections::HashMap;

use af_expr::Expr;
use serde::Serialize;

use crate::calibrate::Calibration;

/// One chosen node, as the manifest lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Choice {
    pub id: String,
    pub text: String,
    pub op: String,
    /// Expressions of the workload that contain the node.
    pub uses: usize,
    /// Batches that contain it.
    pub batches: usize,
    /// The node's own kernel, and its whole sub-tree, computed once (ms).
    pub cost_ms: f64,
    pub subtree_ms: f64,
    pub bytes: u64,
    /// Marginal net saving when it was chosen (ms, over the whole workload).
    pub saving_ms: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Totals {
    pub expressions: usize,
    pub batches: usize,
    /// Distinct operator nodes in the workload, and those used by 2+ batches.
    pub nodes: usize,
    pub shared_nodes: usize,
    pub chosen: usize,
    pub bytes: u64,
    pub budget_bytes: u64,
    /// Predicted compute time of the workload without and with the cache (ms).
    pub workload_ms_without: f64,
    pub workload_ms_with: f64,
    /// One-time cost of cache-materialize (ms).
    pub materialize_ms: f64,
    /// without − with − materialize.
    pub net_saving_ms: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Plan {
    pub nodes: Vec<Choice>,
    pub totals: Totals,
}

struct Node {
    text: String,
    op: Option<&'static str>,
    children: Vec<usize>,
    /// Own kernel cost (ns); 0 for fields and numbers.
    ns: f64,
}

struct Graph {
    nodes: Vec<Node>,
    memo: HashMap<String, usize>,
}

impl Graph {
    fn add(&mut self, e: &Expr, cal: &Calibration, cells: f64) -> usize {
        let text = e.canonical_text();
        if let Some(&i) = self.memo.get(&text) {
            return i;
        }
        let children: Vec<usize> = e
            .children()
            .iter()
            .map(|c| self.add(c, cal, cells))
            .collect();
        let (op, ns) = match e {
            Expr::Call(op, _) => (Some(op.name), cal.op_ns(op.name) * cells),
            _ => (None, 0.0),
        };
        self.nodes.push(Node {
            text: text.clone(),
            op,
            children,
            ns,
        });
        self.memo.insert(text, self.nodes.len() - 1);
        self.nodes.len() - 1
    }
}

/// Visits nodes once per traversal without clearing a set each time.
struct Marks {
    stamp: Vec<u32>,
    now: u32,
}

impl Marks {
    fn next(&mut self) {
        self.now += 1;
    }
    fn first(&mut self, i: usize) -> bool {
        if self.stamp[i] == self.now {
            return false;
        }
        self.stamp[i] = self.now;
        true
    }
}

/// Cost (ns) of evaluating `roots` as one DAG when the nodes with `cached[i]` (and
/// `extra`) are read instead of computed.
fn dag_cost(
    g: &Graph,
    roots: &[usize],
    cached: &[bool],
    extra: Option<usize>,
    read: f64,
    m: &mut Marks,
) -> f64 {
    m.next();
    let mut stack: Vec<usize> = roots.to_vec();
    let mut total = 0.0;
    while let Some(i) = stack.pop() {
        if !m.first(i) {
            continue;
        }
        let n = &g.nodes[i];
        if n.op.is_some() && (cached[i] || extra == Some(i)) {
            total += read;
            continue;
        }
        total += n.ns;
        stack.extend(&n.children);
    }
    total
}

/// Nodes of the sub-tree under `root` (itself included).
fn subtree(g: &Graph, root: usize, m: &mut Marks) -> Vec<usize> {
    m.next();
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(i) = stack.pop() {
        if m.first(i) {
            out.push(i);
            stack.extend(&g.nodes[i].children);
        }
    }
    out
}

/// Plan the cache for `batches` (canonical expressions) on a panel of `cells` cells
/// whose entries take `entry_bytes` each.
pub fn plan(
    batches: &[Vec<Expr>],
    cal: &Calibration,
    cells: usize,
    entry_bytes: u64,
    budget: u64,
    runs: f64,
) -> Plan {
    let c = cells as f64;
    let mut g = Graph {
        nodes: Vec::new(),
        memo: HashMap::new(),
    };
    let mut roots: Vec<Vec<usize>> = Vec::new();
    let mut expressions = 0;
    for b in batches {
        let mut r: Vec<usize> = b.iter().map(|e| g.add(e, cal, c)).collect();
        expressions += b.len();
        r.sort_unstable();
        r.dedup();
        roots.push(r);
    }
    let n = g.nodes.len();
    let mut m = Marks {
        stamp: vec![0; n],
        now: 0,
    };
    // Which batches, and how many expressions, contain each node.
    let mut in_batches: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (b, r) in roots.iter().enumerate() {
        m.next();
        let mut stack = r.clone();
        while let Some(i) = stack.pop() {
            if m.first(i) {
                in_batches[i].push(b);
                stack.extend(&g.nodes[i].children);
            }
        }
    }
    let mut uses = vec![0usize; n];
    for b in batches {
        for e in b {
            let r = g.memo[&e.canonical_text()];
            for i in subtree(&g, r, &mut m) {
                uses[i] += 1;
            }
        }
    }
    let read = cal.read_ns_per_cell * c;
    let write = cal.write_ns_per_cell * c;
    let mut cached = vec![false; n];
    let mut materialized = vec![false; n];
    let mut wb: Vec<f64> = roots
        .iter()
        .map(|r| dag_cost(&g, r, &cached, None, read, &mut m))
        .collect();
    let without: f64 = wb.iter().sum();

    let gain =
        |v: usize, cached: &[bool], materialized: &[bool], wb: &[f64], m: &mut Marks| -> f64 {
            let mut saved = 0.0;
            for &b in &in_batches[v] {
                saved += wb[b] - dag_cost(&g, &roots[b], cached, Some(v), read, m);
            }
            let mat: f64 = subtree(&g, v, m)
                .into_iter()
                .filter(|&i| !materialized[i])
                .map(|i| g.nodes[i].ns)
                .sum();
            runs * saved - mat - write
        };

    let candidates: Vec<usize> = (0..n)
        .filter(|&i| g.nodes[i].op.is_some() && runs * in_batches[i].len() as f64 >= 2.0)
        .collect();
    // Lazy greedy: stale gains are upper bounds in the common case (a chosen node
    // only lowers what its neighbours can still save); re-evaluate the best until it
    // stays best. Ties break on the canonical text, so the plan is deterministic.
    let mut best: Vec<(f64, usize)> = candidates
        .iter()
        .map(|&i| (gain(i, &cached, &materialized, &wb, &mut m), i))
        .collect();
    let order = |a: &(f64, usize), b: &(f64, usize)| {
        b.0.total_cmp(&a.0)
            .then_with(|| g.nodes[a.1].text.cmp(&g.nodes[b.1].text))
    };
    let mut chosen: Vec<(usize, f64)> = Vec::new();
    let mut bytes = 0u64;
    let mut materialize = 0.0;
    loop {
        best.retain(|x| x.0 > 0.0);
        if best.is_empty() || bytes + entry_bytes > budget {
            break;
        }
        best.sort_by(order);
        let (_, v) = best[0];
        let fresh = gain(v, &cached, &materialized, &wb, &mut m);
        best[0].0 = fresh;
        if best.len() > 1 && order(&best[0], &best[1]) == std::cmp::Ordering::Greater {
            continue; // no longer the best: re-sort and try the new leader
        }
        if fresh <= 0.0 {
            continue;
        }
        best.remove(0);
        for i in subtree(&g, v, &mut m) {
            if !materialized[i] {
                materialized[i] = true;
                materialize += g.nodes[i].ns;
            }
        }
        materialize += write;
        cached[v] = true;
        for &b in &in_batches[v] {
            wb[b] = dag_cost(&g, &roots[b], &cached, None, read, &mut m);
        }
        bytes += entry_bytes;
        chosen.push((v, fresh));
    }
    let with: f64 = wb.iter().sum();
    let ms = |ns: f64| (ns / 1e6 * 1000.0).round() / 1000.0;
    let nodes = chosen
        .iter()
        .map(|&(v, s)| {
            let sub: f64 = subtree(&g, v, &mut m)
                .into_iter()
                .map(|i| g.nodes[i].ns)
                .sum();
            Choice {
                id: af_store::sha256_bytes(g.nodes[v].text.as_bytes()),
                text: g.nodes[v].text.clone(),
                op: g.nodes[v].op.unwrap_or_default().to_string(),
                uses: uses[v],
                batches: in_batches[v].len(),
                cost_ms: ms(g.nodes[v].ns),
                subtree_ms: ms(sub),
                bytes: entry_bytes,
                saving_ms: ms(s),
            }
        })
        .collect();
    let ops = (0..n).filter(|&i| g.nodes[i].op.is_some());
    Plan {
        nodes,
        totals: Totals {
            expressions,
            batches: batches.len(),
            nodes: ops.clone().count(),
            shared_nodes: ops.filter(|&i| in_batches[i].len() > 1).count(),
            chosen: chosen.len(),
            bytes,
            budget_bytes: budget,
            workload_ms_without: ms(runs * without),
            workload_ms_with: ms(runs * with),
            materialize_ms: ms(materialize),
            net_saving_ms: ms(runs * (without - with) - materialize),
        },
    }
}

/// Bytes one entry takes on disk for a panel of `nd` dates and these codes. An entry is
/// a panel file, so besides the 8-byte values it stores each cell's date (4 bytes) and
/// code key (4 bytes), the code dictionary, and metadata that lists the calendar and the
/// codes again: 16 bytes a cell plus a bound on the rest (measured on `full`, 5000 ×
/// 2500: 260 KB beyond 16 bytes a cell; this bound gives 480 KB), so the budget holds
/// on disk, not just in theory.
pub fn entry_bytes(nd: usize, codes: &[String]) -> u64 {
    let code_bytes: usize = codes.iter().map(|c| c.len() + 8).sum();
    (16 * nd * codes.len() + 4 * code_bytes + 32 * nd + (64 << 10)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use af_expr::{Dialect, Fields, parse_canonical};

    fn cal() -> Calibration {
        Calibration {
            format: crate::calibrate::CALIBRATION_FORMAT.into(),
            source: "test".into(),
            shape: [100, 100],
            sample: [0, 0],
            ns_per_cell: [
                ("rank", 10.0),
                ("ts_corr", 20.0),
                ("ts_mean", 5.0),
                ("mul", 1.0),
                ("add", 1.0),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
            read_ns_per_cell: 1.0,
            write_ns_per_cell: 2.0,
        }
    }

    fn batches(src: &[&[&str]]) -> Vec<Vec<Expr>> {
        let f = Fields::default();
        src.iter()
            .map(|b| {
                b.iter()
                    .map(|s| parse_canonical(s, Dialect::Native, &f).unwrap())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn shared_across_batches_is_chosen_outermost_first() {
        let w = batches(&[
            &["rank(ts_corr(close,volume,10)) * close", "ts_mean(close,5)"],
            &["rank(ts_corr(close,volume,10)) + open"],
            &["rank(ts_corr(close,volume,10)) * volume"],
        ]);
        let p = plan(&w, &cal(), 10_000, 1000, u64::MAX, 1.0);
        let texts: Vec<&str> = p.nodes.iter().map(|n| n.text.as_str()).collect();
        // The rank covers its ts_corr: caching the inner node too would save nothing more.
        assert_eq!(texts, ["rank(ts_corr(close,volume,10))"]);
        let n = &p.nodes[0];
        assert_eq!((n.uses, n.batches), (3, 3));
        // Without: 3 × (30 + 1) + 5 per cell; with: 3 × (1 read + 1) + 5; materialize 30 + 2.
        let t = &p.totals;
        assert!(
            (t.workload_ms_without - 98.0 * 1e4 / 1e6).abs() < 1e-9,
            "{t:?}"
        );
        assert!(
            (t.workload_ms_with - 11.0 * 1e4 / 1e6).abs() < 1e-9,
            "{t:?}"
        );
        assert!((t.materialize_ms - 32.0 * 1e4 / 1e6).abs() < 1e-9, "{t:?}");
        assert!((t.net_saving_ms - 55.0 * 1e4 / 1e6).abs() < 1e-9, "{t:?}");
    }

    #[test]
    fn one_batch_pays_only_with_reruns_and_budget_binds() {
        let w = batches(&[&["rank(close) * open", "rank(close) + volume"]]);
        assert!(
            plan(&w, &cal(), 10_000, 1000, u64::MAX, 1.0)
                .nodes
                .is_empty()
        );
        assert_eq!(plan(&w, &cal(), 10_000, 1000, u64::MAX, 3.0).nodes.len(), 1);
        let w = batches(&[
            &["rank(close) * ts_mean(open,5)"],
            &["rank(close) + ts_mean(open,5)"],
        ]);
        assert_eq!(plan(&w, &cal(), 10_000, 1000, u64::MAX, 1.0).nodes.len(), 2);
        let p = plan(&w, &cal(), 10_000, 1000, 1999, 1.0);
        assert_eq!(p.nodes.len(), 1);
        assert_eq!(p.nodes[0].text, "rank(close)", "the bigger saving first");
        assert!(plan(&w, &cal(), 10_000, 1000, 999, 1.0).nodes.is_empty());
    }
}
