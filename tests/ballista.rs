//! `--engine` on Apache DataFusion Ballista (built with `--features ballista`; run with
//! `cargo test --features ballista --test integration ballista`): the same rows and bytes as
//! the local engine, in a standalone cluster and in a real one of three processes on
//! loopback. Data: an export `cartscope generate` writes, and the real OpenTelemetry JS
//! SDK's export in tests/fixtures/real-sdk, each ingested.
//!
//! Without the feature, only what `--engine` says then.

#[cfg(not(feature = "ballista"))]
use crate::util::{cartscope, stderr};

#[cfg(not(feature = "ballista"))]
#[test]
fn without_the_feature_the_engine_says_how_to_build_it() {
    let data = crate::util::root("sample-data/otlp");
    for args in [
        vec!["detect", "--engine", "ballista-standalone"],
        vec!["query", "funnel", "--engine", "df://127.0.0.1:50050"],
        vec!["ballista", "scheduler"],
    ] {
        let mut args: Vec<&str> = args;
        if args[0] != "ballista" {
            args.extend(["--data", data.to_str().unwrap()]);
        }
        let o = cartscope(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.contains("built without") && e.contains("--features ballista"),
            "{args:?}: {e}"
        );
    }
    // A malformed engine is a flag error whatever the build.
    let o = cartscope(&[
        "detect",
        "--engine",
        "spark",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--engine"), "{}", stderr(&o));
}

#[cfg(feature = "ballista")]
mod with_the_feature {
    use std::path::{Path, PathBuf};

    use crate::util::{cartscope, stderr, stdout};

    /// An ingested dataset of `inputs` in `dir`.
    fn ingest(dir: &Path, inputs: &[PathBuf]) -> PathBuf {
        let ds = dir.join("ds");
        let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
        crate::util::ingest(&ds, &inputs);
        ds
    }

    /// A generated export (1,500 carts, incidents on) and the real JS SDK's, ingested.
    fn datasets(tmp: &Path) -> Vec<(&'static str, PathBuf)> {
        let gen = tmp.join("gen");
        crate::util::generate(&gen, &["--carts", "1500", "--seed", "11"]);
        let g = tmp.join("g");
        std::fs::create_dir_all(&g).unwrap();
        let js = tmp.join("js");
        std::fs::create_dir_all(&js).unwrap();
        vec![
            ("generated", ingest(&g, &[gen.join("otlp")])),
            (
                "real JS SDK",
                ingest(&js, &[crate::util::fixture("real-sdk/js/traces.jsonl.gz")]),
            ),
        ]
    }

    /// `cartscope ARGS --data DS --engine ENGINE`: its stdout, after asserting its exit code.
    fn run_on(engine: &str, ds: &Path, args: &[&str], code: i32) -> String {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--data", ds.to_str().unwrap(), "--engine", engine]);
        let o = bounded(&all);
        assert_eq!(
            o.status.code(),
            Some(code),
            "{all:?} on {engine}: {}",
            stderr(&o)
        );
        stdout(&o)
    }

    /// `cartscope ARGS`, killed after five minutes: a Ballista job that never finishes fails
    /// the test instead of hanging it (one did: see `present` in src/sql/session.rs).
    fn bounded(args: &[&str]) -> std::process::Output {
        bounded_with(args, None)
    }

    /// `bounded`, with `input` (if any) as its stdin.
    fn bounded_with(args: &[&str], input: Option<&str>) -> std::process::Output {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("out"), dir.path().join("err"));
        let stdin = match input {
            Some(text) => {
                let path = dir.path().join("in");
                std::fs::write(&path, text).unwrap();
                std::process::Stdio::from(std::fs::File::open(&path).unwrap())
            }
            None => std::process::Stdio::null(),
        };
        let mut child = crate::util::cmd()
            .args(args)
            .stdin(stdin)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{args:?} did not finish in 300 s: {}",
                    std::fs::read_to_string(&err).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        std::process::Output {
            status,
            stdout: std::fs::read(&out).unwrap(),
            stderr: std::fs::read(&err).unwrap(),
        }
    }

    fn library() -> Vec<String> {
        let o = cartscope(&["queries", "-f", "csv"]);
        assert!(o.status.success());
        let names: Vec<String> = stdout(&o)
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect();
        assert!(names.len() >= 8, "{names:?}");
        names
    }

    /// Every command's output on `engine`, beside the local engine's: the same bytes (detect
    /// lists carts by id, the report and the checks are deterministic, the library's queries
    /// order their rows totally), but for `reference_correlation`, whose `ORDER BY` (kept as
    /// the reference instrumentation's docs write it) leaves ties in any order: the same
    /// rows.
    fn same_as_local(engine: &str, ds: &Path, what: &str, queries: &[String]) {
        let rules = crate::util::root("checks.example.toml");
        let rules = rules.to_str().unwrap();
        // The exit code each must end with; None: the local engine's (a check may fail).
        let mut commands: Vec<(Vec<&str>, Option<i32>)> = vec![
            (vec!["detect", "-f", "csv", "--refresh"], Some(0)),
            (vec!["report", "-f", "json"], Some(0)),
            (vec!["check", "--rules", rules, "-f", "json"], None),
        ];
        for q in queries {
            commands.push((vec!["query", q.as_str(), "-f", "csv"], Some(0)));
        }
        for (args, code) in commands {
            let local = {
                let mut all: Vec<&str> = args.clone();
                all.extend(["--data", ds.to_str().unwrap()]);
                cartscope(&all)
            };
            let code = code.unwrap_or_else(|| local.status.code().unwrap());
            assert_eq!(
                local.status.code(),
                Some(code),
                "{args:?}: {}",
                stderr(&local)
            );
            let there = run_on(engine, ds, &args, code);
            assert!(!there.is_empty(), "{args:?} printed nothing");
            let (mut local, mut there) = (stdout(&local), there);
            if args.contains(&"reference_correlation") {
                let sorted = |s: &str| {
                    let mut l: Vec<&str> = s.lines().collect();
                    l.sort();
                    l.join("\n")
                };
                (local, there) = (sorted(&local), sorted(&there));
            }
            assert_eq!(
                local, there,
                "{args:?} on {what}: {engine} differs from local"
            );
        }
    }

    #[test]
    fn standalone_gives_the_local_engines_bytes_for_every_command() {
        let tmp = tempfile::tempdir().unwrap();
        let queries = library();
        for (what, ds) in datasets(tmp.path()) {
            same_as_local("ballista-standalone", &ds, what, &queries);
        }
    }

    /// Statements piped into `cartscope shell`: the same output from Ballista as locally,
    /// a join of the replay's tables to the spans included. Data: a generated export.
    #[test]
    fn the_shell_on_ballista_prints_the_local_engines_rows() {
        let tmp = tempfile::tempdir().unwrap();
        let gen = tmp.path().join("gen");
        crate::util::generate(&gen, &["--carts", "300", "--seed", "5"]);
        let ds = ingest(tmp.path(), &[gen.join("otlp")]);
        let script = "\\format csv
SELECT outcome, count(*) AS n FROM carts GROUP BY 1 ORDER BY 1;
SELECT c.cart_id, count(*) AS spans
  FROM carts c JOIN cart_events e ON e.cart_id = c.cart_id
 WHERE c.outcome = 'abandoned' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5;
SELECT operation_name, count(*) AS n FROM traces GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5;
\\d carts
";
        let data = ds.to_str().unwrap();
        let local = bounded_with(&["shell", "--data", data], Some(script));
        assert_eq!(local.status.code(), Some(0), "{}", stderr(&local));
        let there = bounded_with(
            &["shell", "--data", data, "--engine", "ballista-standalone"],
            Some(script),
        );
        assert_eq!(there.status.code(), Some(0), "{}", stderr(&there));
        let (local, there) = (stdout(&local), stdout(&there));
        assert!(
            local.contains("abandoned,") && local.contains("cart_id"),
            "{local}"
        );
        assert_eq!(local, there, "the shell on Ballista differs from local");
    }

    #[test]
    fn the_pinned_now_reaches_ballista_as_a_constant() {
        let tmp = tempfile::tempdir().unwrap();
        let gen = tmp.path().join("gen");
        crate::util::generate(&gen, &["--carts", "200"]);
        let ds = ingest(tmp.path(), &[gen.join("otlp")]);
        let at = "2026-11-20T09:00:00Z";
        let sql = "SELECT now() AS t, count(*) AS n FROM carts WHERE last_activity < now() - INTERVAL '1 hour'";
        let local = cartscope(&[
            "query",
            "-e",
            sql,
            "-f",
            "csv",
            "--as-of",
            at,
            "--data",
            ds.to_str().unwrap(),
        ]);
        assert!(local.status.success(), "{}", stderr(&local));
        let there = run_on(
            "ballista-standalone",
            &ds,
            &["query", "-e", sql, "-f", "csv", "--as-of", at],
            0,
        );
        assert_eq!(stdout(&local), there);
        assert!(there.contains("2026-11-20T09:00:00"), "{there}");
        // The plan Ballista runs holds the instant, not the function.
        let explain = format!("EXPLAIN {sql}");
        let plan = run_on(
            "ballista-standalone",
            &ds,
            &["query", "-e", &explain, "-f", "csv", "--as-of", at],
            0,
        );
        let distributed = plan
            .split("distributed_plan")
            .nth(1)
            .unwrap_or_else(|| panic!("no distributed plan: {plan}"));
        assert!(
            !distributed.to_lowercase().contains("now("),
            "{distributed}"
        );
        // 2026-11-20T08:00:00Z, the filter's bound, in microseconds.
        assert!(
            distributed.contains("1795161600000000"),
            "the bound is not a constant: {distributed}"
        );
    }

    #[test]
    fn ballista_refuses_a_raw_export_and_says_to_ingest_it() {
        let data = crate::util::root("sample-data/otlp");
        for engine in ["ballista-standalone", "df://127.0.0.1:9"] {
            let o = cartscope(&[
                "detect",
                "--engine",
                engine,
                "--data",
                data.to_str().unwrap(),
            ]);
            assert_eq!(o.status.code(), Some(2));
            let e = stderr(&o);
            assert!(
                e.contains("ingested datasets only") && e.contains("cartscope ingest"),
                "{engine}: {e}"
            );
        }
    }

    #[test]
    fn a_scheduler_that_is_not_there_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let gen = tmp.path().join("gen");
        crate::util::generate(&gen, &["--carts", "50"]);
        let ds = ingest(tmp.path(), &[gen.join("otlp")]);
        let port = free_port();
        let e = {
            let o = cartscope(&[
                "query",
                "funnel",
                "--data",
                ds.to_str().unwrap(),
                "--engine",
                &format!("df://127.0.0.1:{port}"),
            ]);
            assert_eq!(o.status.code(), Some(2));
            stderr(&o)
        };
        assert!(
            e.contains(&format!("127.0.0.1:{port}")) && e.contains("cartscope ballista scheduler"),
            "{e}"
        );
    }

    /// A port nobody listens on now.
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// The processes of a cluster, stopped when dropped.
    struct Cluster {
        children: Vec<(String, std::process::Child, PathBuf)>,
    }

    impl Cluster {
        fn spawn(&mut self, name: &str, dir: &Path, args: &[String]) {
            let log = dir.join(format!("{name}.log"));
            let child = crate::util::cmd()
                .args(args)
                .stdout(std::fs::File::create(dir.join(format!("{name}.out"))).unwrap())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            self.children.push((name.to_string(), child, log));
        }

        /// Panics with every process's log when one has exited.
        fn assert_running(&mut self) {
            let mut exited = None;
            for (name, child, _) in &mut self.children {
                if let Some(status) = child.try_wait().unwrap() {
                    exited = Some(format!("{name} exited ({status})"));
                }
            }
            if let Some(e) = exited {
                panic!("{e}:\n{}", self.logs());
            }
        }

        fn logs(&self) -> String {
            self.children
                .iter()
                .map(|(n, _, log)| {
                    format!(
                        "--- {n}\n{}",
                        std::fs::read_to_string(log).unwrap_or_default()
                    )
                })
                .collect()
        }
    }

    impl Drop for Cluster {
        fn drop(&mut self) {
            for (_, child, _) in &mut self.children {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// `GET /readyz` on the scheduler: 200 once its executors are registered.
    fn ready(port: u16) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        if s.write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply.starts_with("HTTP/1.1 200")
    }

    #[test]
    fn a_loopback_cluster_of_a_scheduler_and_two_executors_gives_the_local_rows() {
        let tmp = tempfile::tempdir().unwrap();
        let gen = tmp.path().join("gen");
        crate::util::generate(&gen, &["--carts", "1500", "--seed", "5"]);
        let ds = ingest(tmp.path(), &[gen.join("otlp")]);
        let logs = tmp.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();

        let port = free_port();
        let mut cluster = Cluster {
            children: Vec::new(),
        };
        cluster.spawn(
            "scheduler",
            &logs,
            &["ballista", "scheduler", "--port", &port.to_string()].map(String::from),
        );
        for name in ["executor-1", "executor-2"] {
            let work = tmp.path().join(name);
            cluster.spawn(
                name,
                &logs,
                &[
                    "--threads".to_string(),
                    "1".into(),
                    "--memory-limit".into(),
                    "256MB".into(),
                    "ballista".into(),
                    "executor".into(),
                    "--scheduler".into(),
                    format!("127.0.0.1:{port}"),
                    "--port".into(),
                    free_port().to_string(),
                    "--grpc-port".into(),
                    free_port().to_string(),
                    "--work-dir".into(),
                    work.display().to_string(),
                ],
            );
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !ready(port) {
            cluster.assert_running();
            assert!(
                std::time::Instant::now() < deadline,
                "the scheduler was not ready in 120 s:\n{}",
                cluster.logs()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }

        let engine = format!("df://127.0.0.1:{port}");
        for args in [
            vec!["detect", "-f", "csv", "--refresh"],
            vec!["query", "funnel", "-f", "csv"],
            vec!["query", "error_before_abandonment", "-f", "csv"],
        ] {
            let mut local: Vec<&str> = args.clone();
            local.extend(["--data", ds.to_str().unwrap()]);
            let local = cartscope(&local);
            assert!(local.status.success(), "{}", stderr(&local));
            let mut all: Vec<&str> = args.clone();
            all.extend(["--data", ds.to_str().unwrap(), "--engine", &engine]);
            let o = bounded(&all);
            assert!(
                o.status.success(),
                "{args:?} on the cluster: {}\n{}",
                stderr(&o),
                cluster.logs()
            );
            assert_eq!(
                stdout(&local),
                stdout(&o),
                "{args:?}: the cluster differs from local"
            );
        }
        // Both executors took tasks: each wrote shuffle files of the jobs.
        for name in ["executor-1", "executor-2"] {
            let jobs = std::fs::read_dir(tmp.path().join(name))
                .map(|d| d.count())
                .unwrap_or(0);
            assert!(jobs > 0, "{name} ran no task:\n{}", cluster.logs());
        }
        cluster.assert_running();
        drop(cluster);
    }
}
