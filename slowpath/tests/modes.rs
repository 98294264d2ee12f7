//! The forwarding modes beside FullNAT through the in-process NIC, byte for byte: NAT (the
//! server sees the client's address, its replies come back through the balancer and leave from
//! the VIP; offloaded after the handshake like FullNAT), DR (the client's packet unchanged, TTL
//! included, to the server's MAC) and TUN (the client's packet unchanged inside IP-in-IP from
//! the service's local address to the server), each the same bytes from the host path (the
//! handshake) and from the NIC (after it: the Route and Tunnel next hops of spec 1.3), and the
//! one-way state of DR and TUN, which follows the client's packets only.

use etherparse::{NetSlice, SlicedPacket};
use slowpath::sched::SchedulerKind;
use slowpath::service::{Forward, ServiceConfig};
use sluice_test_support::engine::*;
use sluice_test_support::frame::{L4, Pkt, Seg};
use sluice_test_support::verify::checksums;

/// The rig with every service in mode `forward`.
fn rig_of(forward: Forward) -> Rig {
    let services: Vec<ServiceConfig> =
        services(SchedulerKind::Rr, &[("10.10.2.11:80", 1), ("[fd00:2::11]:80", 1)])
            .into_iter()
            .map(|s| ServiceConfig { forward, ..s })
            .collect();
    rig_with(config(1, services), 1024)
}

#[test]
fn nat_keeps_the_client_address_and_replies_leave_from_the_vip() {
    let mut r = rig_of(Forward::Nat);
    let (client, vip, rs) = ("10.10.1.10:40000", "10.10.1.100:80", "10.10.2.11:80");
    let syn = Seg::new(client, vip).syn().seq(100);
    let (_, to_server) = r.client_sends(syn.frame(CLIENT_MAC, P0_MAC));
    assert_eq!(to_server, vec![syn.rewritten(sa(client), sa(rs)).frame(P1_MAC, RS1_MAC)], "DNAT only");

    // The server answers the client's own address; the balancer puts the VIP back.
    let synack = Seg::new(rs, client).syn().ack(101).seq(7000);
    let (to_client, _) = r.server_sends(synack.frame(RS1_MAC, P1_MAC));
    assert_eq!(to_client, vec![synack.rewritten(sa(vip), sa(client)).frame(P0_MAC, CLIENT_MAC)]);

    let ack = Seg::new(client, vip).ack(7001).seq(101);
    r.client_sends(ack.frame(CLIENT_MAC, P0_MAC));
    assert_eq!(r.occupancy(), 1, "offloaded after the handshake, as FullNAT");
    let flows = r.engine.conns(false);
    assert_eq!(
        (flows[0].state, flows[0].forward, flows[0].location.as_str()),
        ("ESTABLISHED", Forward::Nat, "nic")
    );

    // Both directions through the NIC's rewrite, byte for byte.
    let hits = r.nic_hits();
    let req = Seg::new(client, vip).ack(7001).seq(101).data(b"GET / HTTP/1.1\r\n\r\n");
    let (_, to_server) = r.client_sends(req.frame(CLIENT_MAC, P0_MAC));
    assert_eq!(to_server, vec![req.rewritten(sa(client), sa(rs)).frame(P1_MAC, RS1_MAC)]);
    let resp = Seg::new(rs, client).ack(119).seq(7001).data(&[b'y'; 900]);
    let (to_client, _) = r.server_sends(resp.frame(RS1_MAC, P1_MAC));
    assert_eq!(to_client, vec![resp.rewritten(sa(vip), sa(client)).frame(P0_MAC, CLIENT_MAC)]);
    assert_eq!(r.nic_hits(), hits + 2, "forwarded by the NIC");
}

