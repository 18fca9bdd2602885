//! The in-memory HNSW memtable: one concurrent graph over full-precision vectors, with ids and
//! tombstones, that freezes into a read-only snapshot a flush can stream. Does no I/O.
