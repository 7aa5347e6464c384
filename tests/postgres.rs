//! `ts-fetch --source postgres` against a real PostgreSQL server the test starts itself
//! (Debian's PostgreSQL binaries; initdb into a temporary folder, a loopback port,
//! fsync off; stopped when the test ends, passed or failed).

use std::path::{Path, PathBuf};
use std::process::Command;

use af_e2e::*;

const PASSWORD: &str = "pw-9f2c5e7a1b";

struct Pg {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

fn as_postgres(bin: &Path, tool: &str) -> Command {
    // initdb refuses root: run the server's tools as the `postgres` user then.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut c = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    };
    c.env_remove("PGDATA");
    c
}

impl Pg {
    fn start(name: &str) -> Pg {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries (.ci/test-deps.sh installs postgresql)")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = std::env::temp_dir().join(format!("af-pg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pw = dir.join("pw");
        std::fs::write(&pw, PASSWORD).unwrap();
        ok(Command::new("chmod").args(["-R", "a+rwx", &s(&dir)]));
        let _ = Command::new("chown")
            .args(["-R", "postgres", &s(&dir)])
            .status();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        ok(as_postgres(&bin, "initdb").args([
            "-D",
            &s(&dir.join("data")),
            "-U",
            "postgres",
            "--pwfile",
            &s(&pw),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
        ]));
        let pg = Pg { dir, bin, port };
        ok(as_postgres(&pg.bin, "pg_ctl").args([
            "-D",
            &s(&pg.dir.join("data")),
            "-l",
            &s(&pg.dir.join("log")),
            "-w",
            "-o",
            &format!(
                "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off -c full_page_writes=off",
                s(&pg.dir)
            ),
            "start",
        ]));
        pg
    }

