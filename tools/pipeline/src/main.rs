//! `pipeline`: run a YAML pipeline of alpha-factory tools as a DAG. The runner is the
//! library (`pipeline::…`); this parses the command line and dispatches.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use pipeline::Common;

const EXAMPLES: &str = "\
Examples:
  pipeline run pipelines/mine.yaml
  pipeline run pipelines/mine.yaml --set assets=200 --set days=500 --set generations=2
  pipeline plan pipelines/mine.yaml            # what would run, and why
  pipeline run pipelines/mine.yaml --only fitness-003 --force
  pipeline graph pipelines/mine.yaml --format mermaid
  pipeline export airflow pipelines/mine.yaml --out dags/mine.py

See docs/pipeline.md for the file format.";

#[derive(Parser, Debug)]
#[command(name = "pipeline", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    log: af_store::log::LogArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Which steps `run` and `plan` consider.
#[derive(clap::Args, Debug)]
struct Selection {
    /// Only this step (its inputs must exist).
    #[arg(long, conflicts_with = "from")]
    only: Option<String>,
    /// This step and everything below it.
    #[arg(long)]
    from: Option<String>,
    /// This step and everything above it (with --from: the steps between).
    #[arg(long, conflicts_with = "only")]
    to: Option<String>,
    /// Re-run the selected steps even when up to date.
    #[arg(long)]
    force: bool,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the steps that are not up to date.
    Run {
        #[command(flatten)]
        c: Common,
        #[command(flatten)]
        sel: Selection,
        /// Independent steps run in parallel, up to this many.
        #[arg(short = 'j', long, default_value_t = 1)]
        jobs: usize,
        /// A JSON summary on stdout.
        #[arg(long)]
        json: bool,
    },
    /// For each step: run or skip, and why (the selection flags as for `run`).
    Plan {
        #[command(flatten)]
        c: Common,
        #[command(flatten)]
        sel: Selection,
    },
    /// The step graph, as Mermaid or DOT.
    Graph {
        #[command(flatten)]
        c: Common,
        #[arg(long, default_value = "mermaid", value_parser = ["mermaid", "dot"])]
        format: String,
    },
    /// The last run of each step.
    Status {
        #[command(flatten)]
        c: Common,
    },
    /// Remove artifacts this pipeline wrote that no current step references.
    Gc {
        #[command(flatten)]
        c: Common,
        /// List what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also remove the folders of this sub-expression cache (cache-materialize
        /// --out) whose panel is not one of the pipeline's current outputs.
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Write an Airflow DAG or a GitHub Actions workflow running the same commands.
    Export {
        #[arg(value_parser = ["airflow", "github"])]
        target: String,
        #[command(flatten)]
        c: Common,
        /// The file to write (an Airflow DAG .py or a GitHub workflow .yml).
        #[arg(long)]
        out: PathBuf,
    },
}

fn main_inner(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Run { c, sel, jobs, json } => pipeline::run::run_cmd(
            &c,
            &sel.only,
            &sel.from,
            &sel.to,
            sel.force,
            jobs,
            cli.log.quiet,
            json,
        ),
        Cmd::Plan { c, sel } => {
            pipeline::run::plan_cmd(&c, &sel.only, &sel.from, &sel.to, sel.force)
        }
        Cmd::Graph { c, format } => {
            print!("{}", pipeline::graph::render(&c, &format)?);
            Ok(())
        }
        Cmd::Status { c } => pipeline::run::status(&c),
        Cmd::Gc { c, dry_run, cache } => pipeline::gc::gc(&c, dry_run, cache),
        Cmd::Export { target, c, out } => pipeline::export::export(&target, &c, &out),
    }
}

fn main() {
    af_store::cli::main_with(|| {
        let a = Cli::parse();
        af_store::log::init("pipeline", &a.log);
        main_inner(a)
    });
}
