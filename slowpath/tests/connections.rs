//! A FullNAT connection through the in-process NIC, end to end: what the client and the real
//! server see, byte for byte (frames built independently by etherparse on both sides); the
//! flow installed after the handshake and forwarded by the NIC; removed after the close.

#![allow(clippy::many_single_char_names)]

use slowpath::sched::SchedulerKind;
use sluice_test_support::engine::*;
use sluice_test_support::frame::{Seg, udp};
use sluice_test_support::verify::{endpoints, tcp_fields};
use std::net::SocketAddr;

/// Runs a whole TCP connection between `client` and `vip`, checking every frame on both
/// sides. Returns the rig for further checks.
fn tcp_connection(client: &str, vip: &str, rs: &str, lip_ip: &str) -> Rig {
    let mut r = rig();
    let (c, v, rs) = (sa(client), sa(vip), sa(rs));

    // SYN: scheduled, a LIP port allocated, rewritten by the host and sent to the server.
    let syn = Seg::new(client, vip).syn().seq(100);
    let (to_client, to_server) = r.client_sends(syn.frame(CLIENT_MAC, P0_MAC));
    assert!(to_client.is_empty());
    assert_eq!(to_server.len(), 1, "the SYN reaches the server");
    let (lip, seen_rs) = endpoints(&to_server[0]);
    assert_eq!(seen_rs, rs);
    assert_eq!(
        lip.ip(),
        lip_ip.parse::<std::net::IpAddr>().unwrap(),
        "the server sees a LIP, not the client"
    );
    assert_eq!(to_server[0], syn.rewritten(lip, rs).frame(P1_MAC, RS1_MAC), "SYN byte for byte");
    assert_eq!(r.occupancy(), 0, "not offloaded before the handshake completes");

    // SYN-ACK from the server: back to the client from the VIP.
    let synack = Seg::new(&rs.to_string(), &lip.to_string()).syn().ack(101).seq(7000);
    let (to_client, to_server) = r.server_sends(synack.frame(RS1_MAC, P1_MAC));
    assert!(to_server.is_empty());
    assert_eq!(to_client, vec![synack.rewritten(v, c).frame(P0_MAC, CLIENT_MAC)], "SYN-ACK byte for byte");

    // The client's ACK completes the handshake: the flow goes into the NIC.
    let ack = Seg::new(client, vip).ack(7001).seq(101);
    let (_, to_server) = r.client_sends(ack.frame(CLIENT_MAC, P0_MAC));
    assert_eq!(to_server, vec![ack.rewritten(lip, rs).frame(P1_MAC, RS1_MAC)]);
    assert_eq!(r.occupancy(), 1, "offloaded after the handshake");
    let flows = r.engine.conns(false);
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].state, "ESTABLISHED");
    assert_eq!(flows[0].location.as_str(), "nic");

    // Data both ways is forwarded by the NIC alone, with the same bytes the host would send.
    let (hits, punted) = (r.nic_hits(), r.worker_packets());
    let req = Seg::new(client, vip).ack(7001).seq(101).data(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n");
    let (_, to_server) = r.client_sends(req.frame(CLIENT_MAC, P0_MAC));
    assert_eq!(to_server, vec![req.rewritten(lip, rs).frame(P1_MAC, RS1_MAC)], "request byte for byte (NIC)");
    let resp = Seg::new(&rs.to_string(), &lip.to_string()).ack(130).seq(7001).data(&[b'x'; 1200]);
    let (to_client, _) = r.server_sends(resp.frame(RS1_MAC, P1_MAC));
    assert_eq!(
        to_client,
        vec![resp.rewritten(v, c).frame(P0_MAC, CLIENT_MAC)],
        "response byte for byte (NIC)"
    );
    assert_eq!(r.nic_hits(), hits + 2, "both hit the NIC's table");
    assert_eq!(r.worker_packets(), punted, "the slow path saw neither");

    // The close: FINs are punted on a hit and move the host's state.
    let fin = Seg::new(client, vip).fin().ack(8201).seq(130);
    let (_, to_server) = r.client_sends(fin.frame(CLIENT_MAC, P0_MAC));
    assert_eq!(to_server, vec![fin.rewritten(lip, rs).frame(P1_MAC, RS1_MAC)]);
    assert_eq!(r.engine.conns(false)[0].state, "FIN_WAIT");
    let fin2 = Seg::new(&rs.to_string(), &lip.to_string()).fin().ack(131).seq(8201);
    let (to_client, _) = r.server_sends(fin2.frame(RS1_MAC, P1_MAC));
    assert_eq!(to_client, vec![fin2.rewritten(v, c).frame(P0_MAC, CLIENT_MAC)]);
    assert_eq!(r.engine.conns(false)[0].state, "TIME_WAIT");
    let last = Seg::new(client, vip).ack(8202).seq(131);
    let (_, to_server) = r.client_sends(last.frame(CLIENT_MAC, P0_MAC));
    assert_eq!(to_server, vec![last.rewritten(lip, rs).frame(P1_MAC, RS1_MAC)], "the last ACK still flows");

    // TIME_WAIT (7 s) passes on the injected clock: the connection and its flow are gone.
    r.advance(6 * S);
    assert_eq!(r.engine.conns(false).len(), 1);
    r.advance(2 * S);
    assert!(r.engine.conns(false).is_empty(), "expired after TIME_WAIT");
    assert_eq!(r.occupancy(), 0, "the flow was removed from the NIC");
    r
}

