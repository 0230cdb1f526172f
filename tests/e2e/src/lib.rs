//! # safecity-e2e
//!
//! End-to-end tests of the city live in `tests/`: the Kubernetes manifests
//! checked against the code that reads them (`tests/manifests.rs`), and the
//! components run as real processes on a real broker. This library is empty.
