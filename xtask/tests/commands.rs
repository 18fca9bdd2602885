//! The database commands as a user runs them: the xtask binary on small generated files, with
//! exit status and output checked, including a truncated input, a wrong dimension and a bad
//! row part-way through a load.

use std::process::{Command, Output};
use strata_test_support::{write_fvecs, write_ivecs};

const DIM: usize = 8;

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).output().expect("xtask runs")
}

fn ok(args: &[&str]) -> String {
    let out = xtask(args);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

fn fails(args: &[&str]) -> String {
    let out = xtask(args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Deterministic clustered-ish rows: row i near centre i % 7.
fn rows(n: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| {
            (0..dim)
                .map(|d| ((i % 7) * (d + 1)) as f32 + ((i * 31 + d * 17) % 101) as f32 / 101.0)
                .collect()
        })
        .collect()
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn records(db: &str) -> usize {
    let report = ok(&["inspect", "--db", db]);
    let line = report.lines().find(|l| l.starts_with("records")).expect("a records line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn load_search_inspect_compact_and_gc() {
    let dir = tempfile::tempdir().unwrap();
    let base = rows(3000, DIM);
    let queries: Vec<Vec<f32>> =
        rows(20, DIM).into_iter().map(|q| q.iter().map(|x| x + 0.05).collect()).collect();
    let (base_file, query_file, gt_file) =
        (dir.path().join("base.fvecs"), dir.path().join("q.fvecs"), dir.path().join("gt.ivecs"));
    write_fvecs(&base_file, &base);
    write_fvecs(&query_file, &queries);
    let truth: Vec<Vec<i32>> = queries
        .iter()
        .map(|q| {
            let mut ids: Vec<usize> = (0..base.len()).collect();
            ids.sort_by(|&a, &b| l2(q, &base[a]).total_cmp(&l2(q, &base[b])).then(a.cmp(&b)));
            ids[..10].iter().map(|&i| i as i32).collect()
        })
        .collect();
    write_ivecs(&gt_file, &truth);
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let (base_arg, query_arg, gt_arg) =
        (base_file.to_str().unwrap(), query_file.to_str().unwrap(), gt_file.to_str().unwrap());

    let out = ok(&[
        "bulk-load",
        "--db",
        db,
        "--input",
        base_arg,
        "--create",
        "--batch",
        "400",
        "--commit-every",
        "1000",
        "--wait-compaction",
    ]);
    assert!(out.contains("loaded 3000 rows") && out.contains("3 commits"), "{out}");
    assert_eq!(records(db), 3000);

    let report = ok(&["inspect", "--db", db]);
    assert!(report.contains("dim 8, metric l2"), "{report}");
    assert!(report.contains("segments"), "{report}");
    assert!(report.contains("vamana") || report.contains("flat"), "{report}");

    let out =
        ok(&["search", "--db", db, "--query", query_arg, "-k", "10", "--gt", gt_arg, "--l", "64"]);
    let recall: f64 = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(out.starts_with("recall@10") && recall >= 0.95, "{out}");
    let out = ok(&["search", "--db", db, "--query", query_arg, "-k", "3"]);
    assert_eq!(out.lines().count(), 20, "{out}");
    let first: Vec<&str> = out.lines().next().unwrap().split('\t').collect();
    assert_eq!(first[0], "0");
    assert_eq!(first[1].split(' ').count(), 3, "{out}");

    let out = ok(&["compact", "--db", db, "--full"]);
    assert!(out.contains("-> 1 segments"), "{out}");
    let out = ok(&["gc", "--db", db]);
    assert!(out.starts_with("removed "), "{out}");
    assert_eq!(records(db), 3000);

    // Loading again upserts the same ids: still 3000 records.
    ok(&["bulk-load", "--db", db, "--input", base_arg]);
    assert_eq!(records(db), 3000);
}

#[test]
fn bad_inputs_stop_with_a_clear_error_and_leave_the_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let good = dir.path().join("good.fvecs");
    write_fvecs(&good, &rows(500, DIM));
    ok(&["bulk-load", "--db", db, "--input", good.to_str().unwrap(), "--create"]);
    assert_eq!(records(db), 500);

    // Truncated: refused before anything is loaded.
    let cut = dir.path().join("cut.fvecs");
    let mut bytes = std::fs::read(&good).unwrap();
    bytes.truncate(bytes.len() - 7);
    std::fs::write(&cut, bytes).unwrap();
    let error = fails(&["bulk-load", "--db", db, "--input", cut.to_str().unwrap()]);
    assert!(error.contains("truncated") && error.contains("499 whole rows"), "{error}");
    assert_eq!(records(db), 500);

    // Another dimension than the database's.
    let wide = dir.path().join("wide.fvecs");
    write_fvecs(&wide, &rows(10, DIM + 1));
    let error = fails(&["bulk-load", "--db", db, "--input", wide.to_str().unwrap()]);
    assert!(error.contains("9-dimensional") && error.contains("8-dimensional"), "{error}");
    assert_eq!(records(db), 500);

    // A row part-way through that declares another dimension (same byte length): the rows
    // before the last commit stay, the rest are dropped.
    let mut data = rows(3000, DIM);
    for row in data.iter_mut() {
        row[0] += 1000.0; // new records: ids 0..3000 replace the first 500, then add
    }
    let bad = dir.path().join("bad.fvecs");
    write_fvecs(&bad, &data);
    let mut bytes = std::fs::read(&bad).unwrap();
    let at = 2500 * (4 + 4 * DIM);
    bytes[at..at + 4].copy_from_slice(&7i32.to_le_bytes());
    std::fs::write(&bad, bytes).unwrap();
    let error = fails(&[
        "bulk-load",
        "--db",
        db,
        "--input",
        bad.to_str().unwrap(),
        "--batch",
        "500",
        "--commit-every",
        "1000",
    ]);
    assert!(error.contains("row 2500 declares dimension 7"), "{error}");
    assert_eq!(records(db), 2000, "the two commits before the bad row, nothing after");

    // --create with a --dim the input does not have: refused, and no database is made.
    let fresh = dir.path().join("fresh");
    let error = fails(&[
        "bulk-load",
        "--db",
        fresh.to_str().unwrap(),
        "--input",
        good.to_str().unwrap(),
        "--create",
        "--dim",
        "9",
    ]);
    assert!(error.contains("--dim 9"), "{error}");
    assert!(!fresh.join("manifest").exists(), "no database was created");

    // A missing database, an unknown format, and a bad ids file.
    let error = fails(&["inspect", "--db", dir.path().join("nothing").to_str().unwrap()]);
    assert!(!error.is_empty());
    let text = dir.path().join("vectors.txt");
    std::fs::write(&text, "1 2 3").unwrap();
    let error = fails(&["bulk-load", "--db", db, "--input", text.to_str().unwrap()]);
    assert!(error.contains("unknown format"), "{error}");
    let ids = dir.path().join("ids.txt");
    std::fs::write(&ids, "1\n2\nthree\n").unwrap();
    let error = fails(&[
        "bulk-load",
        "--db",
        db,
        "--input",
        good.to_str().unwrap(),
        "--ids",
        &format!("file:{}", ids.display()),
    ]);
    assert!(error.contains("not an id"), "{error}");
}

#[test]
fn ids_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let input = dir.path().join("v.fvecs");
    let data = rows(50, DIM);
    write_fvecs(&input, &data);
    let ids = dir.path().join("ids.txt");
    std::fs::write(&ids, (0..50).map(|i| format!("{}\n", 1_000_000 + i * 3)).collect::<String>())
        .unwrap();
    ok(&[
        "bulk-load",
        "--db",
        db,
        "--input",
        input.to_str().unwrap(),
        "--create",
        "--ids",
        &format!("file:{}", ids.display()),
    ]);
    let query = dir.path().join("q.fvecs");
    write_fvecs(&query, &data[7..8]);
    let out = ok(&["search", "--db", db, "--query", query.to_str().unwrap(), "-k", "1"]);
    assert!(out.starts_with("0\t1000021:0.000000"), "{out}");
}

/// Both load paths give the same records: ingest (the default) and upserts.
#[test]
fn bulk_load_via_upserts_gives_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("v.fvecs");
    let data = rows(900, DIM);
    write_fvecs(&input, &data);
    let query = dir.path().join("q.fvecs");
    write_fvecs(&query, &data[123..124]);
    for via in ["ingest", "upsert"] {
        let db = dir.path().join(via);
        let db = db.to_str().unwrap();
        let input = input.to_str().unwrap();
        let out = ok(&["bulk-load", "--db", db, "--input", input, "--create", "--via", via]);
        assert!(out.contains("loaded 900 rows") && out.contains("1 commits"), "{via}: {out}");
        assert_eq!(records(db), 900, "{via}");
        let out = ok(&["search", "--db", db, "--query", query.to_str().unwrap(), "-k", "1"]);
        assert!(out.starts_with("0\t123:0.000000"), "{via}: {out}");
    }
}

/// A database exported to Parquet loads back into an equal one (by either path), attributes
/// and payloads included; a file without a `vector` column is refused with a clear error.
#[test]
fn export_to_parquet_and_load_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("v.fvecs");
    let data = rows(700, DIM);
    write_fvecs(&input, &data);
    let attributes = dir.path().join("a.jsonl");
    let lines: Vec<String> = (0..700)
        .map(|i| match i % 3 {
            0 => format!("{{\"lang\": \"de\", \"n\": {i}, \"payload\": \"p{i}\"}}"),
            1 => format!("{{\"lang\": \"en\", \"n\": {i}}}"),
            _ => "{}".to_owned(),
        })
        .collect();
    std::fs::write(&attributes, lines.join("\n") + "\n").unwrap();
    let source = dir.path().join("source");
    let source = source.to_str().unwrap();
    ok(&[
        "bulk-load",
        "--db",
        source,
        "--input",
        input.to_str().unwrap(),
        "--create",
        "--attributes",
        attributes.to_str().unwrap(),
        "--commit-every",
        "300",
    ]);
    let parquet = dir.path().join("records.parquet");
    let parquet = parquet.to_str().unwrap();
    let out = ok(&["export", "--db", source, "--out", parquet, "--batch-rows", "128"]);
    assert!(out.starts_with("exported 700 records of version"), "{out}");
    let query = dir.path().join("q.fvecs");
    write_fvecs(&query, &data[321..322]);
    let filtered = |db: &str| {
        ok(&[
            "search",
            "--db",
            db,
            "--query",
            query.to_str().unwrap(),
            "-k",
            "5",
            "--filter",
            "lang = 'de' AND n >= 300",
        ])
    };
    let want = filtered(source);
    for via in ["ingest", "upsert"] {
        let copy = dir.path().join(format!("copy-{via}"));
        let copy = copy.to_str().unwrap();
        let out = ok(&[
            "bulk-load",
            "--db",
            copy,
            "--input",
            parquet,
            "--create",
            "--via",
            via,
            "--commit-every",
            "256",
            "--batch",
            "100",
        ]);
        assert!(out.contains("loaded 700 rows") && out.contains("3 commits"), "{via}: {out}");
        assert_eq!(records(copy), 700, "{via}");
        let report = ok(&["inspect", "--db", copy]);
        assert!(report.contains("attributes"), "the schema came with the file: {report}");
        assert_eq!(filtered(copy), want, "{via}: the same records and attributes");
    }
    // A missing file is named.
    let again = dir.path().join("again.parquet");
    ok(&[
        "export",
        "--db",
        dir.path().join("copy-ingest").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    let error = fails(&[
        "bulk-load",
        "--db",
        dir.path().join("x").to_str().unwrap(),
        "--input",
        again.to_str().unwrap().replace("again", "missing").as_str(),
        "--create",
    ]);
    assert!(error.contains("missing.parquet"), "{error}");
}

/// The demo end to end as a user runs it, on a small data set (a debug build is allowed to
/// measure here: the test checks what it prints, not how fast).
#[test]
fn the_demo_runs_and_prints_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["demo", "--n", "4000", "--dim", "8", "--queries", "40", "--commit-every", "500"])
        .args(["--dir", dir.path().to_str().unwrap()])
        .env("XTASK_ALLOW_DEBUG", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("rows                 4000"), "{stdout}");
    let recall: f64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("recall@10"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no recall line in {stdout}"));
    assert!(recall >= 0.95, "{stdout}");
    assert!(stdout.contains("Vamana"), "{stdout}");
}

#[test]
fn every_command_explains_its_options() {
    for (command, options) in [
        (
            "demo",
            &["--n", "--dim", "--queries", "--dir", "--commit-every", "--l", "--recall", "--seed"]
                [..],
        ),
        (
            "bulk-load",
            &[
                "--db",
                "--input",
                "--create",
                "--dim",
                "--metric",
                "--via",
                "--batch",
                "--commit-every",
                "--ids",
            ],
        ),
        ("search", &["--db", "--query", "--k", "--gt", "--l", "--recall", "--ef"]),
        ("inspect", &["--db"]),
        ("export", &["--db", "--out", "--version", "--batch-rows", "--compression"]),
        ("compact", &["--db", "--full"]),
        ("gc", &["--db"]),
    ] {
        let help = ok(&[command, "--help"]);
        for option in options {
            assert!(help.contains(option), "{command} --help lacks {option}:\n{help}");
        }
    }
    let help = ok(&["bulk-load", "--help"]);
    assert!(help.contains("[default: 100000]") && help.contains("[default: row]"), "{help}");
}

/// CI's short crash loop: the writer process is killed 30 times at random moments (in commits,
/// ingests, compactions and GC), and every reopen holds exactly an acknowledged state.
#[test]
fn torture_kills_a_writer_and_every_reopen_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let out = ok(&["torture", "--db", db, "--cycles", "30", "--seconds", "0.8", "--seed", "5"]);
    assert!(
        out.contains("cycles 30, lost commits 0, resurrected deletes 0, partial versions 0, failed reopens 0, search mismatches 0"),
        "{out}"
    );
    // The kills left temporary files; the writer's open after the last one removed them.
    let leftovers =
        std::process::Command::new("find").args([db, "-name", ".tmp-*"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&leftovers.stdout), "", "crash leftovers remain");
    // A second run on the same directory is refused rather than mixing logs.
    assert!(fails(&["torture", "--db", db, "--cycles", "1"]).contains("must be new or empty"));
}
