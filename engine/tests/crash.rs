//! Crash at every file-system step of a database's life (create, commits with new segments,
//! deletion vectors and a dropped segment, an ingested batch, compactions into flat and Vamana
//! segments): every reboot shows exactly one committed version, whole, and never loses an
//! acknowledged commit.

use std::collections::BTreeMap;
use std::sync::Arc;

use strata::compaction::{CompactAll, SegmentKind};
use strata::storage::testing::{SimFs, for_each_crash_point};
use strata::storage::{LocalDir, Storage};
use strata::{Db, Metric, Options, SearchParams};

const DIM: usize = 4;

type Records = BTreeMap<u64, Vec<f32>>;

/// One round of writes before a commit, applied to the database and to the expected records.
type Round = dyn Fn(&Db, &mut Records);

fn vector(id: u64, round: u64) -> Vec<f32> {
    (0..DIM as u64).map(|d| ((id * 7 + d * 3 + round * 11) % 17) as f32 - 8.0).collect()
}

/// The versions a reboot may show: every acknowledged one's records, plus the one in flight.
#[derive(Debug, Default)]
struct Outcome {
    created: bool,
    versions: BTreeMap<u64, Records>,
    in_flight: Option<(u64, Records)>,
}

fn store(fs: &SimFs) -> Option<Arc<dyn Storage>> {
    LocalDir::with_fs(fs.clone(), "/db").ok().map(|s| Arc::new(s) as Arc<dyn Storage>)
}

/// Background compaction off: these scenarios decide when compactions run.
fn options() -> Options {
    Options::new(DIM, Metric::L2).background_compaction(false).diskann_min_rows(300)
}

/// Creates the database on `fs`, recording version 1 as in flight, then as acknowledged.
fn create(fs: &SimFs) -> (Option<Db>, Outcome) {
    let mut outcome = Outcome::default();
    let Some(store) = store(fs) else { return (None, outcome) };
    outcome.in_flight = Some((1, Records::new()));
    let Ok(db) = Db::create_in(store, options()) else { return (None, outcome) };
    outcome.created = true;
    outcome.versions.insert(1, Records::new());
    (Some(db), outcome)
}

fn scenario(fs: &SimFs) -> Outcome {
    let (db, mut outcome) = create(fs);
    let Some(db) = db else { return outcome };
    let mut records = Records::new();
    let rounds: [&Round; 4] = [
        // New segment.
        &|db, r| {
            for id in 0..12 {
                db.upsert(id, &vector(id, 0)).unwrap();
                r.insert(id, vector(id, 0));
            }
        },
        // New segment, upserts over the old one, deletes: a deletion vector.
        &|db, r| {
            for id in 8..16 {
                db.upsert(id, &vector(id, 1)).unwrap();
                r.insert(id, vector(id, 1));
            }
            for id in [0, 1, 2] {
                db.delete(id).unwrap();
                r.remove(&id);
            }
        },
        // Delete-only: a replaced deletion vector.
        &|db, r| {
            for id in [3, 12] {
                db.delete(id).unwrap();
                r.remove(&id);
            }
        },
        // Everything left of the first segment goes: it leaves the manifest.
        &|db, r| {
            for id in 4..8 {
                db.delete(id).unwrap();
                r.remove(&id);
            }
            db.upsert(40, &vector(40, 3)).unwrap();
            r.insert(40, vector(40, 3));
        },
    ];
    for round in rounds {
        round(&db, &mut records);
        let next = db.version().0 + 1;
        outcome.in_flight = Some((next, records.clone()));
        match db.commit() {
            Ok(version) => {
                assert_eq!(version.0, next);
                outcome.versions.insert(next, records.clone());
                outcome.in_flight = None;
            }
            Err(_) => return outcome,
        }
    }
    // The bulk path: a batch replacing committed records and adding new ones, written as its
    // own segment in one commit.
    let ids: Vec<u64> = (10..20).collect();
    let rows: Vec<f32> = ids.iter().flat_map(|&id| vector(id, 4)).collect();
    for &id in &ids {
        records.insert(id, vector(id, 4));
    }
    let next = db.version().0 + 1;
    outcome.in_flight = Some((next, records.clone()));
    if let Ok(version) = db.ingest(&ids, &rows) {
        assert_eq!(version.0, next);
        outcome.versions.insert(next, records);
        outcome.in_flight = None;
    }
    outcome
}

