//! Tests: metrics.
