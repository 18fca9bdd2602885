//! Manifests and deletion vectors: round trips, damage detection, commit conflicts, recovery
//! rules and the garbage-collection plan.

use proptest::prelude::*;
use strata_manifest::keys::{deletes_key, manifest_key, segment_file_key};
use strata_manifest::{
    CompactionSettings, DeletesRecord, DeletionVector, FileRecord, Manifest, ManifestError,
    Retention, SegmentKind, SegmentRecord, StoredColumn, StoredOptions, commit, list_versions,
    load, load_latest, plan_gc, read_deletes, write_deletes,
};
use strata_storage::{MemoryStore, Storage};

fn options() -> StoredOptions {
    StoredOptions {
        dim: 128,
        metric: 1,
        hnsw_m: 16,
        hnsw_ef_construction: 200,
        keep_versions: 3,
        keep_for_secs: 0,
        attributes: Vec::new(),
        compaction: CompactionSettings {
            threshold: 6,
            deleted_rewrite_permille: 250,
            diskann_min_rows: 50_000,
            vamana_max_degree: 48,
            vamana_codec: 4,
            vamana_codec_param: 32,
            memory_mib: 2048,
            auto_flush_bytes: 1 << 30,
            flags: CompactionSettings::AUTO_FLUSH_OFF,
        },
    }
}

fn manifest(version: u64, segments: Vec<SegmentRecord>) -> Manifest {
    let next_segment_id = segments.iter().map(|s| s.id + 1).max().unwrap_or(1);
    Manifest {
        version,
        committed_at_ms: version * 1000,
        options: options(),
        next_segment_id,
        segments,
    }
}

fn segment(id: u64, rows: u64, deletes: Option<DeletesRecord>) -> SegmentRecord {
    SegmentRecord {
        id,
        tag: id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        kind: SegmentKind::Flat,
        rows,
        files: vec![FileRecord { size: 1000 + id, crc32: id as u32 * 7 }],
        deletes,
    }
}

fn arb_manifest() -> impl Strategy<Value = Manifest> {
    let segment = (
        0u64..1000,
        0u64..1_000_000,
        proptest::option::of((1u64..50, any::<u32>())),
        any::<bool>(),
    )
        .prop_map(|(id, rows, deletes, vamana)| {
            let deletes = deletes.map(|(generation, crc32)| DeletesRecord {
                generation,
                tag: u64::from(crc32) << 7,
                deleted: rows / 2,
                size: 64,
                crc32,
            });
            let mut segment = segment(id, rows, deletes);
            if vamana {
                segment.kind = SegmentKind::Vamana;
            }
            segment
        });
    (proptest::collection::vec(segment, 0..20), 50u64..100, 0u64..5).prop_map(
        |(mut segments, version, extra_ids)| {
            segments.sort_by_key(|s| s.id);
            segments.dedup_by_key(|s| s.id);
            let mut m = manifest(version, segments);
            m.next_segment_id += extra_ids;
            m
        },
    )
}

proptest! {
    #[test]
    fn manifests_round_trip(m in arb_manifest()) {
        let bytes = m.encode();
        prop_assert_eq!(Manifest::decode("m", &bytes, m.version).unwrap(), m);
    }

    #[test]
    fn deletion_vectors_round_trip_in_either_encoding(
        rows in 0u64..5000,
        picks in proptest::collection::vec(any::<u64>(), 0..400),
        dense in any::<bool>(),
    ) {
        let mut dv = DeletionVector::new(rows);
        if rows > 0 {
            for p in picks {
                dv.insert(p % rows);
            }
            if dense {
                (0..rows).step_by(2).for_each(|r| dv.insert(r));
            }
        }
        let bytes = dv.encode(7);
        let back = DeletionVector::decode("d", &bytes, 7, rows).unwrap();
        prop_assert_eq!(&back, &dv);
        for r in 0..rows {
            prop_assert_eq!(back.contains(r), dv.contains(r));
        }
    }
}

