//! Forwarding-mode cases (spec 1.3): LVS's NAT as a `Rewrite` record whose reply tuple keeps
//! the client's address, DR through a `Route` next hop, TUN through a `Tunnel` next hop (IPv4 in
//! IPv4, IPv6 in IPv6), the tunnel's overhead in the MTU check, and the `NextHopSet` checks of
//! an action.
//!
//! The expected frames are built by the tests' frame builder (etherparse), independently of the
//! model: a routed frame is the input's IP packet under the next hop's L2 header, a tunnelled
//! one is an IP packet of protocol 4 / 41 whose payload is the input's IP packet.

#[allow(clippy::wildcard_imports)]
use super::*;
use rtl_spec::codes::NextHopAction;
use rtl_spec::formats::{NextHopEntry, NextHopTunnel};
use sluice_test_support::flows::{GW_MAC, NIC_MAC, RS_MAC, addr16, next_hop};
use std::net::IpAddr;
use zerocopy::little_endian::U16;

/// Next-hop entries of this group (0..=2 are the standard ones, 3 is left invalid).
const ROUTE_RS: u32 = 4;
const TUNNEL_V4: u32 = 5;
const TUNNEL_V6: u32 = 6;
const ROUTE_CLIENT: u32 = 7;

/// The balancer's own addresses, the tunnels' outer sources.
fn node(ipv6: bool) -> IpAddr {
    if ipv6 { "fd00:2::2".parse().unwrap() } else { "10.10.2.2".parse().unwrap() }
}

fn with_action(mut e: NextHopEntry, a: NextHopAction) -> NextHopEntry {
    e.ctl.set_action(a.into());
    e
}

/// `NextHopSet` of entry `n` with `e` and, after it, the tunnel `t`.
fn set_cmd(n: u32, e: &NextHopEntry, t: &NextHopTunnel) -> FlowCommand {
    let mut c = FlowCommand { arg: U32::new(n), ..op(Opcode::NextHopSet, 0) };
    c.payload[..16].copy_from_slice(e.as_bytes());
    c.payload[16..48].copy_from_slice(t.as_bytes());
    c
}

/// A one-way (DR, TUN) connection: the record's reply tuple is the original reversed, so the
/// rewrite of the original direction changes no address, and the real server is `server`.
fn one_way(mut c: Conn, hop: u32) -> (Conn, FlowRecord, IpAddr) {
    let server = c.rs.0;
    c.rs = c.vip;
    c.lip = c.client;
    let mut rec = c.record();
    rec.dir_orig.next_hop = U16::new(hop as u16);
    rec.dir_reply.next_hop = U16::new(ROUTE_CLIENT as u16);
    (c, rec, server)
}

/// NAT: the reply tuple is server → client, so only the destination changes on the way in and
/// only the source on the way out.
fn nat(mut c: Conn) -> Conn {
    c.lip = c.client;
    c
}

/// The frame a `Route` hit sends for `p`: the same IP packet toward `dst_mac`.
fn routed(p: &Pkt, dst_mac: [u8; 6]) -> Vec<u8> {
    p.clone().with(|q| q.pad_to = 0).l2(NIC_MAC, dst_mac).build()
}

/// The frame a `Tunnel` hit toward `server` sends for `p`.
fn tunnelled(p: &Pkt, ipv6: bool, server: IpAddr) -> Vec<u8> {
    let inner = p.clone().with(|q| q.pad_to = 0).build();
    let proto = if ipv6 { 41 } else { 4 };
    Pkt::ip(node(ipv6), server, 64, L4::Raw(proto), &inner[14..]).l2(NIC_MAC, RS_MAC).build()
}