/// Reopens the crashed image: the database and the records of the version it shows, which must
/// be the newest acknowledged one or the one in flight. `None` if it was never created.
fn reopen<'a>(
    store: &Arc<dyn Storage>,
    step: u64,
    outcome: &'a Outcome,
) -> Option<(Db, &'a Records)> {
    let db = match Db::open_in(Arc::clone(store)) {
        Ok(db) => db,
        Err(e) => {
            assert!(!outcome.created, "step {step}: acknowledged database does not open: {e}");
            return None;
        }
    };
    let version = db.version().0;
    let newest_acknowledged = outcome.versions.keys().next_back().copied().unwrap_or(0);
    let records = match (&outcome.in_flight, outcome.versions.get(&version)) {
        (Some((v, records)), _) if *v == version => records,
        (_, Some(records)) if version == newest_acknowledged => records,
        _ => panic!(
            "step {step}: reopened at version {version}, newest acknowledged {newest_acknowledged}"
        ),
    };
    Some((db, records))
}

fn check(image: SimFs, step: u64, outcome: &Outcome) {
    let store = store(&image).expect("the root survives");
    let Some((db, records)) = reopen(&store, step, outcome) else { return };
    for id in 0..48 {
        assert_eq!(db.get(id).unwrap().as_ref(), records.get(&id), "step {step}: id {id}");
    }
    let hits = db.search_with(&vector(5, 0), SearchParams::exact(100)).unwrap();
    assert_eq!(hits.len(), records.len(), "step {step}");

    // The recovered database takes new commits (orphans of the crashed commit in the way or not).
    db.upsert(99, &vector(99, 9)).unwrap();
    let next = db.commit().unwrap();
    drop(db);
    let db = Db::open_in(store).unwrap();
    assert_eq!(db.version(), next);
    assert_eq!(db.get(99).unwrap(), Some(vector(99, 9)));
    assert_eq!(db.len(), records.len() + usize::from(!records.contains_key(&99)));
}

#[test]
fn every_crash_point_recovers_exactly_one_committed_version() {
    for_each_crash_point(0..3, scenario, check);
}

/// Commits three segments (with deletes), then compacts them into one flat segment, deletes
/// and commits, and compacts again into a Vamana segment (300 rows or more): a crash at any
/// step of either compaction shows the version before or after it.
fn compaction_scenario(fs: &SimFs) -> Outcome {
    let (db, mut outcome) = create(fs);
    let Some(db) = db else { return outcome };
    let mut records = Records::new();
    let step = |db: &Db, records: &Records, outcome: &mut Outcome, compact: bool| -> bool {
        let next = db.version().0 + 1;
        outcome.in_flight = Some((next, records.clone()));
        let result = if compact { db.compact().map(|_| db.version()) } else { db.commit() };
        match result {
            Ok(version) => {
                assert_eq!(version.0, next);
                outcome.versions.insert(next, records.clone());
                outcome.in_flight = None;
                true
            }
            Err(_) => false,
        }
    };
    for round in 0..3u64 {
        for id in round * 100..round * 100 + 100 {
            db.upsert(id, &vector(id, round)).unwrap();
            records.insert(id, vector(id, round));
        }
        if round > 0 {
            for id in [round, round * 50 + 1] {
                db.delete(id).unwrap();
                records.remove(&id);
            }
        }
        if !step(&db, &records, &mut outcome, false) {
            return outcome;
        }
    }
    db.set_compaction_policy(Arc::new(CompactAll));
    // An uncommitted delete during the compaction must not become durable with it.
    db.delete(7).unwrap();
    let committed = records.clone();
    records.remove(&7);
    if !step(&db, &committed, &mut outcome, true) {
        return outcome;
    }
    for id in 300..320 {
        db.upsert(id, &vector(id, 5)).unwrap();
        records.insert(id, vector(id, 5));
    }
    if !step(&db, &records, &mut outcome, false) {
        return outcome;
    }
    if step(&db, &records, &mut outcome, true) {
        let kinds: Vec<SegmentKind> = db.segments().iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [SegmentKind::Vamana], "the scenario ends in one Vamana segment");
    }
    outcome
}

fn check_compaction(image: SimFs, step: u64, outcome: &Outcome) {
    let store = store(&image).expect("the root survives");
    let Some((db, records)) = reopen(&store, step, outcome) else { return };
    for id in 0..330 {
        assert_eq!(db.get(id).unwrap().as_ref(), records.get(&id), "step {step}: id {id}");
    }
    // Every record exactly once.
    let hits = db.search_with(&vector(5, 0), SearchParams::exact(1000)).unwrap();
    let mut ids: Vec<u64> = hits.iter().map(|n| n.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, records.keys().copied().collect::<Vec<_>>(), "step {step}");
    assert_eq!(db.len(), records.len(), "step {step}");
}

#[test]
fn every_crash_point_of_a_compaction_recovers_the_version_before_or_after_it() {
    for_each_crash_point(0..2, compaction_scenario, check_compaction);
}
