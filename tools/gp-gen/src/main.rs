//! `gp-gen`: write one generation of candidate factors. Generation 0 is random
//! (ramped half-and-half); generation N is bred from generation N − 1 and its fitness.
//! After each generation a checkpoint (elites, every id ever proposed, the RNG scheme)
//! is written atomically to `--state`, so a run resumes exactly where it stopped.

mod checkpoint;
mod niche;

use checkpoint::{Checkpoint, Elite, FORMAT, SelectBy};

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use af_expr::{Dialect, parse_canonical};
use af_gp::{Child, Params, Rng, Scored, Space, breed, combine, initial};
use af_panel::Panel;
use af_store::{OutputLock, Provenance, canonical_json, sha256_file, write_atomic_bytes};
use af_table::{Table, read_parquet, write_parquet};
use anyhow::{Context as _, Result, anyhow, bail};
use clap::Parser;

const EXAMPLES: &str = "\
Examples:
  gp-gen --panel data/panel/csi500.arrow --seed 1 --state state/checkpoints/run1 \\
         --out out/candidates/gen-000.parquet
  fitness --panel data/panel/csi500.arrow --candidates out/candidates/gen-000.parquet \\
          --horizon 1 --out out/candidates/gen-000.fitness.parquet
  gp-gen --panel data/panel/csi500.arrow --seed 1 --state state/checkpoints/run1 \\
         --prev out/candidates/gen-000.parquet --prev-fitness out/candidates/gen-000.fitness.parquet \\
         --out out/candidates/gen-001.parquet

See docs/mining.md for the search space, the operators and how to resume.";

#[derive(Parser, Debug)]
#[command(name = "gp-gen", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    log: af_store::log::LogArgs,
    /// The panel whose fields are the terminals (and whose hash the checkpoint records).
    #[arg(long)]
    panel: PathBuf,
    /// The generation's candidates (Parquet: id, expression, generation, parents, operator).
    #[arg(long)]
    out: PathBuf,
    /// The previous generation's candidates (omit for generation 0).
    #[arg(long, requires = "prev_fitness")]
    prev: Option<PathBuf>,
    /// Its fitness file.
    #[arg(long, requires = "prev")]
    prev_fitness: Option<PathBuf>,
    /// Checkpoint folder of this run.
    #[arg(long, default_value = "state/checkpoints")]
    state: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Candidates per generation.
    #[arg(long, default_value_t = 200)]
    pop: usize,
    /// Deepest tree (the root is depth 1).
    #[arg(long, default_value_t = 5)]
    max_depth: usize,
    /// Probability that a child comes from subtree crossover…
    #[arg(long, default_value_t = 0.6)]
    p_cross: f64,
    /// …or from a mutation (subtree / point / hoist / window); the rest are fresh
    /// random trees.
    #[arg(long, default_value_t = 0.3)]
    p_mut: f64,
    #[arg(long, default_value_t = 3)]
    tournament: usize,
    /// Best factors ever seen that stay in the breeding pool.
    #[arg(long, default_value_t = 20)]
    elite: usize,
    /// Window grid for time-series operators.
    #[arg(long, value_delimiter = ',', default_value = "3,5,10,20,40,60")]
    windows: Vec<u32>,
    /// A library whose factors are never proposed again. They stay parents: the
    /// library holds the best factors found, and their building blocks are what the
    /// search should recombine (fitness zeroes mere near-copies of them).
    #[arg(long)]
    library: Option<PathBuf>,
    /// Take library factors out of the breeding pool and the elites too (search only
    /// away from what was found).
    #[arg(long, requires = "library")]
    library_out_of_pool: bool,
    /// Random search baseline: every generation is fresh random trees (same budget).
    #[arg(long)]
    random: bool,
    /// Selection pressure away from the library: a parent's fitness is its score ×
    /// (1 − |ρ|)^k, ρ = its largest correlation with a library factor (fitness'
    /// `library_max_corr`). 0 selects on the score alone. Without it the population
    /// keeps breeding near-copies of the strongest family (correlation just under the
    /// library's 0.7), which the library can no longer take.
    #[arg(long, default_value_t = 1.0)]
    corr_pressure: f64,
    /// What parents are selected on: `pool` — what each adds to the library's
    /// least-squares combination (fitness' pool_score; the library's members then join
    /// the breeding pool scored by what removing each would cost) — or `score`, its own
    /// score discounted by --corr-pressure (docs/mining.md).
    #[arg(long, value_enum, default_value = "pool")]
    select_by: SelectBy,
    /// Share of each generation built from found parts: op(t(a), t(b)) of two library
    /// members or elites, op add/sub/mul, t rank/cs_zscore. Counted in --pop. 0 turns
    /// it off.
    #[arg(long, default_value_t = 0.1)]
    combine: f64,
    /// Niching: the pool's best members are correlated with each other (processed
    /// values, 40 train dates) and a parent's fitness is × (1 − |ρ|)^k, ρ = its largest
    /// correlation with a better member. One family's variants then share its
    /// fitness instead of filling the tournaments. 0 turns it off.
    #[arg(long, default_value_t = 1.0)]
    niche_pressure: f64,
    /// The memetic step: each generation, the pool's N best are tuned — every window
    /// constant moved to its neighbouring grid values (then to the midpoints, once
    /// those were tried) and redundant operators simplified away — as children that
    /// count in --pop (at most a fifth of it). 0 turns it off.
    #[arg(long, default_value_t = 10)]
    memetic: usize,
    /// How many of the pool's best members niching measures.
    #[arg(long, default_value_t = 100)]
    niche_top: usize,
    /// Terminals to build from (comma-separated panel fields); default: every field
    /// with enough coverage.
    #[arg(long, value_delimiter = ',')]
    fields: Vec<String>,
    /// A field finite on fewer of the universe's cells than this is no terminal (a
    /// source without volume leaves volume, vwap and turnover all NaN).
    #[arg(long, default_value_t = 0.5)]
    min_field_coverage: f64,
}

