//! Packets: what the datapath does to the bytes of a frame, apart from the flow table.
//!
//! - [`headers`]: zerocopy views of the Ethernet, 802.1Q, IPv4, IPv6, TCP and UDP headers,
//!   laid over packet buffers so that reading or writing a field is reading or writing the wire;
//! - [`parse`]: [`classify`], which turns a received frame into a lookup candidate, a punt or a
//!   drop with the reasons of `rtl_spec::codes` ([`classify_into`]: the same, parsed in place);
//! - [`rewrite`]: [`build_hit_output`], the FullNAT rewrite of a flow-table hit, with RFC 1624
//!   incremental checksums and the SYN-proxy sequence translation;
//! - [`tcp_options`]: the option walk of that translation (SACK edges, timestamps);
//! - [`encap`]: the hit actions that keep the IP packet as it arrived, `Route` (DR) and
//!   `Tunnel` (TUN, IP-in-IP).
//!
//! The flow lookup, counters, events and punt steering that sit between classification and
//! rewrite belong to the device. Nothing here panics on any input: every header access is a
//! checked zerocopy view or a checked `get`.

/// The header layouts live in the contract ([`rtl_spec::wire`]): the host's slow path parses
/// the same bytes with the same views.
pub use rtl_spec::wire as headers;
pub mod encap;
pub mod parse;
pub mod rewrite;
pub mod tcp_options;

pub use encap::{build_route_output, build_tunnel_output, tunnel_overhead};
pub use parse::{Classified, Parsed, Verdict, classify, classify_into};
pub use rewrite::{SeqAdjust, build_hit_output};

/// Test fixtures shared by the parser's and the rewrite's tests: frames built by the tests'
/// frame builder over etherparse (an independent implementation, so its checksums are a real
/// check of ours) and an etherparse
/// reading of an output frame that verifies every checksum.
#[cfg(test)]
pub(crate) mod fixtures {
    use etherparse::{NetSlice, SlicedPacket, TcpOptionElement, TransportSlice};
    use proptest::prelude::*;
    use rtl_spec::formats::{FlowTuple, NextHopCtl, NextHopEntry};
    use sluice_test_support::frame::{ACK, L4, Pkt};

    /// What a test frame carries.
    #[derive(Clone, Debug)]
    pub(crate) struct Spec {
        pub(crate) ipv6: bool,
        pub(crate) tcp: bool,
        pub(crate) vlan: Option<u16>,
        pub(crate) tuple: FlowTuple,
        pub(crate) ttl: u8,
        pub(crate) seq: u32,
        pub(crate) ack: u32,
        pub(crate) sack: Vec<(u32, u32)>,
        /// A timestamp option (TSval, TSecr).
        pub(crate) ts: Option<(u32, u32)>,
        pub(crate) payload: Vec<u8>,
    }

    pub(crate) fn tuple(src: &[u8], src_port: u16, dst: &[u8], dst_port: u16) -> FlowTuple {
        let mut t =
            FlowTuple { src_port: src_port.into(), dst_port: dst_port.into(), ..FlowTuple::default() };
        t.src_addr[..src.len()].copy_from_slice(src);
        t.dst_addr[..dst.len()].copy_from_slice(dst);
        t
    }

    pub(crate) fn spec(ipv6: bool, tcp: bool, vlan: Option<u16>) -> Spec {
        let t = if ipv6 {
            tuple(&[0x20, 1, 0xD, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x77], 51000, &[0xFD; 16], 443)
        } else {
            tuple(&[203, 0, 113, 9], 51000, &[198, 51, 100, 80], 443)
        };
        Spec {
            ipv6,
            tcp,
            vlan,
            tuple: t,
            ttl: 64,
            seq: 0x1000_0000,
            ack: 0x2000_0000,
            sack: vec![],
            ts: None,
            payload: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        }
    }

    /// The frame for `s`, built (checksums included) by the tests' frame builder (etherparse),
    /// independently of this crate.
    pub(crate) fn frame(s: &Spec) -> Vec<u8> {
        let addr = |a: &[u8; 16]| -> std::net::IpAddr {
            if s.ipv6 { (*a).into() } else { <[u8; 4]>::try_from(&a[..4]).unwrap().into() }
        };
        let (sport, dport) = (s.tuple.src_port.get(), s.tuple.dst_port.get());
        let l4 = if s.tcp {
            L4::Tcp { sport, dport, flags: ACK, seq: s.seq, ack: s.ack, window: 8192 }
        } else {
            L4::Udp { sport, dport, zero_csum: false }
        };
        let mut p = Pkt::ip(addr(&s.tuple.src_addr), addr(&s.tuple.dst_addr), s.ttl, l4, &s.payload)
            .l2([0x02, 0, 0, 0, 0, 0xC1], [0x02, 0, 0, 0, 0, 0xF0])
            .with(|p| p.vlan = s.vlan);
        if let Some((val, ecr)) = s.ts {
            p.tcp_options.extend([
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::Timestamp(val, ecr),
            ]);
        }
        if let Some((&first, rest)) = s.sack.split_first() {
            let mut more = [None; 3];
            for (slot, &block) in more.iter_mut().zip(rest) {
                *slot = Some(block);
            }
            if s.ts.is_none() {
                p.tcp_options.extend([TcpOptionElement::Noop, TcpOptionElement::Noop]);
            }
            p.tcp_options.push(TcpOptionElement::SelectiveAcknowledgement(first, more));
        }
        p.build()
    }

