//! Per-server figures that include what the NIC forwarded: an offloaded download of 24 MB
//! through a VIP shows in that server's counters after one bulk read of the NIC's counter bank,
//! while the flow is still offloaded, and the read costs one command whatever the number of
//! flows; a flow adopted after a daemon restart counts into its server's set again. Through the
//! in-process NIC, no root needed.

use sluice_test_support::engine::*;
use sluice_test_support::frame::Seg;
use sluice_test_support::verify::endpoints;
use std::sync::atomic::Ordering;

const MB: u64 = 1 << 20;

#[test]
fn an_offloaded_download_shows_in_its_servers_bytes_after_one_bank_read() {
    let mut r = rig();
    let c = "10.10.1.10:42000";
    let vip = "10.10.1.100:80";
    let (_, s) = r.client_sends(Seg::new(c, vip).syn().seq(1).frame(CLIENT_MAC, P0_MAC));
    let (lip, rs) = endpoints(&s[0]);
    r.server_sends(Seg::new(&rs.to_string(), &lip.to_string()).syn().ack(2).seq(1000).frame(RS1_MAC, P1_MAC));
    r.client_sends(Seg::new(c, vip).ack(1001).seq(2).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(r.occupancy(), 1, "offloaded after the handshake");
    assert_eq!(r.engine.counter_sets(), 1, "one set for the server, allocated at the install");

    // 24 MB from the server, every segment forwarded by the NIC alone.
    let punted = r.worker_packets();
    let stats = r.engine.services().services[0].backend(rs).expect("the server").stats.clone();
    let host_out = stats.bytes_out.load(Ordering::Relaxed);
    assert_eq!(host_out, 40, "the host path forwarded the SYN-ACK only");
    let payload = [b'd'; 1460];
    let mut seq = 1001u32;
    let mut sent = 0u64;
    while sent < 24 * MB {
        let seg = Seg::new(&rs.to_string(), &lip.to_string()).ack(2).seq(seq).data(&payload);
        let (to_client, _) = r.server_sends(seg.frame(RS1_MAC, P1_MAC));
        assert_eq!(to_client.len(), 1);
        seq = seq.wrapping_add(1460);
        sent += 1500; // IP length
    }
    assert_eq!(r.worker_packets(), punted, "the host path saw none of it");
    assert_eq!(r.occupancy(), 1, "still offloaded");

    assert_eq!(stats.bytes_out.load(Ordering::Relaxed), host_out, "the host path forwarded none of it");
    assert_eq!(stats.nic_bytes_out.load(Ordering::Relaxed), 0, "not before the bank is read");
    r.engine.read_counter_banks().unwrap();
    let nic_out = stats.nic_bytes_out.load(Ordering::Relaxed);
    assert!(nic_out >= 24 * MB, "{nic_out} bytes from the server counted, expected at least 24 MB");
    assert_eq!(nic_out, sent);
    assert_eq!(stats.nic_packets_out.load(Ordering::Relaxed), sent / 1500);
    assert_eq!(r.engine.counter_bank_reads(), 1);
    // A second read adds only what is new: nothing.
    r.engine.read_counter_banks().unwrap();
    assert_eq!(stats.nic_bytes_out.load(Ordering::Relaxed), nic_out);

    // A device reset zeroes the bank; the set is allocated again and the counters go on from
    // where they were (never backwards).
    r.model.with_device(sim_model::device::Device::reset);
    r.advance(S);
    assert_eq!(r.occupancy(), 1, "the flow came back");
    let seg = Seg::new(&rs.to_string(), &lip.to_string()).ack(2).seq(seq).data(&payload);
    let (to_client, _) = r.server_sends(seg.frame(RS1_MAC, P1_MAC));
    assert_eq!(to_client.len(), 1, "forwarded by the NIC after the recovery");
    r.engine.read_counter_banks().unwrap();
    assert_eq!(stats.nic_bytes_out.load(Ordering::Relaxed), nic_out + 1500);
}

#[test]
fn a_flow_adopted_after_a_restart_counts_into_its_servers_set() {
    let mut r = rig();
    let c = "10.10.1.10:42000";
    let vip = "10.10.1.100:80";
    let (_, s) = r.client_sends(Seg::new(c, vip).syn().seq(1).frame(CLIENT_MAC, P0_MAC));
    let (lip, rs) = endpoints(&s[0]);
    r.server_sends(Seg::new(&rs.to_string(), &lip.to_string()).syn().ack(2).seq(1000).frame(RS1_MAC, P1_MAC));
    r.client_sends(Seg::new(c, vip).ack(1001).seq(2).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(r.occupancy(), 1, "offloaded after the handshake");
    let payload = [b'd'; 1460];
    let mut seq = 1001u32;
    let mut send = |r: &mut Rig, n: u32| {
        for _ in 0..n {
            let seg = Seg::new(&rs.to_string(), &lip.to_string()).ack(2).seq(seq).data(&payload);
            let (to_client, _) = r.server_sends(seg.frame(RS1_MAC, P1_MAC));
            assert_eq!(to_client.len(), 1, "forwarded");
            seq = seq.wrapping_add(1460);
        }
    };
    send(&mut r, 10);
    r.engine.read_counter_banks().unwrap();
    let before = r.engine.services().services[0].backend(rs).unwrap().stats.clone();
    assert_eq!(before.nic_bytes_out.load(Ordering::Relaxed), 10 * 1500);

    // The daemon restarts without a device reset: the new one adopts the flow, frees the old
    // run's sets and gives the flow its server's set of this run.
    let (mut r, adopted) = r.restart();
    assert_eq!(adopted, 1);
    assert_eq!(r.occupancy(), 1, "still offloaded");
    assert_eq!(r.engine.counter_sets(), 1, "one set for the adopted flow's server");
    let h = flow_offload::Handle(r.engine.conns(false)[0].record.expect("in the NIC"));
    let set = r.engine.flows_ref().get(h).unwrap().counter_set;
    assert_ne!(set, 0, "the adopted flow names a set");
    assert_eq!(r.engine.flows_ref().counter_set_refs(set), 1);

    let punted = r.worker_packets();
    send(&mut r, 20);
    assert_eq!(r.worker_packets(), punted, "forwarded by the NIC alone");
    let stats = r.engine.services().services[0].backend(rs).unwrap().stats.clone();
    assert_eq!(stats.nic_bytes_out.load(Ordering::Relaxed), 0, "not before the bank is read");
    r.engine.read_counter_banks().unwrap();
    assert_eq!(
        stats.nic_bytes_out.load(Ordering::Relaxed),
        20 * 1500,
        "the server's bytes after the restart"
    );
    assert_eq!(stats.nic_packets_out.load(Ordering::Relaxed), 20);
    assert_eq!(r.engine.counter_bank_reads(), 1);
}
