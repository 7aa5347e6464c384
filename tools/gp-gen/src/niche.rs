//! Niching of the breeding pool (`--niche-pressure`): the pool's best members are
//! evaluated and processed as fitness processes them, on a few train dates, and each
//! one's selection fitness is discounted by (1 − |ρ|)^k, ρ its largest correlation with
//! a better member (`af_fitness::niche`). A family's best keeps its fitness; its
//! variants compete for a share of it, so other signals keep a place in the tournaments.

use af_expr::Program;
use af_fitness::niche::{population_max_corr, sample_dates};
use af_fitness::processing::Processing;
use af_fitness::{Context, Workspace};
use af_gp::Scored;
use af_panel::Panel;
use anyhow::{Context as _, Result};

/// Train dates the correlations are measured on.
const SAMPLE_DATES: usize = 40;
/// Expressions evaluated together (shared sub-expressions once; memory stays bounded).
const BATCH: usize = 16;

/// What niching did, for the log.
pub struct Report {
    pub measured: usize,
    pub discounted: usize,
}

/// Discount `pool`'s scores in place: the `top` best members with a positive score
/// are measured (the rest keep theirs: tournaments rarely pick them).
pub fn discount(
    pool: &mut [Scored],
    panel: &Panel,
    processing: &Processing,
    pressure: f64,
    top: usize,
) -> Result<Report> {
    let dates = panel.dates();
    let train = processing
        .split("train", dates)
        .or_else(|_| processing.split("all", dates))
        .context("niching: the fitness file records no train split")?;
    let longest = processing.longest();
    let sample = sample_dates(&train.usable(longest, 1), SAMPLE_DATES);
    // Operators never look ahead, so the panel up to the last sample date gives the same
    // values there for less work (the train split is the panel's first part).
    let Some(&last) = sample.last() else {
        return Ok(Report {
            measured: 0,
            discounted: 0,
        });
    };
    let all: Vec<usize> = (0..panel.n_assets()).collect();
    let head = panel.subset(0..last + 1, &all)?;
    let panel = &head;
    let ctx = Context::new(panel, processing.config(false), &sample)?;
    let mut order: Vec<usize> = (0..pool.len()).filter(|&i| pool[i].score > 0.0).collect();
    order.sort_by(|&a, &b| {
        pool[b]
            .score
            .total_cmp(&pool[a].score)
            .then_with(|| pool[a].id.cmp(&pool[b].id))
    });
    order.truncate(top);
    let na = panel.n_assets();
    let mut samples: Vec<Option<Vec<f64>>> = vec![None; pool.len()];
    let mut ws = Workspace::default();
    for chunk in order.chunks(BATCH) {
        let exprs: Vec<_> = chunk.iter().map(|&i| pool[i].expr.clone()).collect();
        Program::compile(&exprs).run(panel, |k, v| {
            let p = ctx.processed(v, &mut ws);
            samples[chunk[k]] = Some(
                sample
                    .iter()
                    .flat_map(|&t| p[t * na..(t + 1) * na].iter().copied())
                    .collect(),
            );
            Ok(())
        })?;
    }
    let refs: Vec<Option<&[f64]>> = samples.iter().map(|s| s.as_deref()).collect();
    let rho = population_max_corr(&refs, &order, na);
    let mut discounted = 0;
    for &i in &order {
        if rho[i].is_finite() {
            let f = (1.0 - rho[i].min(1.0)).powf(pressure);
            if f < 1.0 {
                discounted += 1;
            }
            pool[i].score *= f;
        }
    }
    Ok(Report {
        measured: order.len(),
        discounted,
    })
}
