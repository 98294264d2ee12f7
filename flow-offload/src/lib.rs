//! # flow_offload: the host's authoritative flow table, replicated into the NIC
//!
//! Being written (issue 5): `placement` is the shadow cuckoo index.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod placement;
pub mod table;
