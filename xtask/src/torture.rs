//! `cargo xtask torture`: crash a real writer process with SIGKILL, over and over, and check
//! after every crash that the database reopens at exactly one acknowledged state.
//!
//! The child (this binary again, with `--child`) opens the database and writes until it is
//! killed: batches of upserts (with a `gen` attribute) and deletes over a fixed universe of ids,
//! commits and ingests at random, synchronous compactions and GC, on top of the background
//! compaction worker. Before each write it appends the write to a log beside the database; it
//! marks a commit as begun (`b`) before calling `commit` or `ingest`, and appends the version
//! (`c V`) and fsyncs the log after the call returns. So the log holds every acknowledged
//! state, and at most one commit in flight.
//!
//! The parent kills the child at a random moment, reopens the database and reads every id of
//! the universe back: the records (vector and attribute) must equal the last acknowledged
//! state, or the state of the commit in flight (it may have become durable before its
//! acknowledgement was logged), and the version must not be older than the last acknowledged
//! one. Searches must agree with `get`. The parent then rewrites the log as a snapshot of the
//! state it verified, and starts the next child from there.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata::{Attributes, Db, Metric, Options, Schema, SearchParams, Value};

use crate::rng::Rng;

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// Dimension of the torture vectors: small, so a cycle spends its time in commits,
/// compactions and reopens rather than in distance kernels.
const DIM: usize = 16;

/// Kill a writer process at random moments and check every reopen.
#[derive(Debug, Clone, clap::Args)]
pub struct TortureArgs {
    /// The database directory (must not exist, or be empty). The log goes beside it, in
    /// `DIR.torture-log`.
    #[arg(long)]
    pub db: PathBuf,
    /// Crash-and-reopen cycles.
    #[arg(long, default_value_t = 100)]
    pub cycles: usize,
    /// The longest a child runs before it is killed, in seconds; each cycle draws its moment
    /// uniformly below this.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Seed of the children's writes and of the kill moments.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Ids the writes draw from; every reopen reads all of them back.
    #[arg(long, default_value_t = 3_000)]
    pub ids: u64,
    /// Run as the writer child (the parent passes this).
    #[arg(long, hide = true)]
    pub child: bool,
}

/// What one reopen found wrong, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Violations {
    /// The version or the records were older than the last acknowledged commit.
    lost_commits: u64,
    /// A record the acknowledged state deleted was back.
    resurrected_deletes: u64,
    /// Records matching neither the acknowledged state nor the commit in flight.
    partial_versions: u64,
    /// The database did not open.
    failed_reopens: u64,
    /// A search returned a record `get` does not have, or at another distance.
    search_mismatches: u64,
}

impl Violations {
    fn total(&self) -> u64 {
        self.lost_commits
            + self.resurrected_deletes
            + self.partial_versions
            + self.failed_reopens
            + self.search_mismatches
    }

    fn add(&mut self, other: Violations) {
        self.lost_commits += other.lost_commits;
        self.resurrected_deletes += other.resurrected_deletes;
        self.partial_versions += other.partial_versions;
        self.failed_reopens += other.failed_reopens;
        self.search_mismatches += other.search_mismatches;
    }
}

/// Records by id: the generation of each live record's vector and attribute.
type State = BTreeMap<u64, u64>;

/// What the log says the database may hold.
#[derive(Debug, Default)]
struct Expected {
    /// The last acknowledged version and its records.
    version: u64,
    acknowledged: State,
    /// The records of a commit begun and not acknowledged.
    in_flight: Option<State>,
}

fn log_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".torture-log");
    PathBuf::from(name)
}

/// The vector of a record's generation: a pure function of the id and generation.
fn vector(id: u64, generation: u64) -> Vec<f32> {
    let mut rng = Rng::new(id, generation);
    (0..DIM).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect()
}

fn options() -> Options {
    Options::new(DIM, Metric::L2)
        .attributes(Schema::new().u64("gen"))
        .keep_versions(3)
        .compaction_threshold(3)
        .diskann_min_rows(500)
        // Only commits and ingests may make writes durable: the log knows of no other.
        .auto_flush_bytes(None)
}

