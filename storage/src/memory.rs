//! [`MemoryStore`]: objects in a map, for tests and for databases that need no persistence.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::ops::Range;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::key::validate_prefix;
use crate::{
    Error, ObjectBytes, ObjectMeta, ObjectWriter, Result, Storage, check_range, validate_key,
};

/// An in-memory [`Storage`]. "Durable" means "until the store is dropped"; clones share the
/// same objects, so a test can keep one handle while the code under test owns another.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    objects: Arc<RwLock<BTreeMap<String, ObjectBytes>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn object(&self, key: &str) -> Result<ObjectBytes> {
        validate_key(key)?;
        self.objects.read().get(key).cloned().ok_or_else(|| Error::NotFound { key: key.to_owned() })
    }
}

/// Refuses a key that would clash with another key's directory on a local file system, so the
/// two backends accept the same keys.
fn check_clash(objects: &BTreeMap<String, ObjectBytes>, key: &str) -> Result<()> {
    let conflict = || Err(Error::KeyConflict { key: key.to_owned() });
    if key.match_indices('/').any(|(slash, _)| objects.contains_key(&key[..slash])) {
        return conflict();
    }
    let dir = format!("{key}/");
    if objects.range(dir.clone()..).next().is_some_and(|(other, _)| other.starts_with(&dir)) {
        return conflict();
    }
    Ok(())
}

impl Storage for MemoryStore {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        validate_key(key)?;
        let bytes = ObjectBytes::copy_from_slice(data);
        let mut objects = self.objects.write();
        check_clash(&objects, key)?;
        objects.insert(key.to_owned(), bytes);
        Ok(())
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<()> {
        validate_key(key)?;
        let mut objects = self.objects.write();
        check_clash(&objects, key)?;
        match objects.entry(key.to_owned()) {
            Entry::Occupied(_) => Err(Error::AlreadyExists { key: key.to_owned() }),
            Entry::Vacant(slot) => {
                slot.insert(ObjectBytes::copy_from_slice(data));
                Ok(())
            }
        }
    }

    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter + '_>> {
        validate_key(key)?;
        Ok(Box::new(MemoryWriter { store: self, key: key.to_owned(), buf: Vec::new() }))
    }

    fn get(&self, key: &str) -> Result<ObjectBytes> {
        self.object(key)
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<ObjectBytes> {
        let object = self.object(key)?;
        check_range(key, &range, object.len() as u64)?;
        // A copy, so the range starts 64-byte aligned like every other read.
        Ok(ObjectBytes::copy_from_slice(&object[range.start as usize..range.end as usize]))
    }

    fn map(&self, key: &str) -> Result<ObjectBytes> {
        self.object(key)
    }

    fn size(&self, key: &str) -> Result<u64> {
        self.object(key).map(|object| object.len() as u64)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        let objects = self.objects.read();
        Ok(objects
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, object)| ObjectMeta { key: key.clone(), size: object.len() as u64 })
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.objects.write().remove(key);
        Ok(())
    }
}

struct MemoryWriter<'a> {
    store: &'a MemoryStore,
    key: String,
    buf: Vec<u8>,
}

impl ObjectWriter for MemoryWriter<'_> {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.buf.len() as u64
    }

    fn finish(self: Box<Self>) -> Result<u64> {
        let len = self.buf.len() as u64;
        self.store.put(&self.key, &self.buf)?;
        Ok(len)
    }
}
