//! Tests: script.