#[test]
fn a_tcp_connection_from_syn_to_close_over_ipv4() {
    tcp_connection("10.10.1.10:40000", "10.10.1.100:80", "10.10.2.11:80", "10.10.2.1");
}

#[test]
fn a_tcp_connection_from_syn_to_close_over_ipv6() {
    tcp_connection("[fd00:1::10]:40000", "[fd00:1::100]:80", "[fd00:2::11]:80", "fd00:2::1");
}

#[test]
fn a_client_beyond_the_router_is_answered_through_it() {
    let mut r = rig();
    let syn = Seg::new("192.0.2.7:5555", "10.10.1.100:80").syn();
    let (_, to_server) = r.client_sends(syn.frame(ROUTER_MAC, P0_MAC));
    let (lip, rs) = endpoints(&to_server[0]);
    let synack = Seg::new(&rs.to_string(), &lip.to_string()).syn().ack(1001).seq(1);
    let (to_client, _) = r.server_sends(synack.frame(RS1_MAC, P1_MAC));
    assert_eq!(
        to_client,
        vec![synack.rewritten(sa("10.10.1.100:80"), sa("192.0.2.7:5555")).frame(P0_MAC, ROUTER_MAC)]
    );
}

#[test]
fn a_udp_exchange_is_offloaded_after_the_reply_and_ages_out() {
    let mut r = rig();
    let q = udp("10.10.1.10:5000", "10.10.1.100:53", 64, b"query", CLIENT_MAC, P0_MAC);
    let (_, to_server) = r.client_sends(q);
    assert_eq!(to_server.len(), 1);
    let (lip, rs) = endpoints(&to_server[0]);
    assert_eq!(rs, sa("10.10.2.11:53"));
    let expect = udp(&lip.to_string(), "10.10.2.11:53", 63, b"query", P1_MAC, RS1_MAC);
    assert_eq!(to_server[0], expect, "query byte for byte");
    assert_eq!(r.occupancy(), 0, "UDP waits for the reply");
    let a = udp("10.10.2.11:53", &lip.to_string(), 64, b"answer", RS1_MAC, P1_MAC);
    let (to_client, _) = r.server_sends(a);
    assert_eq!(to_client, vec![udp("10.10.1.100:53", "10.10.1.10:5000", 63, b"answer", P0_MAC, CLIENT_MAC)]);
    assert_eq!(r.occupancy(), 1, "offloaded after the first reply");
    let hits = r.nic_hits();
    let q2 = udp("10.10.1.10:5000", "10.10.1.100:53", 64, b"again", CLIENT_MAC, P0_MAC);
    let (_, to_server) = r.client_sends(q2);
    assert_eq!(to_server, vec![udp(&lip.to_string(), "10.10.2.11:53", 63, b"again", P1_MAC, RS1_MAC)]);
    assert_eq!(r.nic_hits(), hits + 1);
    // Idle for the UDP timeout (300 s): the NIC's ager and the host's timer agree it is over.
    r.advance(200 * S);
    assert_eq!(r.engine.conns(false).len(), 1, "still there at 200 s");
    r.advance(101 * S);
    r.advance(S);
    assert!(r.engine.conns(false).is_empty(), "gone after 300 s idle");
    assert_eq!(r.occupancy(), 0);
}

