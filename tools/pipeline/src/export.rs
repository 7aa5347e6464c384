//! `pipeline export`: the same commands as an Airflow DAG or a GitHub Actions workflow.

use std::path::Path;

use anyhow::Result;

use crate::graph::*;
use crate::spec::Step;

pub fn quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub fn command_line(g: &Graph, s: &Step, bin: &str) -> String {
    let mut parts = vec![format!("{bin}/{}", s.tool)];
    parts.extend(s.args.iter().map(|a| quote(a)));
    let _ = g;
    parts.join(" ")
}

/// Write the graph as an Airflow DAG (`airflow`) or a GitHub Actions workflow (`github`).
pub fn export(target: &str, c: &Common, out: &Path) -> Result<()> {
    let g = build_with(c, false)?;
    let bin = "target/release";
    let text = if target == "airflow" {
        let mut t = format!(
            "\"\"\"Airflow DAG for alpha-factory pipeline {name}, written by `pipeline export airflow`.\n\nEach task runs the same command line as `pipeline run`; set AF_REPO to the repository.\n\"\"\"\nimport os\nimport shlex\nfrom datetime import datetime\n\nfrom airflow import DAG\nfrom airflow.operators.bash import BashOperator\n\nREPO = os.environ.get(\"AF_REPO\", \"{repo}\")\n\nwith DAG(dag_id={name:?}, start_date=datetime(2024, 1, 1), schedule=None, catchup=False) as dag:\n",
            name = g.p.name,
            repo = std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        for (i, s) in g.p.steps.iter().enumerate() {
            t += &format!(
                "    t{i} = BashOperator(task_id={:?}, bash_command=\"cd \" + shlex.quote(REPO) + \" && \" + {:?})\n",
                s.name,
                command_line(&g, s, bin)
            );
        }
        for (i, d) in g.deps.iter().enumerate() {
            for j in d {
                t += &format!("    t{j} >> t{i}\n");
            }
        }
        t
    } else {
        let mut t = format!(
            "# GitHub Actions workflow for alpha-factory pipeline {}, written by `pipeline export github`.\nname: {}\non:\n  workflow_dispatch: {{}}\njobs:\n  pipeline:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - name: build\n        run: make release\n",
            g.p.name, g.p.name
        );
        for &i in &g.order {
            let s = &g.p.steps[i];
            t += &format!(
                "      - name: {:?}\n        run: {:?}\n",
                s.name,
                command_line(&g, s, bin)
            );
        }
        t
    };
    af_store::write_atomic_bytes(out, text.as_bytes())?;
    println!("wrote {}", out.display());
    Ok(())
}
