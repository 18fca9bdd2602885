//! The fault-injection and counting wrappers do what they promise.

use strata_storage::testing::{CountingStorage, FailingStorage, FaultPlan, Op};
use strata_storage::{Error, MemoryStore, Storage};

fn is_injected(result: Result<(), Error>) -> bool {
    matches!(result, Err(Error::Io { op: "injected fault", .. }))
}

#[test]
fn nth_write_fails_once_and_is_not_applied() {
    let store = FailingStorage::new(MemoryStore::new());
    store.set_plan(Some(FaultPlan::nth_write(2)));
    store.put("a", b"1").unwrap();
    store.get("a").unwrap(); // reads are not counted by a writes-only plan
    store.put("b", b"2").unwrap();
    assert!(is_injected(store.put("c", b"3")), "third write fails");
    assert!(store.inner().get("c").unwrap_err().is_not_found(), "failed write not applied");
    store.put("d", b"4").unwrap();
    assert_eq!(store.injected(), 1);
    assert_eq!(store.seen(), 4);
}

#[test]
fn sticky_plan_fails_everything_after() {
    let store = FailingStorage::new(MemoryStore::new());
    store.set_plan(Some(FaultPlan::nth_write(1).sticky()));
    store.put("a", b"1").unwrap();
    assert!(is_injected(store.put("b", b"2")));
    assert!(is_injected(store.delete("a")));
    assert!(is_injected(store.put_if_absent("c", b"3")));
    assert_eq!(&store.get("a").unwrap()[..], b"1", "reads still work");
    assert_eq!(store.injected(), 3);
    store.set_plan(None);
    store.put("b", b"2").unwrap();
}

#[test]
fn faults_reach_streamed_writes() {
    let store = FailingStorage::new(MemoryStore::new());
    // Writes of a streamed object: CreateWriter #0, Write #1, Write #2, Finish #3.
    for nth in 0..4 {
        store.set_plan(Some(FaultPlan::nth_write(nth)));
        let result = (|| {
            let mut writer = store.writer("obj")?;
            writer.write_all(b"abc")?;
            writer.write_all(b"def")?;
            writer.finish().map(drop)
        })();
        assert!(is_injected(result), "fault at write op {nth} surfaces");
        assert!(
            store.inner().get("obj").unwrap_err().is_not_found(),
            "op {nth}: nothing published"
        );
    }
}

#[test]
fn any_op_plan_counts_reads() {
    let store = FailingStorage::new(MemoryStore::new());
    store.put("a", b"1").unwrap();
    store.set_plan(Some(FaultPlan::nth_op(1)));
    store.size("a").unwrap();
    assert!(matches!(store.get("a"), Err(Error::Io { .. })), "second op (a read) fails");
    assert!(store.list("").is_ok());
}

#[test]
fn counts_ops_and_bytes() {
    let store = CountingStorage::new(MemoryStore::new());
    store.put("a", &[0; 10]).unwrap();
    store.put_if_absent("b", &[0; 5]).unwrap();
    let _ = store.put_if_absent("b", &[0; 5]); // attempted ops count, failed or not
    let before = store.stats();
    let mut writer = store.writer("c").unwrap();
    writer.write_all(&[1; 3]).unwrap();
    writer.write_all(&[1; 4]).unwrap();
    writer.finish().unwrap();
    store.get("a").unwrap();
    store.get_range("c", 1..3).unwrap();
    store.map("b").unwrap();
    store.size("a").unwrap();
    store.list("").unwrap();
    store.delete("a").unwrap();

    let all = store.stats();
    assert_eq!(before.count(Op::Put), 1);
    assert_eq!(before.count(Op::PutIfAbsent), 2);
    assert_eq!(before.bytes_written, 20);
    let delta = all.since(&before);
    for (op, n) in [
        (Op::CreateWriter, 1),
        (Op::Write, 2),
        (Op::Finish, 1),
        (Op::Get, 1),
        (Op::GetRange, 1),
        (Op::Map, 1),
        (Op::Size, 1),
        (Op::List, 1),
        (Op::Delete, 1),
        (Op::Put, 0),
    ] {
        assert_eq!(delta.count(op), n, "{op:?}");
    }
    assert_eq!(delta.bytes_written, 7);
    assert_eq!(delta.bytes_read, 10 + 2 + 5);
    assert_eq!(delta.writes(), 5);
    assert_eq!(delta.reads(), 5);
    store.reset();
    assert_eq!(store.stats(), Default::default());
}

#[test]
fn after_apply_faults_take_effect_and_still_fail() {
    let store = FailingStorage::new(MemoryStore::new());
    store.set_plan(Some(FaultPlan::nth_write(0).after_apply()));
    assert!(is_injected(store.put_if_absent("m/1", b"v1")), "reported as failed");
    assert_eq!(&store.inner().get("m/1").unwrap()[..], b"v1", "but published");
    // CreateWriter #0, Write #1, Finish #2: the finish takes effect, then reports failure.
    store.set_plan(Some(FaultPlan::nth_write(2).after_apply()));
    let result = (|| {
        let mut writer = store.writer("obj")?;
        writer.write_all(b"abc")?;
        writer.finish().map(drop)
    })();
    assert!(is_injected(result));
    assert_eq!(&store.inner().get("obj").unwrap()[..], b"abc", "published despite the error");
}