#[test]
fn traffic_the_nic_forwards_keeps_an_offloaded_connection_alive() {
    let mut r = rig();
    let c = "10.10.1.10:41000";
    let (_, s) = r.client_sends(Seg::new(c, "10.10.1.100:80").syn().frame(CLIENT_MAC, P0_MAC));
    let (lip, rs) = endpoints(&s[0]);
    r.server_sends(Seg::new(&rs.to_string(), &lip.to_string()).syn().ack(1001).frame(RS1_MAC, P1_MAC));
    r.client_sends(Seg::new(c, "10.10.1.100:80").ack(1001).seq(1001).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(r.occupancy(), 1);
    // 80 s, a packet through the NIC, 80 s more: past the host's last sight + 90 s, but the
    // NIC saw traffic, so the query at the timeout keeps it.
    r.advance(80 * S);
    r.client_sends(Seg::new(c, "10.10.1.100:80").ack(1001).seq(1001).data(b"ping").frame(CLIENT_MAC, P0_MAC));
    r.advance(80 * S);
    assert_eq!(r.engine.conns(false).len(), 1, "kept alive by NIC traffic");
    assert_eq!(r.engine.conns(true)[0].packets[0], 2 + 1, "host packets plus the NIC's");
    r.advance(20 * S);
    assert!(r.engine.conns(false).is_empty(), "idle 100 s > 90 s: expired");
    assert_eq!(r.occupancy(), 0);
}

#[test]
fn a_full_nic_table_leaves_new_connections_on_the_software_path() {
    let cfg = config(1, services(SchedulerKind::Rr, &[("10.10.2.11:80", 1)]));
    let mut r = rig_with(cfg, 2);
    let mut last: Option<(SocketAddr, SocketAddr)> = None;
    for n in 0..4u16 {
        let c = format!("10.10.1.10:{}", 42000 + n);
        let (_, s) = r.client_sends(Seg::new(&c, "10.10.1.100:80").syn().frame(CLIENT_MAC, P0_MAC));
        let (lip, rs) = endpoints(&s[0]);
        r.server_sends(Seg::new(&rs.to_string(), &lip.to_string()).syn().ack(1001).frame(RS1_MAC, P1_MAC));
        r.client_sends(Seg::new(&c, "10.10.1.100:80").ack(1001).seq(1001).frame(CLIENT_MAC, P0_MAC));
        last = Some((sa(&c), lip));
    }
    assert_eq!(r.occupancy(), 2, "the table holds two");
    let flows = r.engine.conns(false);
    assert_eq!(flows.len(), 4, "no connection lost");
    assert_eq!(flows.iter().filter(|f| f.location.as_str() == "host").count(), 2);
    let st = r.engine.stats();
    assert!(st.table.full >= 2, "insert failures counted: {:?}", st.table);
    // The last connection is on the software path: its data is rewritten by the host, exactly.
    let (c, lip) = last.unwrap();
    let before = r.worker_packets();
    let d = Seg::new(&c.to_string(), "10.10.1.100:80").ack(1001).seq(1001).data(b"still works");
    let (_, s) = r.client_sends(d.frame(CLIENT_MAC, P0_MAC));
    assert_eq!(s, vec![d.rewritten(lip, sa("10.10.2.11:80")).frame(P1_MAC, RS1_MAC)]);
    assert_eq!(r.worker_packets(), before + 1, "forwarded by the slow path");
}

#[test]
fn a_device_reset_mid_traffic_is_noticed_and_every_flow_comes_back() {
    let mut r = rig();
    let mut conns = Vec::new();
    for n in 0..5u16 {
        let c = format!("10.10.1.10:{}", 43000 + n);
        let (_, s) = r.client_sends(Seg::new(&c, "10.10.1.100:80").syn().frame(CLIENT_MAC, P0_MAC));
        let (lip, rs) = endpoints(&s[0]);
        r.server_sends(Seg::new(&rs.to_string(), &lip.to_string()).syn().ack(1001).frame(RS1_MAC, P1_MAC));
        r.client_sends(Seg::new(&c, "10.10.1.100:80").ack(1001).seq(1001).frame(CLIENT_MAC, P0_MAC));
        conns.push((c, lip, rs));
    }
    assert_eq!(r.occupancy(), 5);
    // Somebody resets the NIC (a watchdog, a firmware fallback): table, rings, ports gone.
    r.model.with_device(sim_model::device::Device::reset);
    assert_eq!(r.occupancy(), 0);
    r.advance(S / 2);
    assert_eq!(r.engine.stats().table.recoveries, 1, "noticed and recovered");
    assert_eq!(r.occupancy(), 5, "every shadowed flow is back in the NIC");
    // Traffic of every connection goes on through the NIC, byte for byte.
    for (c, lip, rs) in &conns {
        let hits = r.nic_hits();
        let d = Seg::new(c, "10.10.1.100:80").ack(1001).seq(1001).data(b"after the reset");
        let (_, s) = r.client_sends(d.frame(CLIENT_MAC, P0_MAC));
        assert_eq!(s, vec![d.rewritten(*lip, *rs).frame(P1_MAC, RS1_MAC)]);
        assert_eq!(r.nic_hits(), hits + 1, "forwarded by the NIC");
    }
}

/// A client's new SYN on the tuple of a connection in TIME_WAIT (its port reused): while the
/// server still takes new connections, the old connection is reused, flow and all; once the
/// server is drained (weight 0), the old connection ends (its flow leaves the NIC) and the SYN
/// is scheduled afresh, as LVS's `conn_reuse_mode = 1` does, so the drained server gets no new
/// connection through a reused port. A SYN retransmitted during a handshake still belongs to
/// its connection, and a SYN on an established connection does not replace it.
#[test]
fn a_port_reused_during_time_wait_keeps_its_server_until_that_server_is_drained() {
    let svc = |w1, w2| services(SchedulerKind::Wrr, &[("10.10.2.11:80", w1), ("10.10.2.12:80", w2)]);
    let mut r = rig_with(config(1, svc(1, 0)), 1024);
    let (client, vip) = ("10.10.1.10:40000", "10.10.1.100:80");
    let (_, s) = r.client_sends(Seg::new(client, vip).syn().seq(100).frame(CLIENT_MAC, P0_MAC));
    let (lip, rs) = endpoints(&s[0]);
    assert_eq!(rs, sa("10.10.2.11:80"));
    // Retransmitted: the same connection, the same server-side tuple.
    let (_, s) = r.client_sends(Seg::new(client, vip).syn().seq(100).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(endpoints(&s[0]), (lip, rs));
    let (rs_s, lip_s) = (rs.to_string(), lip.to_string());
    r.server_sends(Seg::new(&rs_s, &lip_s).syn().ack(101).seq(7000).frame(RS1_MAC, P1_MAC));
    r.client_sends(Seg::new(client, vip).ack(7001).seq(101).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(r.occupancy(), 1, "offloaded");
    let (_, s) = r.client_sends(Seg::new(client, vip).syn().seq(100).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(endpoints(&s[0]), (lip, rs), "a SYN on an established connection does not replace it");
    let close = |r: &mut Rig, seq: u32, ack: u32| {
        r.client_sends(Seg::new(client, vip).fin().ack(ack).seq(seq).frame(CLIENT_MAC, P0_MAC));
        r.server_sends(Seg::new(&rs_s, &lip_s).fin().ack(seq + 1).seq(ack).frame(RS1_MAC, P1_MAC));
        r.client_sends(Seg::new(client, vip).ack(ack + 1).seq(seq + 1).frame(CLIENT_MAC, P0_MAC));
        assert_eq!(r.engine.conns(false)[0].state, "TIME_WAIT");
    };
    close(&mut r, 101, 7001);
    let expired = r.engine.stats().workers[0].expired;

    // The port reused while the server takes new connections: the old connection again.
    let (_, s) = r.client_sends(Seg::new(client, vip).syn().seq(50_000).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(endpoints(&s[0]), (lip, rs), "reused, server and LIP port");
    assert_eq!(r.engine.stats().workers[0].expired, expired);
    assert_eq!(r.occupancy(), 1, "its flow stays in the NIC");
    assert_eq!(r.engine.conns(false)[0].state, "SYN_RECV");
    close(&mut r, 50_001, 7001);

    // The server is drained: established connections stay, new ones go elsewhere.
    r.engine.replace_services(svc(0, 1)).unwrap();

    // The client's port again, with a new ISN, one second into TIME_WAIT.
    r.advance(S);
    let (_, s) = r.client_sends(Seg::new(client, vip).syn().seq(90_000).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(s.len(), 1);
    let (lip2, rs2) = endpoints(&s[0]);
    assert_eq!(rs2, sa("10.10.2.12:80"), "scheduled afresh: not the drained server");
    assert_eq!(tcp_fields(&s[0]).map(|t| t.1), Some(90_000), "the new connection's own SYN");
    assert_eq!(r.engine.stats().workers[0].expired, expired + 1, "the old connection expired");
    assert_eq!(r.occupancy(), 0, "its flow left the NIC");
    let conns = r.engine.conns(false);
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].state, "SYN_RECV");
    // The new connection completes as any other.
    let (new_rs, new_lip) = (rs2.to_string(), lip2.to_string());
    let (to_client, _) =
        r.server_sends(Seg::new(&new_rs, &new_lip).syn().ack(90_001).seq(5).frame(RS2_MAC, P1_MAC));
    assert_eq!(to_client.len(), 1, "the SYN-ACK reaches the client");
    r.client_sends(Seg::new(client, vip).ack(6).seq(90_001).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(r.occupancy(), 1);
    assert_eq!(r.engine.conns(false)[0].state, "ESTABLISHED");
    assert_eq!(r.engine.conns(false)[0].location.as_str(), "nic");
    let (hits, punted) = (r.nic_hits(), r.worker_packets());
    let (_, s) =
        r.client_sends(Seg::new(client, vip).ack(6).seq(90_001).data(b"GET").frame(CLIENT_MAC, P0_MAC));
    assert_eq!(s.len(), 1);
    assert_eq!(endpoints(&s[0]), (lip2, rs2));
    assert_eq!((r.nic_hits(), r.worker_packets()), (hits + 1, punted), "the new flow is the NIC's");
}

/// The other two ways a server stops taking new connections, a failed health check and removal
/// from its service, end a reused TIME_WAIT connection as a drain does: the SYN on the reused
/// port is scheduled afresh, to the server that remains, and the old flow leaves the NIC.
#[test]
fn a_port_reused_during_time_wait_leaves_a_failed_or_removed_server() {
    let both = || services(SchedulerKind::Rr, &[("10.10.2.11:80", 1), ("10.10.2.12:80", 1)]);
    let key = both()[0].key;
    for change in ["failed", "removed"] {
        let mut r = rig_with(config(1, both()), 1024);
        let (client, vip) = ("10.10.1.10:40000", "10.10.1.100:80");
        let (_, s) = r.client_sends(Seg::new(client, vip).syn().seq(100).frame(CLIENT_MAC, P0_MAC));
        let (lip, rs) = endpoints(&s[0]);
        let (rs_s, lip_s) = (rs.to_string(), lip.to_string());
        let rs_mac = if rs == sa("10.10.2.11:80") { RS1_MAC } else { RS2_MAC };
        r.server_sends(Seg::new(&rs_s, &lip_s).syn().ack(101).seq(7000).frame(rs_mac, P1_MAC));
        r.client_sends(Seg::new(client, vip).ack(7001).seq(101).frame(CLIENT_MAC, P0_MAC));
        assert_eq!(r.occupancy(), 1, "{change}: offloaded");
        r.client_sends(Seg::new(client, vip).fin().ack(7001).seq(101).frame(CLIENT_MAC, P0_MAC));
        r.server_sends(Seg::new(&rs_s, &lip_s).fin().ack(102).seq(7001).frame(rs_mac, P1_MAC));
        r.client_sends(Seg::new(client, vip).ack(7002).seq(102).frame(CLIENT_MAC, P0_MAC));
        assert_eq!(r.engine.conns(false)[0].state, "TIME_WAIT", "{change}");
        let expired = r.engine.stats().workers[0].expired;

        let other = if rs == sa("10.10.2.11:80") { "10.10.2.12:80" } else { "10.10.2.11:80" };
        if change == "failed" {
            assert!(r.engine.set_health(&key, rs, false), "the health check's result changes it");
        } else {
            r.engine.replace_services(services(SchedulerKind::Rr, &[(other, 1)])).unwrap();
        }
        r.advance(S);
        let (_, s) = r.client_sends(Seg::new(client, vip).syn().seq(90_000).frame(CLIENT_MAC, P0_MAC));
        assert_eq!(s.len(), 1, "{change}");
        assert_eq!(endpoints(&s[0]).1, sa(other), "{change}: scheduled afresh, to the server that remains");
        assert_eq!(tcp_fields(&s[0]).map(|t| t.1), Some(90_000), "{change}: the new connection's own SYN");
        assert_eq!(r.engine.stats().workers[0].expired, expired + 1, "{change}: the old connection expired");
        assert_eq!(r.occupancy(), 0, "{change}: its flow left the NIC");
        let conns = r.engine.conns(false);
        assert_eq!(conns.len(), 1, "{change}");
        assert_eq!(conns[0].state, "SYN_RECV", "{change}");
    }
}

/// A health change on one service rebuilds that service's scheduler only: another service's
/// round robin goes on from where it was, as IPVS's per-service schedulers do, instead of
/// starting over at its first server.
#[test]
fn a_health_change_elsewhere_does_not_restart_a_services_rotation() {
    let cfgs = services(SchedulerKind::Rr, &[("10.10.2.11:80", 1), ("10.10.2.12:80", 1)]);
    let (tcp, udp) = (cfgs[0].key, cfgs[1].key);
    let mut r = rig_with(config(1, cfgs), 1024);
    let vip = "10.10.1.100:80";
    let (_, s) = r.client_sends(Seg::new("10.10.1.10:40000", vip).syn().seq(100).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(endpoints(&s[0]).1, sa("10.10.2.11:80"));
    assert!(r.engine.set_health(&udp, sa("10.10.2.11:53"), false), "the UDP service's server fails");
    let (_, s) = r.client_sends(Seg::new("10.10.1.10:40001", vip).syn().seq(100).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(endpoints(&s[0]).1, sa("10.10.2.12:80"), "the TCP service's rotation went on");
    // A change to the service itself does rebuild it: its rotation starts over.
    assert!(r.engine.set_health(&tcp, sa("10.10.2.12:80"), false));
    assert!(r.engine.set_health(&tcp, sa("10.10.2.12:80"), true));
    let (_, s) = r.client_sends(Seg::new("10.10.1.10:40002", vip).syn().seq(100).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(endpoints(&s[0]).1, sa("10.10.2.11:80"), "rebuilt with its own change");
}

/// `offload.forward_fin`: the NIC forwards the FINs of an offloaded connection itself and
/// reports each with a flow event. The slow path sees no packet of the close, yet the
/// connection moves to FIN_WAIT and TIME_WAIT as the FINs pass, and expires after TIME_WAIT,
/// its flow removed from the NIC.
#[test]
fn fins_the_nic_forwards_still_close_the_connection() {
    let cfg = config(1, services(SchedulerKind::Rr, &[("10.10.2.11:80", 1)]));
    let mut r = rig_with_nic(cfg, 1024, |n| n.forward_fin = true);
    let (client, vip) = ("10.10.1.10:40000", "10.10.1.100:80");
    let (_, s) = r.client_sends(Seg::new(client, vip).syn().seq(100).frame(CLIENT_MAC, P0_MAC));
    let (lip, rs) = endpoints(&s[0]);
    let (rs_s, lip_s) = (rs.to_string(), lip.to_string());
    r.server_sends(Seg::new(&rs_s, &lip_s).syn().ack(101).seq(7000).frame(RS1_MAC, P1_MAC));
    r.client_sends(Seg::new(client, vip).ack(7001).seq(101).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(r.occupancy(), 1);
    let punted = r.worker_packets();

    let fin = Seg::new(client, vip).fin().ack(7001).seq(101);
    let (_, to_server) = r.client_sends(fin.frame(CLIENT_MAC, P0_MAC));
    assert_eq!(to_server, vec![fin.rewritten(lip, rs).frame(P1_MAC, RS1_MAC)], "forwarded, byte for byte");
    assert_eq!(r.engine.conns(false)[0].state, "FIN_WAIT");
    let fin2 = Seg::new(&rs_s, &lip_s).fin().ack(102).seq(7001);
    let (to_client, _) = r.server_sends(fin2.frame(RS1_MAC, P1_MAC));
    assert_eq!(to_client, vec![fin2.rewritten(sa(vip), sa(client)).frame(P0_MAC, CLIENT_MAC)]);
    assert_eq!(r.engine.conns(false)[0].state, "TIME_WAIT");
    r.client_sends(Seg::new(client, vip).ack(7002).seq(102).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(r.worker_packets(), punted, "the slow path saw no packet of the close");

    r.advance(6 * S);
    assert_eq!(r.engine.conns(false).len(), 1, "TIME_WAIT's 7 s");
    r.advance(2 * S);
    assert!(r.engine.conns(false).is_empty(), "expired after TIME_WAIT");
    assert_eq!(r.occupancy(), 0, "the flow was removed from the NIC");
}

/// A FIN the NIC forwarded whose event it could not post (its event ring full) still closes
/// its connection: when the connection's timer fires, the NIC's answer to the query carries
/// the FIN in the flow's flags, so the connection ends after FIN_WAIT's 7 s from its last
/// packet, not after another 90 s of ESTABLISHED (the servers keep the flows busy after the
/// clients' FINs, as a server still answering a half-closed connection does).
#[test]
fn a_fin_whose_event_was_lost_closes_its_connection_when_its_timer_fires() {
    let cfg = config(1, services(SchedulerKind::Rr, &[("10.10.2.11:80", 1)]));
    let mut r = rig_with_nic(cfg, 1024, |n| {
        n.forward_fin = true;
        n.ring_log2 = 4;
    });
    let vip = "10.10.1.100:80";
    let client = |p: u16| format!("10.10.1.10:{}", 40_000 + p);
    let mut servers = Vec::new();
    for p in 0..40 {
        let (_, s) = r.client_sends(Seg::new(&client(p), vip).syn().seq(100).frame(CLIENT_MAC, P0_MAC));
        let (lip, rs) = endpoints(&s[0]);
        let (rs, lip) = (rs.to_string(), lip.to_string());
        r.server_sends(Seg::new(&rs, &lip).syn().ack(101).seq(7000).frame(RS1_MAC, P1_MAC));
        r.client_sends(Seg::new(&client(p), vip).ack(7001).seq(101).frame(CLIENT_MAC, P0_MAC));
        servers.push((rs, lip));
    }
    assert_eq!(r.occupancy(), 40);
    // The clients' FINs in one burst: the NIC forwards all 40 and raises 40 events into a
    // 16-entry ring before the host looks.
    let fins: Vec<Vec<u8>> = (0..40)
        .map(|p| Seg::new(&client(p), vip).fin().ack(7001).seq(101).frame(CLIENT_MAC, P0_MAC))
        .collect();
    r.model.with_device(|d| fins.iter().for_each(|f| d.receive(0, f)));
    r.settle();
    let count = |r: &mut Rig, state: &str| r.engine.conns(false).iter().filter(|c| c.state == state).count();
    let lost = count(&mut r, "ESTABLISHED");
    assert!(lost > 0, "some events were lost (else this tests nothing)");
    assert_eq!(count(&mut r, "FIN_WAIT"), 40 - lost);
    // 80 s on (the FIN_WAIT ones have ended), the servers still send on every connection.
    r.advance(80 * S);
    assert_eq!(r.engine.conns(false).len(), lost);
    for (rs, lip) in &servers {
        r.server_sends(Seg::new(rs, lip).ack(102).seq(7001).data(b"more").frame(RS1_MAC, P1_MAC));
    }
    // The established timeout (90 s from the handshake) fires: the NIC's flags show the FIN,
    // and FIN_WAIT's 7 s from the last packet (80 s) have passed at 91 s.
    r.advance(11 * S);
    assert!(r.engine.conns(false).is_empty(), "ended as closing, not kept as established");
    assert_eq!(r.occupancy(), 0);
}
