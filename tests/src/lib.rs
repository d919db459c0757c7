//! Helpers for workspace-level tests, and for crates' integration tests that need the same
//! network tricks. The workspace-level tests themselves live in `tests/`.

pub mod relay;
