//! # sluice_test_support: what the tests and the fuzz targets share
//!
//! Used only as a dev-dependency of the workspace's crates and by the fuzz targets (`fuzz/`);
//! never linked into the appliance. Frames are built and read back with etherparse, a packet
//! library independent of the crates under test, so a checksum verdict here is a real check of
//! theirs.
//!
//! - [`frame`]: the one frame builder: Ethernet (with 802.1Q tags), IPv4 (options, fragments),
//!   IPv6 (extension headers), TCP, UDP and ICMP/ICMPv6 with correct checksums ([`frame::Pkt`]),
//!   and the TCP segment and UDP datagram shorthands over it ([`frame::Seg`], [`frame::udp`]);
//! - [`verify`]: reading frames back: every checksum ([`verify::checksums`]), the endpoints;
//! - [`flows`]: FullNAT connections ([`flows::Conn`]): the record a host installs and the
//!   packets of both directions, next-hop entries, the MACs the model's tests use;
//! - [`model`]: a minimal host for the model ([`model::ModelHost`]): host memory, the device
//!   brought up as SPEC.md's bring-up page says and the ring bookkeeping a driver does, written
//!   only against `rtl_spec`, never against the model's internals (the sim-model tests, the
//!   fixture corpus and the fuzz targets drive the model through it);
//! - [`engine`]: the slow path's rig ([`engine::Rig`]): the in-process model with two memory
//!   ports, the driver, flow-offload and the engine on a manual clock.
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

pub mod engine;
pub mod flows;
pub mod frame;
pub mod model;
pub mod verify;
