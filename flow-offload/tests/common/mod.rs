//! What the flow table's integration tests share: an IPv4 address as a tuple holds it, and
//! the TCP flow `n` they install (client 192.0.2.0:1024+n → VIP 10.10.1.100:80, server
//! 10.10.2.11:80 → LIP 10.10.2.1:2048+n, next hops 1 and 0); a model whose image declares the
//! capabilities a test chooses; and ([`rig`]) a table over a model with the replica check.

// Each test file uses only some of these.
#![allow(dead_code)]

pub mod rig;

use flow_offload::table::Flow;
use host_driver::transport::inprocess::InProcess;
use rtl_spec::formats::FlowTuple;
use sim_model::clock::ManualClock;
use sim_model::device::ModelConfig;
use std::sync::Arc;
use zerocopy::IntoBytes;

/// An IPv4 address in a tuple's 16 bytes.
pub fn v4(a: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&a.to_be_bytes());
    out
}

/// TCP flow `n`: no counter set, no sequence or timestamp translation.
pub fn tcp_flow(n: u16) -> Flow {
    Flow {
        orig: FlowTuple {
            src_addr: v4(0xC000_0200),
            dst_addr: v4(0x0A0A_0164),
            src_port: (1024 + n).into(),
            dst_port: 80.into(),
        },
        reply: FlowTuple {
            src_addr: v4(0x0A0A_020B),
            dst_addr: v4(0x0A0A_0201),
            src_port: 80.into(),
            dst_port: (2048 + n).into(),
        },
        proto: 6,
        ipv6: false,
        next_hop_orig: 1,
        next_hop_reply: 0,
        idle_timeout: 0,
        cookie: u32::from(n),
        host_state: 0,
        counter_set: 0,
        seq_delta: None,
        ts_delta: 0,
    }
}

/// A model of geometry `cfg` powered on from a flash image that declares `caps` (a card of an
/// older minor version lacks some).
pub fn model_with_caps(cfg: ModelConfig, caps: u64, clock: Arc<ManualClock>) -> InProcess {
    let payload = cfg.to_toml();
    let header = rtl_spec::image::unsigned_header(&cfg, rtl_spec::SPEC_VERSION, caps, payload.as_bytes());
    let flash = sim_model::flash::Flash::with_image(&[header.as_bytes(), payload.as_bytes()].concat());
    InProcess::with_flash(flash, cfg, clock).unwrap()
}