#[test]
fn dr_sends_the_client_packet_unchanged_to_the_server_mac() {
    for (client, vip, mac) in
        [("10.10.1.10:40000", "10.10.1.100:80", RS1_MAC), ("[fd00:1::10]:40000", "[fd00:1::100]:80", RS1_MAC)]
    {
        let mut r = rig_of(Forward::Dr);
        let syn = Seg::new(client, vip).syn().seq(100);
        let (to_client, to_server) = r.client_sends(syn.frame(CLIENT_MAC, P0_MAC));
        assert!(to_client.is_empty());
        assert_eq!(to_server, vec![syn.frame(P1_MAC, mac)], "{client}: same IP packet, TTL included");
        let ack = Seg::new(client, vip).ack(7001).seq(101);
        let (_, to_server) = r.client_sends(ack.frame(CLIENT_MAC, P0_MAC));
        assert_eq!(to_server, vec![ack.frame(P1_MAC, mac)]);
        let flows = r.engine.conns(false);
        assert_eq!((flows[0].state, flows[0].forward), ("ESTABLISHED", Forward::Dr), "the client's ACK");
        assert_eq!(flows[0].location.as_str(), "nic", "offloaded after the client's ACK");
        let hits = r.nic_hits();
        let data = Seg::new(client, vip).ack(7001).seq(101).data(b"GET /");
        let (_, to_server) = r.client_sends(data.frame(CLIENT_MAC, P0_MAC));
        assert_eq!(to_server, vec![data.frame(P1_MAC, mac)], "the NIC's Route: the same bytes");
        assert_eq!(r.nic_hits(), hits + 1, "forwarded by the NIC");
        assert_eq!(
            flows[0].endpoints.rs,
            sa(if vip.starts_with('[') { "[fd00:2::11]:80" } else { "10.10.2.11:80" })
        );
    }
}

#[test]
fn one_way_state_follows_the_client_and_ends_by_its_timeout() {
    let mut r = rig_of(Forward::Dr);
    let (client, vip) = ("10.10.1.10:40001", "10.10.1.100:80");
    r.client_sends(Seg::new(client, vip).syn().seq(1).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(r.engine.conns(false)[0].state, "SYN_RECV");
    r.client_sends(Seg::new(client, vip).ack(9).seq(2).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(r.engine.conns(false)[0].state, "ESTABLISHED");
    r.client_sends(Seg::new(client, vip).fin().ack(9).seq(2).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(r.engine.conns(false)[0].state, "FIN_WAIT");
    r.advance(6 * S);
    assert_eq!(r.engine.conns(false).len(), 1, "FIN_WAIT lasts 7 s");
    r.advance(2 * S);
    assert!(r.engine.conns(false).is_empty(), "ended by the timeout: the server's FIN is never seen");

    // A RST from the client closes at once (CLOSE, 3 s).
    r.client_sends(Seg::new(client, vip).syn().seq(50).frame(CLIENT_MAC, P0_MAC));
    r.client_sends(Seg::new(client, vip).rst().seq(51).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(r.engine.conns(false)[0].state, "CLOSE");
}

#[test]
fn tun_encapsulates_from_the_local_address_to_the_server() {
    for (client, vip, src, server) in [
        ("10.10.1.10:40000", "10.10.1.100:80", "10.10.2.1", "10.10.2.11"),
        ("[fd00:1::10]:40000", "[fd00:1::100]:80", "fd00:2::1", "fd00:2::11"),
    ] {
        let mut r = rig_of(Forward::Tun);
        let proto = if src.contains(':') { 41 } else { 4 };
        let tunnelled = |inner: &[u8]| {
            Pkt::ip(ip(src), ip(server), 64, L4::Raw(proto), &inner[14..]).l2(P1_MAC, RS1_MAC).build()
        };
        let syn = Seg::new(client, vip).syn().seq(100).frame(CLIENT_MAC, P0_MAC);
        let (_, to_server) = r.client_sends(syn.clone());
        assert_eq!(to_server, vec![tunnelled(&syn)], "{client}: IP-in-IP byte for byte (host path)");
        checksums(&to_server[0]).unwrap();
        let outer = SlicedPacket::from_ethernet(&to_server[0]).unwrap();
        assert!(matches!(outer.net, Some(NetSlice::Ipv4(_) | NetSlice::Ipv6(_))));
        r.client_sends(Seg::new(client, vip).ack(7001).seq(101).frame(CLIENT_MAC, P0_MAC));
        let flows = r.engine.conns(false);
        assert_eq!((flows[0].forward, flows[0].location.as_str()), (Forward::Tun, "nic"));
        let hits = r.nic_hits();
        let data = Seg::new(client, vip).ack(7001).seq(101).data(&[b'z'; 1000]).frame(CLIENT_MAC, P0_MAC);
        let (_, to_server) = r.client_sends(data.clone());
        assert_eq!(to_server, vec![tunnelled(&data)], "{client}: the NIC's Tunnel, the same bytes");
        assert_eq!(r.nic_hits(), hits + 1, "forwarded by the NIC");
    }
}
