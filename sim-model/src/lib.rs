//! # sim_model
//!
//! The behavioural model of the Sluice NIC: registers, rings, flow table, rewrite, counters, aging and flash, with packet ports (memory, pcap, AF_PACKET). It implements rtl_spec and nothing else; it never sees the driver's types. Not built yet: see issue 3.
#![deny(unsafe_op_in_unsafe_fn)]
