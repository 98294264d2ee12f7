//! Helpers shared by the integration tests (each test file that uses them says `mod support;`).
#![allow(dead_code)] // Each test binary uses its own part of the helpers.

pub mod daemon;