/// Replays the log: acknowledged states, and the commit in flight after the last one.
fn read_log(path: &Path) -> Result<Expected> {
    let mut expected = Expected::default();
    let mut begun = false;
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(expected),
        Err(e) => return Err(e.into()),
    };
    // Writes since the last acknowledgement, in order: an upsert's generation, or a delete.
    let mut ops: Vec<(u64, Option<u64>)> = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line?;
        let fields: Vec<&str> = line.split(' ').collect();
        let number = |i: usize| fields.get(i).and_then(|field| field.parse::<u64>().ok());
        match (fields[0], number(1), number(2), fields.len()) {
            ("u", Some(id), Some(generation), 3) => ops.push((id, Some(generation))),
            ("d", Some(id), None, 2) => ops.push((id, None)),
            ("b", None, None, 1) => begun = true,
            ("c", Some(version), None, 2) => {
                expected.version = version;
                for (id, generation) in ops.drain(..) {
                    match generation {
                        Some(generation) => expected.acknowledged.insert(id, generation),
                        None => expected.acknowledged.remove(&id),
                    };
                }
                begun = false;
            }
            // The last line, cut by the kill (a begun commit's lines are whole: `b` follows
            // them, and an unbegun write is not durable).
            _ => break,
        }
    }
    if begun {
        let mut state = expected.acknowledged.clone();
        for &(id, generation) in &ops {
            match generation {
                Some(generation) => state.insert(id, generation),
                None => state.remove(&id),
            };
        }
        expected.in_flight = Some(state);
    }
    Ok(expected)
}

/// Writes `state` at `version` as the whole log (the parent's snapshot after a check).
fn write_snapshot(path: &Path, version: u64, state: &State) -> Result<()> {
    let temporary = path.with_extension("torture-log.new");
    let mut out = BufWriter::new(File::create(&temporary)?);
    for (id, generation) in state {
        writeln!(out, "u {id} {generation}")?;
    }
    writeln!(out, "c {version}")?;
    out.into_inner()?.sync_all()?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}

/// The parent: cycles of start, kill, reopen and check.
pub fn run(args: &TortureArgs) -> Result<()> {
    if args.child {
        return child(args);
    }
    if args.db.exists() && std::fs::read_dir(&args.db)?.next().is_some() {
        return Err(
            format!("{}: the database directory must be new or empty", args.db.display()).into()
        );
    }
    if args.ids == 0 || !(args.seconds.is_finite() && args.seconds > 0.0) {
        return Err("--ids must be at least 1 and --seconds a positive number".into());
    }
    let log = log_path(&args.db);
    let _ = std::fs::remove_file(&log);
    Db::create(&args.db, options())?.close()?;
    write_snapshot(&log, 1, &State::new())?;
    let exe = std::env::current_exe()?;
    let mut rng = Rng::new(args.seed, 0x7047);
    let mut totals = Violations::default();
    let (mut in_flight, mut in_flight_landed) = (0u64, 0u64);
    let (mut versions_seen, mut records_seen) = (1u64, 0u64);
    let started = Instant::now();
    for cycle in 0..args.cycles {
        let mut child = Command::new(&exe)
            .args(["torture", "--child", "--ids", &args.ids.to_string()])
            .arg("--db")
            .arg(&args.db)
            .args(["--seed", &(args.seed.wrapping_mul(1_000_003) ^ cycle as u64).to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let moment = Duration::from_secs_f64(rng.uniform() * args.seconds);
        std::thread::sleep(moment);
        match child.try_wait()? {
            Some(status) => {
                return Err(format!("cycle {cycle}: the child exited early ({status})").into());
            }
            None => child.kill()?,
        }
        child.wait()?;
        let expected = read_log(&log)?;
        let (violations, found) = check(&args.db, &expected, args.ids, &mut rng);
        if violations.total() > 0 {
            eprintln!("cycle {cycle}: {violations:?} (log {})", log.display());
        }
        totals.add(violations);
        let Some((version, state)) = found else {
            return Err(summary(cycle + 1, &totals, started).into());
        };
        in_flight += u64::from(expected.in_flight.is_some());
        in_flight_landed += u64::from(
            expected.in_flight.as_ref() == Some(&state) && state != expected.acknowledged,
        );
        versions_seen = version;
        records_seen = state.len() as u64;
        write_snapshot(&log, version, &state)?;
        if violations.total() > 0 {
            return Err(summary(cycle + 1, &totals, started).into());
        }
    }
    println!("{}", summary(args.cycles, &totals, started));
    println!(
        "last version {versions_seen}, {records_seen} records; kills during a commit {in_flight}, \
         of which landed {in_flight_landed}"
    );
    Ok(())
}

fn summary(cycles: usize, totals: &Violations, started: Instant) -> String {
    format!(
        "cycles {cycles}, lost commits {}, resurrected deletes {}, partial versions {}, failed reopens {}, search mismatches {} ({:.1} s)",
        totals.lost_commits,
        totals.resurrected_deletes,
        totals.partial_versions,
        totals.failed_reopens,
        totals.search_mismatches,
        started.elapsed().as_secs_f64()
    )
}

/// Reopens the database and compares it with what the log allows. Returns the violations and,
/// when it opened, the version and records found.
fn check(
    db: &Path,
    expected: &Expected,
    ids: u64,
    rng: &mut Rng,
) -> (Violations, Option<(u64, State)>) {
    let mut violations = Violations::default();
    let db = match Db::open(db) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("reopen failed: {e}");
            violations.failed_reopens += 1;
            return (violations, None);
        }
    };
    let version = db.version().0;
    let mut found = State::new();
    let mut unreadable = 0u64;
    for id in 0..ids {
        match (db.get(id), db.get_attributes(id)) {
            (Ok(None), Ok(None)) => {}
            (Ok(Some(got)), Ok(Some(attributes))) => match attributes.get("gen") {
                Some(&Value::U64(generation)) if got == vector(id, generation) => {
                    found.insert(id, generation);
                }
                _ => unreadable += 1,
            },
            _ => unreadable += 1,
        }
    }
    let matches_acknowledged = found == expected.acknowledged;
    let matches_in_flight = expected.in_flight.as_ref() == Some(&found);
    if version < expected.version {
        violations.lost_commits += 1;
    } else if !(matches_acknowledged || matches_in_flight)
        || unreadable > 0
        || db.len() != found.len()
    {
        let deleted = |state: &State| found.keys().any(|id| !state.contains_key(id));
        let resurrected =
            deleted(&expected.acknowledged) && expected.in_flight.as_ref().is_none_or(deleted);
        let missing = expected.acknowledged.keys().any(|id| !found.contains_key(id))
            && expected
                .in_flight
                .as_ref()
                .is_none_or(|state| state.keys().any(|id| !found.contains_key(id)));
        if resurrected {
            violations.resurrected_deletes += 1;
        }
        if missing {
            violations.lost_commits += 1;
        }
        if !resurrected && !missing {
            violations.partial_versions += 1;
        }
        eprintln!(
            "version {version} (acknowledged {}): {} records found, {} acknowledged, in flight {:?}, {unreadable} unreadable, len {}",
            expected.version,
            found.len(),
            expected.acknowledged.len(),
            expected.in_flight.as_ref().map(BTreeMap::len),
            db.len()
        );
    }
    violations.search_mismatches += search_mismatches(&db, &found, rng);
    (violations, Some((version, found)))
}

