//! ARP and IPv6 neighbour discovery at the engine: the appliance answers for the VIPs and LIPs
//! it owns (and the peers' LIPs it took over, see `sync`), learns its neighbours from what they send, and leaves its own port addresses to the
//! host's interface (the kernel answers for them), answering for them itself only when the
//! port has no host interface.

use super::Engine;
use crate::emit;
use crate::emit::L2;
use crate::packet::{self, L3, L4};
use rtl_spec::wire::{
    ARP_HTYPE_ETHERNET, ArpHeader, ETHERTYPE_IPV4, ICMPV6_NEIGHBOR_ADVERT, ICMPV6_NEIGHBOR_SOLICIT,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use zerocopy::FromBytes;

impl Engine {
    /// Whether the slow path answers for `a` (a VIP or LIP, or a port address of a port with
    /// no host interface).
    fn answers_for(&self, port: u8, a: IpAddr) -> bool {
        if self.table.is_vip(a) || self.table.is_lip(a) || self.taken.contains(&a) {
            return true;
        }
        self.net.own_port_address(a) == Some(port)
            && self.host.get(usize::from(port)).is_none_or(Option::is_none)
    }

    fn is_host_address(&self, port: u8, a: IpAddr) -> bool {
        self.net.own_port_address(a) == Some(port)
            && self.host.get(usize::from(port)).is_some_and(Option::is_some)
    }

    /// An ARP or neighbour-discovery frame from port `port`.
    pub(super) fn handle_neighbor(&mut self, port: u8, frame: &[u8], now_ns: u64) {
        let Ok(pkt) = packet::parse(frame) else { return };
        match pkt.net {
            L3::Arp => self.arp(port, frame, pkt.l3, now_ns),
            L3::Ip(ip) if ip.is_v6() => {
                if let L4::Icmp { kind, .. } = pkt.l4 {
                    let body = frame.get(ip.l4..ip.end).unwrap_or(&[]);
                    self.nd(port, frame, pkt.src_mac, ip.src, ip.dst, kind, body, now_ns);
                }
            }
            _ => {}
        }
    }

    fn arp(&mut self, port: u8, frame: &[u8], l3: usize, now_ns: u64) {
        let Some(Ok((a, _))) = frame.get(l3..).map(ArpHeader::ref_from_prefix) else { return };
        if a.htype.get() != ARP_HTYPE_ETHERNET
            || a.ptype.get() != ETHERTYPE_IPV4
            || a.hlen != 6
            || a.plen != 4
        {
            return;
        }
        let (spa, tpa) = (IpAddr::V4(Ipv4Addr::from(a.spa)), IpAddr::V4(Ipv4Addr::from(a.tpa)));
        let (sha, oper) = (a.sha, a.oper.get());
        let on_link = self
            .net
            .ports()
            .get(usize::from(port))
            .is_some_and(|p| p.addresses.iter().any(|x| x.contains(spa)));
        let owned = self.answers_for(port, tpa);
        if !spa.is_unspecified() && (on_link || owned) {
            self.net.learn(port, spa, sha, now_ns, false);
            self.flush_network();
        }
        if self.is_host_address(port, tpa) {
            return self.hand_to_host(port, frame);
        }
        if oper == ArpHeader::REQUEST && owned {
            let Some(mac) = self.net.ports().get(usize::from(port)).map(|p| p.mac) else { return };
            let IpAddr::V4(t) = tpa else { return };
            let IpAddr::V4(s) = spa else { return };
            let reply = emit::arp(&L2 { dst: sha, src: mac, vlan: None }, ArpHeader::REPLY, mac, t, sha, s);
            self.net.count_answer();
            self.inject(port, &reply);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn nd(
        &mut self,
        port: u8,
        frame: &[u8],
        src_mac: [u8; 6],
        src: IpAddr,
        dst: IpAddr,
        kind: u8,
        body: &[u8],
        now_ns: u64,
    ) {
        let target =
            body.get(8..24).and_then(|t| <[u8; 16]>::try_from(t).ok()).map(|t| IpAddr::V6(Ipv6Addr::from(t)));
        match kind {
            ICMPV6_NEIGHBOR_SOLICIT => {
                let Some(target) = target else { return };
                let lladdr = emit::nd_lladdr(body, 1).unwrap_or(src_mac);
                if !src.is_unspecified() {
                    self.net.learn(port, src, lladdr, now_ns, false);
                    self.flush_network();
                }
                if self.is_host_address(port, target) {
                    return self.hand_to_host(port, frame);
                }
                if !self.answers_for(port, target) {
                    return;
                }
                let Some(mac) = self.net.ports().get(usize::from(port)).map(|p| p.mac) else { return };
                let (IpAddr::V6(t), IpAddr::V6(s)) = (target, src) else { return };
                let (to, to_mac, solicited) = if s.is_unspecified() {
                    let all: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
                    (all, emit::multicast_mac(all), false)
                } else {
                    (s, lladdr, true)
                };
                let na = emit::neighbor_advert(t, to, mac, solicited);
                self.net.count_answer();
                self.inject(port, &emit::frame(&L2 { dst: to_mac, src: mac, vlan: None }, &na));
            }
            ICMPV6_NEIGHBOR_ADVERT => {
                if let Some(target) = target {
                    let lladdr = emit::nd_lladdr(body, 2).unwrap_or(src_mac);
                    self.net.learn(port, target, lladdr, now_ns, false);
                    self.flush_network();
                }
                if self.is_host_address(port, dst) || dst.is_multicast() {
                    self.hand_to_host(port, frame);
                }
            }
            // Router solicitations and advertisements, redirects: the host's business.
            _ => self.hand_to_host(port, frame),
        }
    }
}
