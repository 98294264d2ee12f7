//! The daemon's control plane as the CLI meets it: the protocol ([`proto`]).
pub mod proto;