#[test]
fn every_flipped_bit_and_truncation_of_a_manifest_is_an_error() {
    let m = manifest(
        4,
        vec![
            segment(1, 10, None),
            segment(
                3,
                500,
                Some(DeletesRecord { generation: 4, tag: 11, deleted: 2, size: 50, crc32: 9 }),
            ),
        ],
    );
    let bytes = m.encode();
    for bit in 0..bytes.len() * 8 {
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        let err = Manifest::decode("manifest/x", &damaged, 4).expect_err("flip must be caught");
        assert!(err.to_string().contains("manifest/x"), "{err}");
    }
    for len in 0..bytes.len() {
        assert!(Manifest::decode("m", &bytes[..len], 4).is_err(), "truncated to {len}");
    }
    assert!(matches!(
        Manifest::decode("m", &bytes, 5),
        Err(ManifestError::Corrupt {
            problem: strata_manifest::Problem::VersionMismatch { .. },
            ..
        })
    ));
}

#[test]
fn every_flipped_bit_and_truncation_of_a_deletion_vector_is_an_error() {
    for rows in [10u64, 1000] {
        let mut dv = DeletionVector::new(rows);
        dv.insert(3);
        dv.insert(rows - 1);
        let bytes = dv.encode(5);
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(DeletionVector::decode("d", &damaged, 5, rows).is_err(), "bit {bit}");
        }
        for len in 0..bytes.len() {
            assert!(DeletionVector::decode("d", &bytes[..len], 5, rows).is_err());
        }
        // Belongs to another segment, or one of another size.
        assert!(DeletionVector::decode("d", &bytes, 6, rows).is_err());
        assert!(DeletionVector::decode("d", &bytes, 5, rows + 1).is_err());
    }
}

#[test]
fn a_second_commit_of_a_version_conflicts_and_changes_nothing() {
    let store = MemoryStore::new();
    let first = manifest(1, vec![]);
    commit(&store, &first).unwrap();
    let rival = manifest(1, vec![segment(0, 5, None)]);
    assert!(matches!(commit(&store, &rival), Err(ManifestError::Conflict { version: 1 })));
    assert_eq!(load_latest(&store).unwrap(), first);
}

#[test]
fn recovery_reads_the_newest_and_never_falls_back_silently() {
    let store = MemoryStore::new();
    assert!(matches!(load_latest(&store), Err(ManifestError::NoDatabase)));
    for v in 1..=3 {
        commit(&store, &manifest(v, vec![segment(v, v * 10, None)])).unwrap();
    }
    store.put("manifest/stray-file", b"ignored").unwrap();
    assert_eq!(list_versions(&store).unwrap(), [1, 2, 3]);
    assert_eq!(load_latest(&store).unwrap().version, 3);

    // Damage the newest: opening names it; the older version is still there when asked for.
    let key = manifest_key(3);
    let mut bytes = store.get(&key).unwrap().to_vec();
    bytes[10] ^= 0xFF;
    store.put(&key, &bytes).unwrap();
    let err = load_latest(&store).unwrap_err();
    assert!(err.to_string().contains(&key), "{err}");
    assert_eq!(load(&store, 2).unwrap().version, 2);
    assert!(matches!(load(&store, 9), Err(ManifestError::VersionNotFound { version: 9 })));
}

#[test]
fn deletion_vectors_are_checked_against_their_manifest_record() {
    let store = MemoryStore::new();
    let mut dv = DeletionVector::new(100);
    dv.insert(42);
    let record = write_deletes(&store, 3, 7, 99, &dv).unwrap();
    let seg = segment(3, 100, Some(record));
    assert_eq!(read_deletes(&store, &seg).unwrap(), dv);
    assert_eq!(read_deletes(&store, &segment(3, 100, None)).unwrap().deleted(), 0);

    // A valid deletion vector of the same segment, but not the recorded one.
    let mut other = DeletionVector::new(100);
    other.insert(41);
    store.put(&deletes_key(3, 7, 99), &other.encode(3)).unwrap();
    assert!(matches!(read_deletes(&store, &seg), Err(ManifestError::Corrupt { .. })));
    store.delete(&deletes_key(3, 7, 99)).unwrap();
    assert!(read_deletes(&store, &seg).is_err());
}

/// Seven versions; segment `v` is added by version `v` and version 5 drops segments 1 and 2
/// (as a compaction would); every version but the first rewrites the deletion vector of its
/// previous segment.
fn history(store: &MemoryStore) -> Vec<Manifest> {
    let mut segments: Vec<SegmentRecord> = Vec::new();
    let mut out = Vec::new();
    for v in 1..=7u64 {
        if v == 5 {
            segments.retain(|s| s.id > 2);
        }
        if let Some(last) = segments.last_mut() {
            let mut dv = DeletionVector::new(last.rows);
            dv.insert(v % last.rows);
            last.deletes = Some(write_deletes(store, last.id, v, 5, &dv).unwrap());
        }
        let new = segment(v, 10, None);
        store.put(&new.file_key(0), b"segment").unwrap();
        segments.push(new);
        let m = manifest(v, segments.clone());
        commit(store, &m).unwrap();
        out.push(m);
    }
    out
}

