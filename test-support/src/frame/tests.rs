//! The builder writes what etherparse's own `PacketBuilder` writes for the same packet, so the
//! tests that used one or the other see the same bytes.

use super::*;
use crate::flows::Conn;
use etherparse::PacketBuilder;

fn ip4(a: IpAddr) -> [u8; 4] {
    let IpAddr::V4(a) = a else { panic!("IPv4") };
    a.octets()
}

fn ip6(a: IpAddr) -> [u8; 16] {
    let IpAddr::V6(a) = a else { panic!("IPv6") };
    a.octets()
}

/// What the slow path's and replay's tests built: TCP, window 29200, flags as given.
fn builder_seg(s: &Seg, l2s: [u8; 6], l2d: [u8; 6]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(l2s, l2d);
    let b = match s.src.ip() {
        IpAddr::V4(_) => b.ipv4(ip4(s.src.ip()), ip4(s.dst.ip()), s.ttl),
        IpAddr::V6(_) => b.ipv6(ip6(s.src.ip()), ip6(s.dst.ip()), s.ttl),
    };
    let mut b = b.tcp(s.src.port(), s.dst.port(), s.seq, s.window);
    if s.syn {
        b = b.syn();
    }
    if s.fin {
        b = b.fin();
    }
    if s.rst {
        b = b.rst();
    }
    if let Some(a) = s.ack {
        b = b.ack(a);
    }
    let mut out = Vec::new();
    b.write(&mut out, &s.payload).unwrap();
    out
}

#[test]
fn segments_and_datagrams_are_the_bytes_packet_builder_writes() {
    let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    for (src, dst) in [("10.10.1.10:40000", "10.10.1.100:80"), ("[fd00:1::10]:40000", "[fd00:1::100]:80")] {
        let segs = [
            Seg::new(src, dst).syn(),
            Seg::new(src, dst).ack(1001).seq(1001).data(b"GET / HTTP/1.0\r\n\r\n"),
            Seg::new(src, dst).fin().ack(7).ttl(3),
            Seg::new(src, dst).rst().window(1000).seq(1),
        ];
        for s in segs {
            assert_eq!(s.frame(a, b), builder_seg(&s, a, b), "{s:?}");
        }
        let (s, d) = (sa(src), sa(dst));
        let want = {
            let pb = PacketBuilder::ethernet2(a, b);
            let pb = match s.ip() {
                IpAddr::V4(_) => pb.ipv4(ip4(s.ip()), ip4(d.ip()), 9),
                IpAddr::V6(_) => pb.ipv6(ip6(s.ip()), ip6(d.ip()), 9),
            };
            let mut out = Vec::new();
            pb.udp(s.port(), d.port()).write(&mut out, b"dns?").unwrap();
            out
        };
        assert_eq!(udp(src, dst, 9, b"dns?", a, b), want);
    }
}

#[test]
fn icmp_messages_are_the_bytes_packet_builder_writes() {
    let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let t4 = Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 7, seq: 3 });
    let got =
        Pkt::ip("10.10.1.10".parse().unwrap(), "10.10.1.100".parse().unwrap(), 64, L4::Icmp4(t4), b"ping!")
            .l2(a, b)
            .build();
    let mut want = Vec::new();
    PacketBuilder::ethernet2(a, b)
        .ipv4([10, 10, 1, 10], [10, 10, 1, 100], 64)
        .icmpv4_echo_request(7, 3)
        .write(&mut want, b"ping!")
        .unwrap();
    assert_eq!(got, want);
    let t6 = Icmpv6Type::Unknown { type_u8: 135, code_u8: 0, bytes5to8: [0; 4] };
    let (s, d): (IpAddr, IpAddr) = ("fd00:1::10".parse().unwrap(), "ff02::1:ff00:100".parse().unwrap());
    let got = Pkt::ip(s, d, 255, L4::Icmp6(t6), b"body").l2(a, b).build();
    let mut want = Vec::new();
    PacketBuilder::ethernet2(a, b).ipv6(ip6(s), ip6(d), 255).icmpv6(t6).write(&mut want, b"body").unwrap();
    assert_eq!(got, want);
}

/// What the sim-model tests and the fuzz targets built with `PacketBuilder` (ACK always, sequence
/// 1000, acknowledgment 5000, window 64240).
fn builder_conn(
    c: &Conn,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    flags: u8,
    ttl: u8,
    payload: &[u8],
) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, NIC_MAC);
    let ip = match src.0 {
        IpAddr::V4(_) => eth.ipv4(ip4(src.0), ip4(dst.0), ttl),
        IpAddr::V6(_) => eth.ipv6(ip6(src.0), ip6(dst.0), ttl),
    };
    let mut out = Vec::new();
    if c.proto == 17 {
        ip.udp(src.1, dst.1).write(&mut out, payload).unwrap();
    } else {
        let mut b = ip.tcp(src.1, dst.1, 1000, 64240).ack(5000);
        if flags & FIN != 0 {
            b = b.fin();
        }
        if flags & SYN != 0 {
            b = b.syn();
        }
        if flags & RST != 0 {
            b = b.rst();
        }
        if flags & PSH != 0 {
            b = b.psh();
        }
        b.write(&mut out, payload).unwrap();
    }
    out
}

#[test]
fn connection_packets_are_the_bytes_packet_builder_writes() {
    for c in [Conn::v4_tcp(), Conn::v6_tcp(), Conn::v4_tcp().udp(), Conn::v6_tcp().udp()] {
        for flags in [0, FIN, SYN, RST, PSH, ACK, SYN | FIN | PSH] {
            let got = c.packet(c.client, c.vip, flags, 17, b"payload");
            assert_eq!(got, builder_conn(&c, c.client, c.vip, flags, 17, b"payload"), "{c:?} {flags}");
        }
        assert_eq!(c.to_lip(b"r"), builder_conn(&c, c.rs, c.lip, ACK, 64, b"r"));
    }
}

#[test]
fn tcp_options_are_the_bytes_packet_builder_writes() {
    let opts = [
        etherparse::TcpOptionElement::Noop,
        etherparse::TcpOptionElement::Noop,
        etherparse::TcpOptionElement::SelectiveAcknowledgement((1, 2), [Some((3, 4)), None, None]),
    ];
    let l4 = L4::Tcp { sport: 1, dport: 2, flags: ACK, seq: 3, ack: 4, window: 64240 };
    let got = Pkt::ip("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), 64, l4, b"data")
        .with(|p| p.tcp_options = opts.to_vec())
        .build();
    let mut want = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, NIC_MAC)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(1, 2, 3, 64240)
        .ack(4)
        .options(&opts)
        .unwrap()
        .write(&mut want, b"data")
        .unwrap();
    assert_eq!(got, want);
}