    pub(crate) fn next_hop(vlan: Option<u16>) -> NextHopEntry {
        NextHopEntry {
            dst_mac: [0x02, 0, 0, 0, 0, 0x0D],
            src_mac: [0x02, 0, 0, 0, 0, 0x05],
            vlan_tci: vlan.unwrap_or(0).into(),
            ctl: NextHopCtl::new().with_valid(true).with_vlan(vlan.is_some()).with_port(1),
        }
    }

    /// What the output carries, read by etherparse after it checked every checksum.
    #[derive(Debug, PartialEq)]
    pub(crate) struct Seen {
        pub(crate) vlan: Option<u16>,
        pub(crate) tuple: FlowTuple,
        pub(crate) ttl: u8,
        pub(crate) seq: u32,
        pub(crate) ack: u32,
        pub(crate) sack: Vec<(u32, u32)>,
        pub(crate) ts: Option<(u32, u32)>,
        pub(crate) payload: Vec<u8>,
    }

    pub(crate) fn check(out: &[u8]) -> Seen {
        let sp = SlicedPacket::from_ethernet(out).expect("the output parses");
        let vlan = sp.vlan_ids().first().map(|v| v.value());
        let (tuple_addrs, ttl) = match sp.net.as_ref().expect("IP") {
            NetSlice::Ipv4(ip) => {
                let h = ip.header();
                assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum(), "IPv4 header checksum");
                (tuple(&h.source(), 0, &h.destination(), 0), h.ttl())
            }
            NetSlice::Ipv6(ip) => {
                let h = ip.header();
                (tuple(&h.source(), 0, &h.destination(), 0), h.hop_limit())
            }
            NetSlice::Arp(_) => panic!("ARP"),
        };
        let (src, dst) = (tuple_addrs.src_addr, tuple_addrs.dst_addr);
        let v6 = matches!(sp.net, Some(NetSlice::Ipv6(_)));
        let v4 = |a: [u8; 16]| [a[0], a[1], a[2], a[3]];
        let mut seen =
            Seen { vlan, tuple: tuple_addrs, ttl, seq: 0, ack: 0, sack: vec![], ts: None, payload: vec![] };
        match sp.transport.expect("TCP or UDP") {
            TransportSlice::Tcp(t) => {
                let want =
                    if v6 { t.calc_checksum_ipv6(src, dst) } else { t.calc_checksum_ipv4(v4(src), v4(dst)) };
                assert_eq!(t.checksum(), want.unwrap(), "TCP checksum");
                seen.tuple.src_port = t.source_port().into();
                seen.tuple.dst_port = t.destination_port().into();
                (seen.seq, seen.ack) = (t.sequence_number(), t.acknowledgment_number());
                for option in t.options_iterator() {
                    match option.unwrap() {
                        TcpOptionElement::SelectiveAcknowledgement(first, more) => {
                            seen.sack.push(first);
                            seen.sack.extend(more.iter().flatten());
                        }
                        TcpOptionElement::Timestamp(val, ecr) => seen.ts = Some((val, ecr)),
                        _ => {}
                    }
                }
                seen.payload = t.payload().to_vec();
            }
            TransportSlice::Udp(u) => {
                let h = u.to_header();
                if v6 || u.checksum() != 0 {
                    let want = if v6 {
                        h.calc_checksum_ipv6_raw(src, dst, u.payload())
                    } else {
                        h.calc_checksum_ipv4_raw(v4(src), v4(dst), u.payload())
                    };
                    assert_eq!(u.checksum(), want.unwrap(), "UDP checksum");
                }
                seen.tuple.src_port = u.source_port().into();
                seen.tuple.dst_port = u.destination_port().into();
                seen.payload = u.payload().to_vec();
            }
            other => panic!("{other:?}"),
        }
        seen
    }

    /// What `check` must see after rewriting `s` to `to` with `nh`.
    pub(crate) fn expected(s: &Spec, to: &FlowTuple, nh: &NextHopEntry) -> Seen {
        Seen {
            vlan: nh.ctl.vlan().then(|| nh.vlan_tci.get() & 0x0FFF),
            tuple: *to,
            ttl: s.ttl - 1,
            seq: if s.tcp { s.seq } else { 0 },
            ack: if s.tcp { s.ack } else { 0 },
            sack: s.sack.clone(),
            ts: s.ts,
            payload: s.payload.clone(),
        }
    }

    pub(crate) fn any_tuple(ipv6: bool) -> impl Strategy<Value = FlowTuple> {
        let alen = if ipv6 { 16 } else { 4 };
        (proptest::collection::vec(any::<u8>(), alen * 2), any::<u16>(), any::<u16>())
            .prop_map(move |(a, sp, dp)| tuple(&a[..alen], sp, &a[alen..], dp))
    }

    pub(crate) fn any_spec() -> impl Strategy<Value = Spec> {
        (any::<bool>(), any::<bool>()).prop_flat_map(|(ipv6, tcp)| {
            (
                any_tuple(ipv6),
                proptest::option::of(0u16..4096),
                2u8..=255,
                (any::<u32>(), any::<u32>()),
                (
                    proptest::collection::vec((any::<u32>(), any::<u32>()), 0..=3),
                    proptest::option::of((any::<u32>(), any::<u32>())),
                ),
                proptest::collection::vec(any::<u8>(), 0..80),
            )
                .prop_map(move |(tuple, vlan, ttl, (seq, ack), (sack, ts), payload)| Spec {
                    ipv6,
                    tcp,
                    vlan,
                    tuple,
                    ttl,
                    seq,
                    ack,
                    sack: if tcp { sack } else { vec![] },
                    ts: if tcp { ts } else { None },
                    payload,
                })
        })
    }
}
