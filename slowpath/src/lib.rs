//! # slowpath
//!
//! The first-packet path of the FullNAT load balancer: services, schedulers, connections, LIP pools, neighbours, health checks. Not built yet: see issue 6.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod sched;
