//! # slowpath: the first-packet path of a FullNAT load balancer
#![deny(unsafe_op_in_unsafe_fn)]

pub mod addr;
pub mod build;
pub mod conn;
pub mod engine;
pub mod health;
pub mod laddr;
pub mod nat;
pub mod neigh;
pub mod packet;
pub mod sched;
pub mod service;
pub mod timer;
pub mod worker;

#[cfg(test)]
mod testutil;
