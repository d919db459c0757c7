//! Helpers for workspace-level tests. The tests themselves live in `tests/`.
