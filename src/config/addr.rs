//! The configuration's own address notations: prefixes ([`Cidr`], `"10.10.1.1/24"`) and MAC
//! addresses ([`Mac`], `"02:00:00:00:02:11"`). Both print the way they are written, parse with
//! a reason on failure, and serialize as those strings.

use serde::{Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address with a prefix length: a port's own address and its connected network
/// (`"10.10.1.1/24"`), or a route's destination (`"0.0.0.0/0"`). Host bits may be set; see
/// [`Cidr::network`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The address as written.
    pub addr: IpAddr,
    /// The prefix length: at most 32 for IPv4, 128 for IPv6.
    pub len: u8,
}

impl Cidr {
    /// `addr/len`, or `None` when `len` is longer than the family's addresses.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        (len <= max_len(&addr)).then_some(Self { addr, len })
    }

    /// Whether `ip` is in this prefix: same family and the same first `len` bits.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.len);
                u32::from(net) & mask == u32::from(*ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.len);
                u128::from(net) & mask == u128::from(*ip) & mask
            }
            _ => false,
        }
    }

    /// The prefix with its host bits cleared (`10.10.1.1/24` → `10.10.1.0/24`).
    #[must_use]
    pub fn network(&self) -> Self {
        let addr = match self.addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask32(self.len)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask128(self.len)).into()),
        };
        Self { addr, len: self.len }
    }

    /// Whether no host bit is set (what a route's prefix must be).
    pub fn is_network(&self) -> bool {
        self.network().addr == self.addr
    }
}

/// The longest prefix of `addr`'s family.
fn max_len(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Cidr {
    /// Why the text is not a prefix, for a person.
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let Some((addr, len)) = s.split_once('/') else {
            return Err(if s.parse::<IpAddr>().is_ok() {
                "the prefix length is missing".into()
            } else {
                "no \"/\" before a prefix length".into()
            });
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("{addr:?} is not an IPv4 or IPv6 address"))?;
        let max = max_len(&addr);
        // Decimal digits only, no sign and no leading zero ("/024" is a typo, not 24).
        let canonical = !len.is_empty()
            && len.bytes().all(|b| b.is_ascii_digit())
            && (len.len() == 1 || !len.starts_with('0'));
        let len = match len.parse::<u8>() {
            Ok(len) if canonical && len <= max => len,
            _ => return Err(format!("the prefix length must be a number from 0 to {max}")),
        };
        Ok(Self { addr, len })
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An Ethernet MAC address. Prints as `02:00:00:00:02:11` (lower case, colons); parses six
/// two-digit hex groups separated by `:` or `-`, in either case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The locally administered address of a port that has neither `mac` nor `interface`:
    /// `02:00:00:00:00:NN` with NN = `index` + 1 (port 0 is `…:01`).
    pub fn for_port_index(index: u8) -> Self {
        Self([0x02, 0, 0, 0, 0, index.wrapping_add(1)])
    }

    /// Whether the address can be a port's own: not group (multicast or broadcast), not zero.
    pub fn is_unicast(self) -> bool {
        self.0[0] & 1 == 0 && self.0 != [0; 6]
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for Mac {
    /// Why the text is not a MAC address, for a person.
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let groups: Vec<&str> = s.split([':', '-']).collect();
        if groups.len() != 6 {
            return Err(format!("{} groups instead of 6", groups.len()));
        }
        let mut mac = [0u8; 6];
        for (byte, group) in mac.iter_mut().zip(&groups) {
            if group.len() != 2 || !group.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("{group:?} is not two hex digits"));
            }
            *byte = u8::from_str_radix(group, 16).map_err(|e| e.to_string())?;
        }
        Ok(Self(mac))
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
