//! Damage to every kind of object (manifest, segment, deletion vector): flipped bytes and
//! truncation give a clear error at open or on first read, never a panic or a wrong answer.

use std::sync::Arc;

use strata::storage::{MemoryStore, Storage};
use strata::{Db, Metric, Options, SearchParams};

fn vector(id: u64) -> Vec<f32> {
    (0..8).map(|d| ((id * 13 + d * 5) % 23) as f32 - 11.0).collect()
}

/// A database of two segments, one with a deletion vector; returns the store and its objects.
fn database() -> (Arc<MemoryStore>, Vec<String>) {
    let store = Arc::new(MemoryStore::new());
    let db =
        Db::create_in(Arc::clone(&store) as Arc<dyn Storage>, Options::new(8, Metric::L2)).unwrap();
    for id in 0..50 {
        db.upsert(id, &vector(id)).unwrap();
    }
    db.commit().unwrap();
    for id in 40..60 {
        db.upsert(id, &vector(id + 1)).unwrap();
    }
    db.delete(3).unwrap();
    db.commit().unwrap();
    let keys = store.list("").unwrap().into_iter().map(|m| m.key).collect();
    (store, keys)
}

/// Opens and reads everything; `Ok` only if every read agrees with the undamaged database.
fn open_and_read(store: &Arc<MemoryStore>) -> Result<(), strata::Error> {
    let db = Db::open_in(Arc::clone(store) as Arc<dyn Storage>)?;
    for id in 0..60 {
        let want = match id {
            3 => None,
            40..60 => Some(vector(id + 1)),
            _ => Some(vector(id)),
        };
        assert_eq!(db.get(id)?, want, "an undetected corruption changed id {id}");
    }
    let hits = db.search_with(&vector(7), SearchParams::exact(100))?;
    assert_eq!(hits.len(), 59, "an undetected corruption changed the result count");
    Ok(())
}

#[test]
fn every_damaged_object_is_a_clear_error() {
    let (store, keys) = database();
    open_and_read(&store).unwrap();
    let kinds = ["manifest/", "segments/", "deletes/"];
    for kind in kinds {
        assert!(keys.iter().any(|k| k.starts_with(kind)), "the database has a {kind} object");
    }
    // Only the newest manifest is read; older ones are damaged too, to no effect.
    for key in &keys {
        let original = store.get(key).unwrap().to_vec();
        let positions: Vec<usize> = if original.len() <= 600 {
            (0..original.len()).collect()
        } else {
            (0..original.len())
                .step_by(original.len() / 300)
                .chain(original.len() - 64..original.len())
                .collect()
        };
        for at in positions {
            let mut damaged = original.clone();
            damaged[at] ^= 0x5A;
            store.put(key, &damaged).unwrap();
            if let Err(e) = open_and_read(&store) {
                let message = e.to_string();
                assert!(e.is_corruption(), "{key} byte {at}: is_corruption() for {e:?}");
                assert!(!e.is_conflict());
                assert!(
                    message.contains(key.as_str()),
                    "{key} byte {at}: error must name it: {message}"
                );
            } else {
                assert!(
                    key.starts_with("manifest/")
                        && key != keys.iter().rfind(|k| k.starts_with("manifest/")).unwrap(),
                    "{key} byte {at}: damage went unnoticed"
                );
            }
        }
        for len in [0, 1, 31, 32, original.len() / 2, original.len() - 1] {
            store.put(key, &original[..len]).unwrap();
            let result = open_and_read(&store);
            let newest_manifest = keys.iter().rfind(|k| k.starts_with("manifest/"));
            if key.starts_with("manifest/") && Some(key) != newest_manifest {
                assert!(result.is_ok());
            } else {
                let e = result.expect_err("truncation must be caught");
                assert!(e.to_string().contains(key.as_str()), "{key} cut to {len}: {e}");
            }
        }
        if !key.starts_with("manifest/") {
            // (A missing newest manifest is indistinguishable from a commit that never happened.)
            store.delete(key).unwrap();
            let e = open_and_read(&store).expect_err("a missing object must be caught");
            assert!(e.to_string().contains(key.as_str()), "{key} missing: {e}");
        }
        store.put(key, &original).unwrap();
    }
    open_and_read(&store).unwrap();
}

#[test]
fn a_manifest_from_a_newer_format_is_refused_by_name() {
    let (store, keys) = database();
    let newest = keys.iter().rfind(|k| k.starts_with("manifest/")).unwrap();
    let mut bytes = store.get(newest).unwrap().to_vec();
    let footer = bytes.len() - 32;
    bytes[footer + 8] = 9; // major version
    let crc = crc32fast_hash(&bytes[footer..footer + 28]);
    bytes[footer + 28..].copy_from_slice(&crc.to_le_bytes());
    store.put(newest, &bytes).unwrap();
    let e = Db::open_in(store as Arc<dyn Storage>).unwrap_err();
    assert!(e.to_string().contains("format version 9."), "{e}");
}

fn crc32fast_hash(bytes: &[u8]) -> u32 {
    // Bitwise CRC-32 (IEEE), so the test does not depend on crc32fast.
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn opening_an_unknown_version_is_a_clear_error() {
    let (store, _) = database();
    let e = Db::open_at_in(store as Arc<dyn Storage>, strata::Version(17)).unwrap_err();
    assert!(e.to_string().contains("version 17"), "{e}");
}

#[test]
fn open_does_not_read_vector_blocks_and_the_first_search_checks_them() {
    let (store, keys) = database();
    let segment = keys.iter().find(|k| k.starts_with("segments/")).unwrap();
    let mut bytes = store.get(segment).unwrap().to_vec();
    bytes[64 + 5] ^= 0x01; // inside the vector block, which starts at byte 64
    store.put(segment, &bytes).unwrap();
    let db = Db::open_in(Arc::clone(&store) as Arc<dyn Storage>).expect("open reads no vectors");
    let e = db.search(&vector(1), 3).expect_err("the first search checks the block");
    assert!(e.to_string().contains(segment.as_str()), "{e}");
}