#[test]
fn gc_keeps_retained_versions_and_what_they_reference() {
    let store = MemoryStore::new();
    let versions = history(&store);
    let newest = versions.last().unwrap();
    store.put("LOCK", b"").unwrap();
    let retention = Retention { keep_versions: 3, keep_for_ms: 0 };
    let plan = plan_gc(&store, newest, retention, 0, &|_| false).unwrap();
    let expected_manifests: Vec<String> = (1..=4).map(manifest_key).collect();
    assert_eq!(plan.manifests, expected_manifests, "oldest first");

    // Versions 5..=7 reference segments 3..=7; segments 1 and 2 are garbage, as is every
    // deletion vector those versions replaced.
    let mut referenced = std::collections::BTreeSet::new();
    for m in &versions[4..] {
        for s in &m.segments {
            referenced.insert(s.file_key(0));
            referenced.extend(s.deletes_key());
        }
    }
    let all: Vec<String> = store.list("").unwrap().into_iter().map(|m| m.key).collect();
    for key in &all {
        let planned = plan.files.contains(key) || plan.manifests.contains(key);
        let keep = referenced.contains(key) || key == "LOCK" || key.starts_with("manifest/");
        assert_eq!(planned, !keep || plan.manifests.contains(key), "{key}");
    }
    assert!(plan.files.contains(&segment(1, 10, None).file_key(0)));
    assert!(!plan.files.iter().any(|k| k == "LOCK"));

    // In-use objects stay; so does everything when retention covers all versions by time.
    let in_use = segment(1, 10, None).file_key(0);
    let plan2 = plan_gc(&store, newest, retention, 0, &|k| k == in_use).unwrap();
    assert!(!plan2.files.contains(&in_use));
    let by_time = Retention { keep_versions: 1, keep_for_ms: 10_000 };
    let plan3 = plan_gc(&store, newest, by_time, 7000, &|_| false).unwrap();
    assert!(plan3.manifests.is_empty(), "{:?}", plan3.manifests);
    let plan4 = plan_gc(&store, newest, by_time, 13_500, &|_| false).unwrap();
    assert_eq!(plan4.manifests, [manifest_key(1), manifest_key(2), manifest_key(3)]);
}

#[test]
fn gc_leaves_what_a_concurrent_writer_may_be_committing() {
    let store = MemoryStore::new();
    let versions = history(&store);
    let newest = &versions[versions.len() - 1];
    // Another writer, working from the newest version, wrote its objects but not its manifest.
    let pending_segment = segment_file_key(newest.next_segment_id, 1, SegmentKind::Flat, 0);
    store.put(&pending_segment, b"segment").unwrap();
    let pending_deletes = deletes_key(7, newest.version + 1, 1);
    store.put(&pending_deletes, b"dv").unwrap();
    // ...and one that already committed a version newer than the collector's newest.
    let mut newer = newest.clone();
    newer.version += 1;
    commit(&store, &newer).unwrap();
    let plan =
        plan_gc(&store, newest, Retention { keep_versions: 1, keep_for_ms: 0 }, 0, &|_| false)
            .unwrap();
    assert!(!plan.files.contains(&pending_segment));
    assert!(!plan.files.contains(&pending_deletes));
    assert!(!plan.manifests.contains(&manifest_key(8)));
    assert!(!plan.manifests.contains(&manifest_key(7)));
    assert!(plan.manifests.contains(&manifest_key(6)), "the plan does collect");
}