/// Searches for a few live records' own vectors, exactly and through the indexes: every
/// result must be a record `get` has, at its exact distance, and the exact search must put the
/// record itself (distance 0) first.
fn search_mismatches(db: &Db, found: &State, rng: &mut Rng) -> u64 {
    let live: Vec<(u64, u64)> = found.iter().map(|(&id, &generation)| (id, generation)).collect();
    let mut mismatches = 0;
    for _ in 0..live.len().min(20) {
        let (id, generation) = live[rng.below(live.len())];
        let query = vector(id, generation);
        for (params, exact) in [
            (SearchParams::exact(10), true),
            (SearchParams::new(10).ef(200).search_list(200), false),
        ] {
            let Ok(results) = db.search_with(&query, params) else {
                mismatches += 1;
                continue;
            };
            let agrees = results.iter().all(|neighbor| {
                found.get(&neighbor.id).is_some_and(|&generation| {
                    let distance = Metric::L2.distance(&query, &vector(neighbor.id, generation));
                    (distance - neighbor.distance).abs() <= 1e-4 * (1.0 + distance)
                })
            });
            let first = results.first().is_some_and(|first| first.distance <= 1e-6);
            if !agrees || (exact && !first) {
                eprintln!("search for {id} (exact: {exact}): {results:?}");
                mismatches += 1;
            }
        }
    }
    mismatches
}

/// The child: writes until killed, logging each write before it and each acknowledgement after.
fn child(args: &TortureArgs) -> Result<()> {
    let log_file = OpenOptions::new().append(true).open(log_path(&args.db))?;
    let mut log = BufWriter::new(log_file);
    let db = Db::open(&args.db)?;
    let mut rng = Rng::new(args.seed, 0xC417);
    let mut generation = rng.next_u64() >> 16;
    loop {
        match rng.below(100) {
            0..=59 => {
                let rows = 1 + rng.below(200);
                let rotate = 50 + rng.below(1_000);
                db.set_memtable_rotate_rows(rotate);
                for _ in 0..rows {
                    let id = rng.below(args.ids as usize) as u64;
                    if rng.below(4) == 0 {
                        writeln!(log, "d {id}")?;
                        db.delete(id)?;
                    } else {
                        generation += 1;
                        writeln!(log, "u {id} {generation}")?;
                        let attributes = Attributes::new().set("gen", generation);
                        db.upsert_with(id, &vector(id, generation), &attributes)?;
                    }
                }
            }
            60..=79 => {
                writeln!(log, "b")?;
                log.flush()?;
                let version = db.commit()?;
                acknowledge(&mut log, version.0)?;
            }
            80..=87 => {
                let rows = 1 + rng.below(600);
                let mut ids = Vec::with_capacity(rows);
                let mut vectors = Vec::with_capacity(rows * DIM);
                let mut attributes = Vec::with_capacity(rows);
                for _ in 0..rows {
                    let id = rng.below(args.ids as usize) as u64;
                    generation += 1;
                    writeln!(log, "u {id} {generation}")?;
                    ids.push(id);
                    vectors.extend(vector(id, generation));
                    attributes.push(Attributes::new().set("gen", generation));
                }
                writeln!(log, "b")?;
                log.flush()?;
                let version = db.ingest_with(&ids, &vectors, &attributes)?;
                acknowledge(&mut log, version.0)?;
            }
            88..=94 => {
                db.compact()?;
            }
            _ => {
                db.gc()?;
            }
        }
    }
}

