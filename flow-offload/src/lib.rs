//! # flow_offload
//!
//! The host's authoritative shadow of the NIC flow table, replicated into the NIC with batched, make-before-break commands. Not built yet: see issue 5.
#![deny(unsafe_op_in_unsafe_fn)]