/// Holds docs/format/manifest.md and deletes.md to the code: offsets written out by hand.
#[test]
fn layouts_match_the_spec() {
    let mut m = manifest(
        7,
        vec![segment(
            4,
            100,
            Some(DeletesRecord { generation: 6, tag: 0xAB, deleted: 3, size: 77, crc32: 0xC0DE }),
        )],
    );
    m.options.keep_for_secs = 3600;
    m.options.attributes = vec![
        StoredColumn { name: "ts".into(), type_code: 1 },
        StoredColumn { name: "lang".into(), type_code: 5 },
    ];
    let b = m.encode();
    let le = strata_test_support::LeBytes(&b);
    let (u16_at, u32_at, u64_at) = (|at| le.u16(at), |at| le.u32(at), |at| le.u64(at));
    assert_eq!((u64_at(0), u64_at(8), u64_at(16)), (7, 7000, 5));
    assert_eq!((u32_at(24), b[28], u32_at(32), u32_at(36)), (128, 1, 16, 200));
    assert_eq!((u32_at(40), u64_at(48), u32_at(56), u32_at(60)), (3, 3600, 1, 1));
    assert_eq!((u32_at(64), u16_at(68), u16_at(70)), (6, 250, 48));
    assert_eq!((b[72], b[73], u16_at(74), u32_at(76)), (4, 2, 32, 2048));
    assert_eq!((u64_at(80), u64_at(88)), (50_000, 1 << 30));
    let s = 96;
    assert_eq!((u64_at(s), u64_at(s + 8), u16_at(s + 16), u16_at(s + 18)), (4, 100, 1, 1));
    assert_eq!((u32_at(s + 20), u64_at(s + 24), u64_at(s + 32)), (0, 6, 3));
    assert_eq!((u64_at(s + 40), u32_at(s + 48)), (77, 0xC0DE));
    assert_eq!((u64_at(s + 52), u64_at(s + 60)), (m.segments[0].tag, 0xAB));
    let f = 96 + 80;
    assert_eq!((u64_at(f), u32_at(f + 8)), (1004, 28));
    let a = f + 16;
    assert_eq!(u32_at(a), 2, "schema: column count");
    assert_eq!((b[a + 4], b[a + 5], &b[a + 6..a + 8]), (1, 2, &b"ts"[..]));
    assert_eq!((b[a + 8], b[a + 9], &b[a + 10..a + 14]), (5, 4, &b"lang"[..]));
    assert_eq!(b.len(), a + 14 + 32);
    assert_eq!(&b[a + 14..a + 22], b"STRAMANI");
    assert_eq!(Manifest::decode("m", &b, 7).unwrap(), m);

    let mut dv = DeletionVector::new(1000);
    dv.insert(2);
    dv.insert(999);
    let d = dv.encode(4);
    let d64 = |at: usize| u64::from_le_bytes(d[at..at + 8].try_into().unwrap());
    let d32 = |at: usize| u32::from_le_bytes(d[at..at + 4].try_into().unwrap());
    assert_eq!((d64(0), d64(8), d64(16), d32(24)), (4, 1000, 2, 2), "a row list is smaller");
    assert_eq!((d32(32), d32(36)), (2, 999));
    assert_eq!(&d[40..48], b"STRADELV");
}

/// Minor 0 kept the compaction bytes reserved: such a manifest reads with default settings,
/// and unknown compaction flags are refused.
#[test]
fn a_minor_0_manifest_reads_with_default_compaction_settings() {
    let m = manifest(3, vec![segment(1, 10, None)]);
    let framed = m.encode();
    let (body, _) = framed.split_at(framed.len() - strata_storage::framing::FOOTER_LEN);
    // Minor 0 had neither the compaction bytes nor the schema block (4 bytes: no columns).
    let mut old = body[..body.len() - 4].to_vec();
    old[64..96].fill(0);
    let old_format =
        strata_storage::framing::FormatId { minor: 0, ..strata_manifest::MANIFEST_FORMAT };
    let bytes = strata_storage::framing::frame(&old_format, 0, &old);
    let decoded = Manifest::decode("m", &bytes, 3).unwrap();
    assert_eq!(decoded.options.compaction, CompactionSettings::default());
    assert_eq!(decoded.segments, m.segments);

    let mut bad = body.to_vec();
    bad[73] = 0x80;
    let mut damaged_schema = body.to_vec();
    damaged_schema.extend_from_slice(&[1]);
    let bytes =
        strata_storage::framing::frame(&strata_manifest::MANIFEST_FORMAT, 0, &damaged_schema);
    let error = Manifest::decode("m", &bytes, 3).unwrap_err();
    assert!(error.to_string().contains("schema"), "{error}");
    let bytes = strata_storage::framing::frame(&strata_manifest::MANIFEST_FORMAT, 0, &bad);
    let error = Manifest::decode("m", &bytes, 3).unwrap_err();
    assert!(error.to_string().contains("compaction flags"), "{error}");
}
