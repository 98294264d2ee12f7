//! # slowpath: the first-packet path of a FullNAT load balancer
//!
//! What the NIC does not decide alone: new connections, handshakes, ARP/ND and ICMP, closing
//! states and timeouts, and when a connection is offloaded. It reaches the device only
//! through [`flow_offload`] (the flow table) and `host_driver`'s queue and frame types.
//!
//! - [`engine`]: the device side: the queues, the flow table, the network layer, the workers,
//!   one [`engine::Engine::poll`] round at a time;
//! - [`worker`]: one exception ring's packets, one shard of the connections, one slice of
//!   every LIP's ports, one timer wheel;
//! - [`conn`]: the FullNAT endpoints, TCP/UDP state, timeouts and the offload policy;
//! - [`service`]: virtual services, real servers and the snapshots workers schedule from;
//! - [`sched`]: the schedulers (rr, wrr, lc, wlc, sh, maglev);
//! - [`laddr`]: LIP port slices, free lists and quarantine;
//! - [`network`]: Ethernet ports and their addresses, routes, the neighbour table, next hops;
//! - [`packet`]: parsing a punted frame and verifying its checksums;
//! - [`nat`]: the software FullNAT rewrite, byte for byte the NIC's;
//! - [`emit`]: the L2 header and the packets the slow path writes itself (ARP, ND, ICMP);
//! - [`addr`]: addresses in the NIC's 16-byte form and the stable hashes;
//! - [`timer`]: the per-worker timer wheel;
//! - [`health`]: health checks of real servers (rise and fall);
//! - [`sync`]: connection sync between cluster nodes: events, the datagram format, standby
//!   copies;
//! - [`synproxy`]: SYN cookies and the sequence translation of SYN-proxied connections;
//! - [`proxy_protocol`]: the PROXY protocol v2 header, its sequence shift and server-first records;
//! - [`toa`]: the TCP option that carries the client's address (LVS's TOA).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod addr;
pub mod conn;
pub mod emit;
pub mod encap;
pub mod engine;
pub mod health;
pub mod laddr;
pub mod nat;
pub mod network;
pub mod packet;
pub mod proxy_protocol;
pub mod sched;
pub mod service;
pub mod sync;
pub mod synproxy;
pub mod timer;
pub mod toa;
pub mod worker;
