//! Addresses as the NIC stores them and as people write them: `IpAddr` to and from the
//! 16-byte form of [`FlowTuple`] (IPv4 in bytes 0..4, the rest zero), endpoints, and the
//! stable hashes the slow path keys on.

use rtl_spec::formats::FlowTuple;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 16-byte form of an address.
pub fn to_bytes(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            b
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address of a 16-byte form, of the family given.
pub fn from_bytes(b: &[u8; 16], ipv6: bool) -> IpAddr {
    if ipv6 { IpAddr::V6(Ipv6Addr::from(*b)) } else { IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])) }
}

/// A tuple from two endpoints of one family.
pub fn tuple(src: SocketAddr, dst: SocketAddr) -> FlowTuple {
    FlowTuple {
        src_addr: to_bytes(src.ip()),
        dst_addr: to_bytes(dst.ip()),
        src_port: src.port().into(),
        dst_port: dst.port().into(),
    }
}

/// The source endpoint of a tuple.
pub fn src_of(t: &FlowTuple, ipv6: bool) -> SocketAddr {
    SocketAddr::new(from_bytes(&t.src_addr, ipv6), t.src_port.get())
}

/// The destination endpoint of a tuple.
pub fn dst_of(t: &FlowTuple, ipv6: bool) -> SocketAddr {
    SocketAddr::new(from_bytes(&t.dst_addr, ipv6), t.dst_port.get())
}

pub use crate::sched::mix64;

/// A stable hash of an address (the source-hash and Maglev key of a client).
pub fn hash_addr(a: IpAddr) -> u64 {
    let b = to_bytes(a);
    let hi = u64::from_be_bytes(b[..8].try_into().unwrap_or([0; 8]));
    let lo = u64::from_be_bytes(b[8..].try_into().unwrap_or([0; 8]));
    mix64(hi ^ mix64(lo ^ u64::from(a.is_ipv6())))
}

/// A stable hash of an endpoint (a real server's identity for the schedulers).
pub fn hash_endpoint(e: SocketAddr) -> u64 {
    mix64(hash_addr(e.ip()) ^ u64::from(e.port()))
}

/// A fast hasher for the connection tables (keys are tuples chosen by clients, so a keyed
/// hash would resist collision attacks better; the tables are per worker and bounded by the
/// half-open limit, and SipHash costs a visible share of the first-packet path).
#[derive(Clone, Copy, Debug, Default)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        mix64(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = mix64(self.0 ^ u64::from_le_bytes(b)).wrapping_add(chunk.len() as u64);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = self.0.rotate_left(8) ^ u64::from(i);
    }
    fn write_u16(&mut self, i: u16) {
        self.0 = self.0.rotate_left(16) ^ u64::from(i);
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = mix64(self.0 ^ u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = mix64(self.0 ^ i);
    }
    fn write_usize(&mut self, i: usize) {
        self.0 = mix64(self.0 ^ i as u64);
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;
/// A set with the fast hasher (see [`FastMap`]).
pub type FastSet<K> = std::collections::HashSet<K, std::hash::BuildHasherDefault<FastHasher>>;

/// The family's "unspecified" address.
pub fn unspecified(ipv6: bool) -> IpAddr {
    if ipv6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_the_nic_form() {
        let v4: IpAddr = "10.10.1.100".parse().unwrap();
        let b = to_bytes(v4);
        assert_eq!(b[..4], [10, 10, 1, 100]);
        assert_eq!(b[4..], [0; 12]);
        assert_eq!(from_bytes(&b, false), v4);
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(from_bytes(&to_bytes(v6), true), v6);
        let t = tuple("1.2.3.4:5".parse().unwrap(), "6.7.8.9:10".parse().unwrap());
        assert_eq!(src_of(&t, false).to_string(), "1.2.3.4:5");
        assert_eq!(dst_of(&t, false).to_string(), "6.7.8.9:10");
    }

    #[test]
    fn hashes_are_fixed() {
        // `mix64` is pinned by the scheduler's tests; these hashes are built on it.
        assert_ne!(hash_addr("10.0.0.1".parse().unwrap()), hash_addr("10.0.0.2".parse().unwrap()));
    }
}
