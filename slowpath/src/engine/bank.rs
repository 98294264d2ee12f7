//! The NIC's counter sets from the engine's side: one set per real server of each service,
//! allocated the first time a flow to that server is offloaded and named by every install to it,
//! so the NIC adds the traffic of offloaded flows to the server's figures on its own. Once per
//! reporting interval the daemon calls [`Engine::read_counter_banks`]: one bulk read of the bank
//! (cost O(servers), never O(flows)), whose growth since the last read is added to each server's
//! `nic_*` counters (a set that went backwards was reset with the device: all it holds is new).
//! Sets of servers no longer configured are freed once no flow names them. Flows adopted after a
//! daemon restart named the old run's sets, which adoption freed: [`Engine::count_adopted`] points
//! each at its server's set of this run, so per-server figures go on counting across a restart.

use super::Engine;
use crate::addr::FastMap;
use crate::service::{Proto, ServiceKey};
use flow_offload::{Flow, Handle};
use host_driver::DriverError;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

/// The engine's map from servers to sets, and what each set held at the last read.
#[derive(Debug, Default)]
pub(super) struct Banks {
    /// By (service, server, written server first): PROXY-protocol flows count the other way
    /// round in their records, so they have sets of their own, read back swapped.
    sets: FastMap<(ServiceKey, SocketAddr, bool), u16>,
    /// By set: packets in, packets out, bytes in, bytes out at the last read.
    last: FastMap<u16, [u64; 4]>,
    /// The bank ran out of sets (logged once).
    exhausted: bool,
    /// Bulk reads done.
    reads: u64,
}

impl Engine {
    /// The counter set of server `rs` of the service at `vip` (protocol number `proto`), for
    /// flows written server first or not, allocated on first use; 0 (none) when the NIC has no bank or no set is free.
    pub(super) fn counter_set_for(
        &mut self,
        vip: SocketAddr,
        proto: u8,
        rs: SocketAddr,
        server_first: bool,
    ) -> u16 {
        let Some(proto) = Proto::from_number(proto) else { return 0 };
        let key = (ServiceKey { vip, proto }, rs, server_first);
        if let Some(&set) = self.banks.sets.get(&key) {
            return set;
        }
        match self.flows.alloc_counter_set() {
            Ok(set) => {
                self.banks.sets.insert(key, set);
                self.banks.last.insert(set, [0; 4]);
                set
            }
            Err(_) => {
                if !self.banks.exhausted && self.flows.counter_set_capacity() > 0 {
                    tracing::warn!(
                        sets = self.flows.counter_set_capacity(),
                        "every NIC counter set is taken: offloaded traffic of further servers is not counted per server"
                    );
                }
                self.banks.exhausted = true;
                0
            }
        }
    }

    /// Points an adopted flow (at record `h`) at the set of its (service, server), allocated as
    /// for an install: the NIC counts its packets and bytes into that server's figures from
    /// this Modify on. Nothing when no set is free or the NIC has no bank (it then counts into
    /// none, as a new install would).
    /// `flow` is as the host thinks of it (client → VIP first).
    pub(super) fn count_adopted(&mut self, h: Handle, flow: &Flow, server_first: bool) {
        let vip = crate::addr::dst_of(&flow.orig, flow.ipv6);
        let rs = crate::addr::src_of(&flow.reply, flow.ipv6);
        let set = self.counter_set_for(vip, flow.proto, rs, server_first);
        if set == 0 {
            return;
        }
        if let Err(e) = self.flows.set_flow_counter_set(h, set) {
            tracing::warn!(record = h.0, set, error = %e, "an adopted flow counts into no set");
        }
    }

    /// Reads the NIC's counter bank once and adds what each server's set counted since the last
    /// read to the server's `nic_*` counters. Frees the sets of servers that are gone and that
    /// no flow names any more.
    pub fn read_counter_banks(&mut self) -> Result<(), DriverError> {
        if self.banks.sets.is_empty() {
            return Ok(());
        }
        let bank = self.flows.read_counter_bank()?.to_vec();
        self.banks.reads += 1;
        let mut gone = Vec::new();
        for (&(key, rs, server_first), &set) in &self.banks.sets {
            let Some(s) = bank.get(usize::from(set)) else { continue };
            let mut now =
                [s.packets_orig.get(), s.packets_reply.get(), s.bytes_orig.get(), s.bytes_reply.get()];
            if server_first {
                now = [now[1], now[0], now[3], now[2]];
            }
            let last = self.banks.last.entry(set).or_insert([0; 4]);
            let mut delta = [0u64; 4];
            for i in 0..4 {
                // A set behind its last read was zeroed by a device reset: all it holds is new.
                delta[i] = if now[i] >= last[i] { now[i] - last[i] } else { now[i] };
            }
            *last = now;
            match self.services.backend_stats(&key, rs) {
                Some(b) => {
                    b.nic_packets_in.fetch_add(delta[0], Ordering::Relaxed);
                    b.nic_packets_out.fetch_add(delta[1], Ordering::Relaxed);
                    b.nic_bytes_in.fetch_add(delta[2], Ordering::Relaxed);
                    b.nic_bytes_out.fetch_add(delta[3], Ordering::Relaxed);
                }
                None if self.flows.counter_set_refs(set) == 0 => gone.push(((key, rs, server_first), set)),
                None => {}
            }
        }
        for (k, set) in gone {
            if self.flows.free_counter_set(set).is_ok() {
                self.banks.sets.remove(&k);
                self.banks.last.remove(&set);
                self.banks.exhausted = false;
            }
        }
        Ok(())
    }

    /// Counter sets the engine holds (one per server that had an offloaded flow).
    pub fn counter_sets(&self) -> usize {
        self.banks.sets.len()
    }

    /// Bulk reads of the bank done so far.
    pub fn counter_bank_reads(&self) -> u64 {
        self.banks.reads
    }
}
