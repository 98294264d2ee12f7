//! # sluice: the appliance under the `sluice` command
//!
//! The library the `sluice` binary is a thin command line over, and that the integration
//! tests, the benchmarks and the fuzz targets use directly:
//!
//! - [`app`]: the command line, every command and what runs it;
//! - [`config`]: the configuration file: parsing, one-line errors, the checks shared with
//!   run-time changes;
//! - [`control`]: the control socket's protocol (requests, replies);
//! - [`cli`]: the operator's commands against a running daemon (`services`, `flows`, `stats`,
//!   `top`, `service`/`backend` changes, `reload`);
//! - [`daemon`]: `sluice run`: the device, the slow path, the host interfaces, the control
//!   socket and the metrics endpoint;
//! - [`sync`]: connection sync's sockets (`[sync]`): the sender and receiver threads and what
//!   `sluice cluster` shows of them;
//! - [`sim`]: `sluice sim`: the software NIC served over vfio-user;
//! - [`device`], [`flash`], [`fw`]: reading a NIC's identity, flashing it, firmware images and
//!   their keys;
//! - [`replay`]: the whole appliance over pcap captures;
//! - [`topo`]: network namespaces and veth pairs for the end-to-end tests and comparisons;
//! - [`mod@bench`], [`versus`], [`demo`]: the benchmarks, the comparison with the kernel's
//!   nftables FullNAT, the demo;
//! - [`internal`]: helper processes the tests and benchmarks start.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod device;
pub mod flash;
pub mod fw;
pub mod internal;
pub mod replay;
pub mod routing;
pub mod sim;
pub mod sync;
pub mod synflood;
pub mod topo;
pub mod versus;

use std::io::Write;

/// Writes to stdout, treating a closed pipe (`sluice spec | head`) as success.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