/// Logs an acknowledged commit and makes the log durable before going on.
fn acknowledge(log: &mut BufWriter<File>, version: u64) -> Result<()> {
    writeln!(log, "c {version}")?;
    log.flush()?;
    log.get_ref().sync_data()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        (dir, db)
    }

    #[test]
    fn the_log_gives_acknowledged_states_and_the_commit_in_flight() {
        let (_dir, db) = temp_db();
        let log = log_path(&db);
        std::fs::write(&log, "u 1 10\nu 2 11\nb\nc 2\nd 1\nu 3 12\nb\nc 3\nu 4 13\nd 2\nb\n")
            .unwrap();
        let expected = read_log(&log).unwrap();
        assert_eq!(expected.version, 3);
        assert_eq!(expected.acknowledged, State::from([(2, 11), (3, 12)]));
        assert_eq!(expected.in_flight, Some(State::from([(3, 12), (4, 13)])));
        // Writes after the last acknowledgement that no commit began are not durable; a line
        // cut by the kill ends the log.
        std::fs::write(&log, "u 1 10\nb\nc 2\nu 2 11\nu 3").unwrap();
        let expected = read_log(&log).unwrap();
        assert_eq!((expected.version, expected.in_flight), (2, None));
        assert_eq!(expected.acknowledged, State::from([(1, 10)]));
    }

    /// Builds a database holding `state`, committed; returns its version.
    fn database(db: &Path, state: &State) -> u64 {
        let handle = Db::create(db, options()).unwrap();
        for (&id, &generation) in state {
            let attributes = Attributes::new().set("gen", generation);
            handle.upsert_with(id, &vector(id, generation), &attributes).unwrap();
        }
        let version = handle.commit().unwrap().0;
        handle.close().unwrap();
        version
    }

    #[test]
    fn the_check_names_each_kind_of_violation() {
        let (_dir, db) = temp_db();
        let state = State::from([(1, 10), (2, 11), (5, 12)]);
        let version = database(&db, &state);
        let mut rng = Rng::new(1, 2);
        let check_against =
            |acknowledged: State, at: u64, in_flight: Option<State>, rng: &mut Rng| {
                let expected = Expected { version: at, acknowledged, in_flight };
                check(&db, &expected, 8, rng).0
            };
        let clean = Violations::default();
        assert_eq!(check_against(state.clone(), version, None, &mut rng), clean);
        // The commit in flight landed: allowed.
        let before = State::from([(1, 10)]);
        assert_eq!(
            check_against(before.clone(), version - 1, Some(state.clone()), &mut rng),
            clean
        );
        // The database is older than an acknowledged commit.
        let lost = check_against(state.clone(), version + 1, None, &mut rng);
        assert_eq!(lost.lost_commits, 1, "{lost:?}");
        // An acknowledged upsert is missing.
        let mut more = state.clone();
        more.insert(7, 13);
        assert_eq!(check_against(more, version, None, &mut rng).lost_commits, 1);
        // A record the log deleted is there.
        let resurrected = check_against(before, version, None, &mut rng);
        assert_eq!(resurrected.resurrected_deletes, 1, "{resurrected:?}");
        // Another generation of the same ids: neither state.
        let other = State::from([(1, 10), (2, 99), (5, 12)]);
        assert_eq!(check_against(other, version, None, &mut rng).partial_versions, 1);
    }

    #[test]
    fn a_database_that_does_not_open_is_a_failed_reopen() {
        let (_dir, db) = temp_db();
        database(&db, &State::new());
        for entry in std::fs::read_dir(db.join("manifest")).unwrap() {
            std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
        }
        let (violations, found) = check(&db, &Expected::default(), 4, &mut Rng::new(1, 1));
        assert_eq!(violations.failed_reopens, 1);
        assert!(found.is_none());
    }
}