    fn url(&self, password: &str) -> String {
        format!(
            "postgresql://postgres:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    fn psql(&self, sql: &str) {
        ok(Command::new(self.bin.join("psql"))
            .env("PGPASSWORD", PASSWORD)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql]));
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin, "pg_ctl")
            .args(["-D", &s(&self.dir.join("data")), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const TABLE: &str = "CREATE TABLE daily_bars (ts_code text, trade_date date, \
    open numeric(14,4), high numeric(14,4), low numeric(14,4), close numeric(14,4), \
    pre_close double precision, vol double precision, amount double precision, \
    adj_factor double precision, is_st boolean, is_suspended boolean, industry text, \
    total_mv double precision, circ_mv double precision, list_date date, \
    up_limit numeric(14,2), down_limit numeric(14,2))";

fn fetch(pg: &Pg, password: &str, out: &Path, extra: &[&str]) -> Command {
    let mut c = bin("ts-fetch");
    c.env("DATABASE_URL", pg.url(password))
        .args(["--source", "postgres", "--out", &s(out)]);
    if !extra.contains(&"--mapping") {
        c.args(["--mapping", "tushare"]);
    }
    c.args(extra);
    c
}

#[test]
fn postgres_source_equals_the_synthetic_market_and_fails_cleanly() {
    let dir = scratch("postgres");
    let (raw, _) = small_market(&dir, 4);
    let csv = dir.join("bars.csv");
    ok(python().args(["pg_fixture.py", &s(&raw), &s(&csv)]));
    let pg = Pg::start("main");
    pg.psql(TABLE);
    pg.psql(&format!("\\copy daily_bars FROM '{}' CSV HEADER", s(&csv)));

    // The whole table, one COPY per year, equals the synthetic source column by column.
    let got = dir.join("pgraw");
    let o = ok(&mut fetch(&pg, PASSWORD, &got, &["--table", "daily_bars"]));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains(&format!("127.0.0.1:{}/postgres", pg.port)),
        "{out}"
    );
    let same = ok(python().args(["check_tushare.py", "same", &s(&raw), &s(&got)]));
    assert!(String::from_utf8_lossy(&same.stdout).contains("same:"));
    let m = read_json(&got.join("manifest.json"));
    assert_eq!(m["source"], "postgres");

    // --update: only the dates after the folder's last one; equals a fresh fetch.
    let last = m["last_date"].as_str().unwrap().to_string();
    let part = dir.join("part");
    let cut = "2017-06-30";
    ok(&mut fetch(
        &pg,
        PASSWORD,
        &part,
        &[
            "--query",
            &format!("SELECT * FROM daily_bars WHERE trade_date <= DATE '{cut}'"),
        ],
    ));
    // The update reads the table (all dates); the query of the first fetch stopped at `cut`.
    let o = ok(&mut fetch(
        &pg,
        PASSWORD,
        &part,
        &["--table", "daily_bars", "--update"],
    ));
    assert!(String::from_utf8_lossy(&o.stdout).contains("rows streamed"));
    assert_eq!(
        read_json(&part.join("manifest.json"))["last_date"],
        last.as_str()
    );
    let same = ok(python().args(["check_tushare.py", "same", &s(&raw), &s(&part)]));
    assert!(String::from_utf8_lossy(&same.stdout).contains("same:"));

    // A table that grows: the update keeps the years before the old last date as the
    // same files (hard links), rewrites the rest, and still equals the synthetic source.
    pg.psql(&format!(
        "CREATE TABLE growing AS SELECT * FROM daily_bars WHERE trade_date <= DATE '{cut}'"
    ));
    let grown = dir.join("grown");
    ok(&mut fetch(&pg, PASSWORD, &grown, &["--table", "growing"]));
    let y2016 = grown.join("year=2016/part-0.parquet");
    let inode = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().ino()
    };
    let before = inode(&y2016);
    pg.psql(&format!(
        "INSERT INTO growing SELECT * FROM daily_bars WHERE trade_date > DATE '{cut}'"
    ));
    ok(&mut fetch(
        &pg,
        PASSWORD,
        &grown,
        &["--table", "growing", "--update"],
    ));
    assert_eq!(inode(&y2016), before, "2016 was not touched by the update");
    let notes = read_json(&grown.join("manifest.json"))["notes"].to_string();
    assert!(
        notes.contains("update rewrote year 2017, 2018 and kept year 2016 unchanged"),
        "{notes}"
    );
    let same = ok(python().args(["check_tushare.py", "same", &s(&raw), &s(&grown)]));
    assert!(String::from_utf8_lossy(&same.stdout).contains("same:"));

    // Errors: one line each, non-zero exit, the previous folder intact, no password.
    pg.psql("CREATE TABLE bad_bars AS SELECT * FROM daily_bars LIMIT 50");
    pg.psql("UPDATE bad_bars SET close = NULL WHERE ctid IN (SELECT ctid FROM bad_bars LIMIT 1 OFFSET 7)");
    let kept = tree_hashes(&got);
    let sector_map = dir.join("map.yaml");
    std::fs::write(
        &sector_map,
        "columns: {code: ts_code, volume: vol, industry: sector}\n",
    )
    .unwrap();
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "wrong-password",
            vec!["--table".into(), "daily_bars".into()],
            "password authentication failed",
        ),
        (
            PASSWORD,
            vec!["--table".into(), "nope".into()],
            "does not exist",
        ),
        (
            PASSWORD,
            vec![
                "--table".into(),
                "daily_bars".into(),
                "--mapping".into(),
                s(&sector_map),
            ],
            "not found",
        ),
        (
            PASSWORD,
            vec![
                "--query".into(),
                "SELECT *, '{}'::jsonb AS extra FROM daily_bars".into(),
            ],
            "cannot convert",
        ),
        (
            PASSWORD,
            vec!["--table".into(), "bad_bars".into()],
            "close is NULL",
        ),
        (
            PASSWORD,
            vec![
                "--query".into(),
                "SELECT d.*, pg_terminate_backend(pg_backend_pid()) AS bye FROM daily_bars d"
                    .into(),
            ],
            "postgres 127.0.0.1",
        ),
    ];
    let mut texts = Vec::new();
    for (pw, args, want) in cases {
        let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
        let mut c = fetch(&pg, pw, &got, &args);
        let out = c.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{args:?} should fail");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].contains(want), "{want}: {err}");
        assert_eq!(
            tree_hashes(&got),
            kept,
            "{want}: the previous raw folder changed"
        );
        texts.push(err + &String::from_utf8_lossy(&out.stdout));
    }
    for t in &texts {
        assert!(!t.contains(PASSWORD), "the password is in an output: {t}");
    }
    for (rel, _) in tree_hashes(&dir) {
        let b = std::fs::read(dir.join(&rel)).unwrap();
        assert!(
            !b.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()),
            "the password is in {rel}"
        );
    }
    let e = fails(
        bin("ts-fetch")
            .env_remove("DATABASE_URL")
            .current_dir(&dir)
            .args([
                "--source",
                "postgres",
                "--table",
                "daily_bars",
                "--out",
                &s(&got),
            ]),
    );
    assert!(e.contains("DATABASE_URL"), "{e}");
}