fn params_json(cli: &Cli) -> serde_json::Value {
    serde_json::json!({
        "pop": cli.pop, "max_depth": cli.max_depth, "p_cross": cli.p_cross,
        "corr_pressure": cli.corr_pressure,
        "select_by": cli.select_by.name(), "combine": cli.combine,
        "niche_pressure": cli.niche_pressure, "niche_top": cli.niche_top,
        "memetic": cli.memetic,
        "p_mut": cli.p_mut, "tournament": cli.tournament, "elite": cli.elite,
        "windows": cli.windows, "random": cli.random,
        "library_out_of_pool": cli.library_out_of_pool,
        "fields": cli.fields, "min_field_coverage": cli.min_field_coverage,
    })
}

fn run(cli: Cli) -> Result<()> {
    let panel = Panel::open(&cli.panel)?;
    let fields = af_expr::fields_of(&panel);
    let coverage = af_expr::field_coverage(&panel)?;
    let terminals = af_gp::choose_terminals(&coverage, &cli.fields, cli.min_field_coverage)
        .map_err(|e| anyhow!("{e}"))?;
    for (f, c) in &coverage {
        if !terminals.contains(f) && cli.fields.is_empty() {
            tracing::info!(
                "note: {f} is no terminal: finite on {:.1} % of the universe's cells",
                100.0 * c
            );
        }
    }
    let space = Space::new(&fields, &cli.windows).with_terminals(terminals.clone());
    if space.fields.is_empty() || space.ops.is_empty() {
        bail!(
            "panel {} offers nothing to search over",
            cli.panel.display()
        );
    }
    if !(cli.corr_pressure >= 0.0 && cli.corr_pressure.is_finite()) {
        bail!("--corr-pressure must be a finite number ≥ 0");
    }
    if !(0.0..=0.5).contains(&cli.combine) {
        bail!("--combine must be a share between 0 and 0.5");
    }
    if !(cli.niche_pressure >= 0.0 && cli.niche_pressure.is_finite()) {
        bail!("--niche-pressure must be a finite number ≥ 0");
    }
    if cli.pop == 0 || cli.max_depth < 2 {
        bail!("--pop must be positive and --max-depth at least 2");
    }
    if !(0.0..=1.0).contains(&(cli.p_cross + cli.p_mut)) || cli.p_cross < 0.0 || cli.p_mut < 0.0 {
        bail!("--p-cross and --p-mut must be probabilities summing to at most 1");
    }
    let params = Params {
        pop: cli.pop,
        max_depth: cli.max_depth,
        p_cross: cli.p_cross,
        p_mut: cli.p_mut,
        tournament: cli.tournament,
        memetic: cli.memetic,
    };
    let mut prov = Provenance::new("gp-gen", env!("CARGO_PKG_VERSION"))
        .input_hash("panel", panel.content_hash())
        .param("seed", cli.seed)
        .param("gp", params_json(&cli))
        .param("terminals", terminals);

    let (generation, mut memo, mut elites, mut pool, processing) = match (
        &cli.prev,
        &cli.prev_fitness,
    ) {
        (Some(prev), Some(fit)) => {
            let prev_hash = sha256_file(prev)?;
            prov = prov
                .input_hash("prev", &prev_hash)
                .input_file("prev_fitness", fit)?;
            let t = read_parquet(prev)?;
            // The generation is in the file's provenance (an exhausted space can leave a
            // generation without rows); older files: the column.
            let from_prov =
                Provenance::from_kv(t.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .and_then(|p| p.params.get("generation").and_then(|g| g.as_u64()));
            let g = match from_prov {
                Some(g) => g,
                None => t
                    .f64s("generation")
                    .with_context(|| format!("candidates {}", prev.display()))?
                    .first()
                    .copied()
                    .ok_or_else(|| {
                        anyhow!("{} is empty and records no generation", prev.display())
                    })? as u64,
            };
            let ckpt_path = checkpoint::path(&cli.state, g);
            let ckpt = checkpoint::load(&ckpt_path, cli.seed, &params_json(&cli), &panel)?;
            if ckpt.candidates != prev_hash {
                bail!(
                    "checkpoint {} belongs to other candidates than {} (was the generation re-made with other settings?)",
                    ckpt_path.display(),
                    prev.display()
                );
            }
            let ids = t.strings("id")?;
            let exprs = t.strings("expression")?;
            let (scores, processing) =
                checkpoint::read_scores(fit, &prev_hash, &panel, cli.corr_pressure, cli.select_by)?;
            let mut pool = Vec::new();
            for (id, ex) in ids.iter().zip(&exprs) {
                let e = parse_canonical(ex, Dialect::Native, &fields)
                    .map_err(|e| anyhow!("{}: candidate {id}: {e}", prev.display()))?;
                let score = scores.get(id).copied().unwrap_or(0.0);
                pool.push(Scored {
                    expr: e,
                    id: id.clone(),
                    score: if score.is_finite() { score } else { 0.0 },
                });
            }
            // The hall of fame: best ever, by score then id.
            let mut all: BTreeMap<String, Elite> = BTreeMap::new();
            for e in ckpt.elites.iter().cloned() {
                all.insert(e.id.clone(), e);
            }
            for s in &pool {
                all.entry(s.id.clone()).or_insert(Elite {
                    id: s.id.clone(),
                    expression: s.expr.canonical_text(),
                    score: s.score,
                });
            }
            let mut ranked: Vec<Elite> = all.into_values().collect();
            ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
            ranked.truncate(cli.elite);
            // Pool mode: the elites' pool scores were gains over older, smaller libraries
            // (inflated); the library members, scored by what each contributes now,
            // stand in for them (below).
            for e in ckpt
                .elites
                .iter()
                .filter(|_| cli.select_by == SelectBy::Score)
            {
                let ex =
                    parse_canonical(&e.expression, Dialect::Native, &fields).map_err(|err| {
                        anyhow!("checkpoint {}: elite {}: {err}", ckpt_path.display(), e.id)
                    })?;
                if !pool.iter().any(|p| p.id == e.id) {
                    pool.push(Scored {
                        expr: ex,
                        id: e.id.clone(),
                        score: e.score,
                    });
                }
            }
            let memo: BTreeSet<String> = ckpt.memo.into_iter().collect();
            (g + 1, memo, ranked, pool, Some(processing))
        }
        _ => (0, BTreeSet::new(), Vec::new(), Vec::new(), None),
    };
    // The parts combinations are built from: library members and elites.
    let mut parts: Vec<Scored> = elites
        .iter()
        .filter_map(|e| {
            let ex = parse_canonical(&e.expression, Dialect::Native, &fields).ok()?;
            Some(Scored {
                expr: ex,
                id: e.id.clone(),
                score: e.score,
            })
        })
        .collect();
    if let Some(l) = &cli.library {
        let members = af_library::read_members(l)?;
        // Snapshots selected greedily have no contributions to select them on.
        let pooled = members.iter().any(|m| m.contribution.is_finite());
        let ids: BTreeSet<String> = members.iter().map(|m| m.id.clone()).collect();
        if cli.library_out_of_pool {
            pool.retain(|p| !ids.contains(&p.id));
            elites.retain(|e| !ids.contains(&e.id));
            parts.retain(|p| !ids.contains(&p.id));
        }
        for m in &members {
            let (id, ex) = (&m.id, &m.expression);
            let e = parse_canonical(ex, Dialect::Native, &fields)
                .map_err(|e| anyhow!("{}: member {id}: {e}", l.display()))?;
            let score = if m.contribution.is_finite() {
                m.contribution.max(0.0)
            } else {
                0.0
            };
            if cli.select_by == SelectBy::Pool
                && pooled
                && !cli.library_out_of_pool
                && !pool.iter().any(|p| &p.id == id)
            {
                pool.push(Scored {
                    expr: e.clone(),
                    id: id.clone(),
                    score,
                });
            }
            if !parts.iter().any(|p| &p.id == id) {
                parts.push(Scored {
                    expr: e,
                    id: id.clone(),
                    score,
                });
            }
        }
        memo.extend(ids);
        prov = prov.input_file("library", l)?;
    }
    let _lock = OutputLock::acquire(&cli.out)?;
    let mut rng = Rng::for_generation(cli.seed, generation);
    if let Some(p) = processing.filter(|_| !cli.random && cli.niche_pressure > 0.0) {
        let r = niche::discount(&mut pool, &panel, &p, cli.niche_pressure, cli.niche_top)?;
        tracing::info!(
            "niching: {} of the pool's best measured, {} discounted for resembling a better one",
            r.measured,
            r.discounted
        );
    }
    let children: Vec<Child> = if generation == 0 || cli.random {
        initial(&space, &params, &mut rng, &mut memo)
    } else {
        // Combinations first (their own share of --pop), then the bred rest.
        let n = (cli.combine * cli.pop as f64).round() as usize;
        let mut crng = Rng::for_generation(cli.seed ^ 0xc0_b1e5, generation);
        let mut made = combine(&space, &params, &parts, n, &mut crng, &mut memo);
        let rest = Params {
            pop: cli.pop - made.len(),
            ..params.clone()
        };
        made.extend(breed(&space, &rest, &pool, &mut rng, &mut memo));
        made
    };
    if children.len() < cli.pop {
        tracing::warn!(
            "only {} new distinct candidates could be made (asked for {}): the space is nearly exhausted",
            children.len(),
            cli.pop
        );
    }
    prov = prov.param("generation", generation);
    let table = Table::new()
        .str("id", children.iter().map(|c| c.id.as_str()))
        .str(
            "expression",
            children.iter().map(|c| c.expr.canonical_text()),
        )
        .i64("generation", vec![generation as i64; children.len()])
        .str("parents", children.iter().map(|c| c.parents.join(",")))
        .str("operator", children.iter().map(|c| c.op))
        .u32(
            "size",
            children.iter().map(|c| c.expr.size() as u32).collect(),
        )
        .u32(
            "depth",
            children.iter().map(|c| c.expr.depth() as u32).collect(),
        );
    write_parquet(&cli.out, table, &prov)?;
    let ckpt = Checkpoint {
        format: FORMAT.into(),
        seed: cli.seed,
        generation,
        panel: panel.content_hash().into(),
        params: params_json(&cli),
        candidates: sha256_file(&cli.out)?,
        elites,
        memo: memo.into_iter().collect(),
        rng: serde_json::json!({"scheme": "ChaCha8 seeded by splitmix(seed, generation)", "seed": cli.seed, "generation": generation}),
    };
    std::fs::create_dir_all(&cli.state)
        .with_context(|| format!("cannot create {}", cli.state.display()))?;
    let text = canonical_json(&serde_json::to_value(&ckpt)?);
    write_atomic_bytes(&checkpoint::path(&cli.state, generation), text.as_bytes())?;
    let mut by_op: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &children {
        *by_op.entry(c.op).or_default() += 1;
    }
    tracing::info!(
        "generation {generation}: {} candidates ({}), {} ids ever proposed",
        children.len(),
        by_op
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        ckpt.memo.len()
    );
    println!("wrote {}", cli.out.display());
    Ok(())
}

fn main() {
    af_store::cli::main_with(|| {
        let a = Cli::parse();
        af_store::log::init("gp-gen", &a.log);
        run(a)
    });
}