#[allow(clippy::too_many_lines)]
pub(super) fn modes() -> Vec<Case> {
    let nat4 = nat(v4(30));
    let nat6 = nat(v6(31).udp());
    let (dr4, dr4_rec, _) = one_way(v4(32), ROUTE_RS);
    let (dr6, dr6_rec, _) = one_way(v6(33), ROUTE_RS);
    let (tun4, tun4_rec, server4) = one_way(v4(34), TUNNEL_V4);
    let (tun6, tun6_rec, server6) = one_way(v6(35), TUNNEL_V6);
    let tun4_tunnel = NextHopTunnel { src: addr16(node(false)), dst: addr16(server4) };
    let tun6_tunnel = NextHopTunnel { src: addr16(node(true)), dst: addr16(server6) };
    let route_rs = with_action(next_hop(1, RS_MAC, None), NextHopAction::Route);
    let route_client = with_action(next_hop(0, GW_MAC, None), NextHopAction::Route);
    let tunnel = with_action(next_hop(1, RS_MAC, None), NextHopAction::Tunnel);
    let setup = vec![
        Step::Fresh(1024, true),
        Step::NextHop(ROUTE_RS, route_rs),
        Step::NextHop(ROUTE_CLIENT, route_client),
        Step::Insert(30, nat4.record()),
        Step::Insert(31, nat6.record()),
        Step::Insert(32, dr4_rec),
        Step::Insert(33, dr6_rec),
    ];
    let dr4_pkt = pkt(&dr4, false, ACK, 64, b"GET / HTTP/1.1\r\n\r\n");
    let dr6_pkt = pkt(&dr6, false, ACK | 8, 1, b"hop limit 1");
    let tun4_pkt = pkt(&tun4, false, ACK, 64, b"to the tunnel");
    let tun6_pkt = pkt(&tun6, false, ACK, 9, b"to the v6 tunnel");
    let tun4_len = tun4_pkt.build().len() - 14;
    vec![
        // NAT: the record is FullNAT's with the client's address as the "LIP".
        fwd(
            "NAT v4 TCP orig: client->VIP becomes client->RS",
            &nat4,
            false,
            &pkt(&nat4, false, ACK, 64, b"in"),
        )
        .setup(setup),
        fwd(
            "NAT v4 TCP reply: RS->client becomes VIP->client",
            &nat4,
            true,
            &pkt(&nat4, true, ACK, 64, b"out"),
        ),
        fwd("NAT v6 UDP orig", &nat6, false, &pkt(&nat6, false, 0, 64, b"query")),
        fwd("NAT v6 UDP reply", &nat6, true, &pkt(&nat6, true, 0, 64, b"answer")),
        // DR: the IP packet is not touched, TTL included; only the MAC changes.
        Case::frame("DR v4: the frame goes to the server's MAC, IP packet unchanged", 0, dr4_pkt.build(), {
            Verdict::Tx(1, routed(&dr4_pkt, RS_MAC))
        })
        .after(vec![query(32, (1, 0), (58, 0), (ACK, 0), false)]),
        Case::frame(
            "DR v4 with Ethernet padding: only the IP packet is kept",
            0,
            dr4_pkt.clone().with(|p| p.pad_to = 80).build(),
            Verdict::Tx(1, routed(&dr4_pkt, RS_MAC)),
        ),
        Case::frame(
            "DR v6: hop limit 1 is punted before any action",
            0,
            dr6_pkt.build(),
            Verdict::Punt(P::TtlExpired, Some(33)),
        ),
        Case::frame(
            "DR v6 with hop limit 2 is routed with hop limit 2",
            0,
            pkt(&dr6, false, ACK | 8, 2, b"hop limit 2").build(),
            Verdict::Tx(1, routed(&pkt(&dr6, false, ACK | 8, 2, b"hop limit 2"), RS_MAC)),
        ),
        Case::frame(
            "DR v4 reply direction (a server answering through the balancer) is routed to the client",
            1,
            pkt(&dr4, true, ACK, 64, b"answer").build(),
            Verdict::Tx(0, routed(&pkt(&dr4, true, ACK, 64, b"answer"), GW_MAC)),
        ),
        // TUN: the tunnel entries are written by commands, as a host writes them.
        Case::cmd(
            "NextHopSet of a Tunnel entry (v4 outer addresses)",
            move |_| set_cmd(TUNNEL_V4, &tunnel, &tun4_tunnel),
            S::Ok,
        ),
        Case::cmd(
            "NextHopSet of a Tunnel entry (v6)",
            move |_| set_cmd(TUNNEL_V6, &tunnel, &tun6_tunnel),
            S::Ok,
        ),
        Case::cmd(
            "NextHopSet with an action that is not one is refused",
            move |_| {
                let mut e = next_hop(1, RS_MAC, None);
                e.ctl.set_action(3);
                set_cmd(8, &e, &NextHopTunnel::default())
            },
            S::BadArgument,
        ),
        Case::frame(
            "TUN v4: IPv4-in-IPv4 from the node to the server, inner packet unchanged",
            0,
            tun4_pkt.build(),
            Verdict::Tx(1, tunnelled(&tun4_pkt, false, server4)),
        )
        .setup(vec![Step::Insert(34, tun4_rec), Step::Insert(35, tun6_rec)])
        .after(vec![query(34, (1, 0), (tun4_len as u64, 0), (ACK, 0), false)]),
        Case::frame(
            "TUN v6: IPv6-in-IPv6, hop limit 64 outside, 9 inside",
            0,
            tun6_pkt.build(),
            Verdict::Tx(1, tunnelled(&tun6_pkt, true, server6)),
        ),
        Case::frame(
            "TUN v4: inner length + 20 equal to the MTU is sent",
            0,
            tun4_pkt.build(),
            Verdict::Tx(1, tunnelled(&tun4_pkt, false, server4)),
        )
        .setup(vec![Step::Write(port_reg(ports::PORT_MTU, 1), (tun4_len + 20) as u32)]),
        Case::frame(
            "TUN v4: inner length + 20 over the MTU is punted (OverMtu)",
            0,
            tun4_pkt.build(),
            Verdict::Punt(P::OverMtu, Some(34)),
        )
        .setup(vec![Step::Write(port_reg(ports::PORT_MTU, 1), (tun4_len + 19) as u32)])
        .cleanup(vec![Step::Write(port_reg(ports::PORT_MTU, 1), 1500)]),
        Case::frame(
            "TUN v4 SYN on the hit is punted like any SYN",
            0,
            pkt(&tun4, false, SYN, 64, b"").build(),
            Verdict::Punt(P::TcpSyn, Some(34)),
        ),
        fwd(
            "FullNAT still rewrites beside the other modes",
            &v4(0),
            false,
            &pkt(&v4(0), false, ACK, 64, b"hello"),
        ),
    ]
}
