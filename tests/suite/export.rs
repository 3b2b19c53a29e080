//! Tests: export.
