//! Tracing spans and events: open, commit (with its stages), compaction (build, publish),
//! GC and object-store requests each show up under a subscriber the embedder installs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use strata::compaction::CompactAll;
use strata::storage::{MemoryStore, Storage};
use strata::{Db, Metric, Options};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records the name of every span opened and the message of every event.
#[derive(Default)]
struct Recorder {
    spans: Mutex<Vec<String>>,
    events: Mutex<Vec<String>>,
    next: AtomicU64,
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.spans.lock().push(span.metadata().name().to_owned());
        Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        self.events.lock().push(message.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn spans_and_events_cover_open_commit_compaction_and_gc() {
    let recorder = Arc::new(Recorder::default());
    let dispatch =
        tracing::Dispatch::from(Arc::clone(&recorder) as Arc<dyn Subscriber + Send + Sync>);
    tracing::dispatcher::with_default(&dispatch, || {
        let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
        let options = Options::new(4, Metric::L2).background_compaction(false).keep_versions(1);
        let db = Db::create_in(Arc::clone(&store), options).unwrap();
        for round in 0..3u64 {
            for id in round * 10..(round + 1) * 10 {
                db.upsert(id, &[id as f32, 1.0, 0.0, 0.5]).unwrap();
            }
            db.commit().unwrap();
        }
        db.set_compaction_policy(Arc::new(CompactAll));
        db.compact().unwrap();
        db.gc().unwrap();
    });
    let spans = recorder.spans.lock().clone();
    for name in [
        "strata.open",
        "strata.commit",
        "deletion_vectors",
        "segments",
        "publish",
        "strata.compaction",
        "build",
        "strata.gc",
    ] {
        assert!(spans.iter().any(|s| s == name), "no span {name}: {spans:?}");
    }
    let events = recorder.events.lock().clone();
    for message in ["opened", "committed", "compacted", "collected"] {
        assert!(events.iter().any(|e| e == message), "no event {message}: {events:?}");
    }
}

/// Requests to an object store each get a span (at debug level).
#[test]
fn object_store_requests_are_spans() {
    let recorder = Arc::new(Recorder::default());
    let dispatch =
        tracing::Dispatch::from(Arc::clone(&recorder) as Arc<dyn Subscriber + Send + Sync>);
    tracing::dispatcher::with_default(&dispatch, || {
        let db = Db::create("memory://observability", Options::new(2, Metric::L2)).unwrap();
        db.upsert(1, &[1.0, 0.0]).unwrap();
        db.commit().unwrap();
    });
    let requests = recorder.spans.lock().iter().filter(|s| *s == "strata.object_store").count();
    assert!(requests >= 3, "{:?}", recorder.spans.lock());
}
