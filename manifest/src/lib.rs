//! The durable state of a database: versioned, checksummed manifest objects committed with
//! create-if-absent, recovery of the newest valid version, retention and the GC candidate list.
