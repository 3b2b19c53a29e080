//! Tests: flow.
