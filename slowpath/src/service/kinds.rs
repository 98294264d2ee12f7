//! The two words that say how a service's packets are handled: its transport protocol
//! ([`Proto`]) and how its connections are forwarded ([`Forward`], LVS's four modes).

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
}

impl Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
    /// The protocol of a number.
    pub fn from_number(n: u8) -> Option<Proto> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            _ => None,
        }
    }
    /// "tcp" or "udp".
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// How a service forwards its connections: LVS's four modes.
///
/// - `FullNat`: client → VIP becomes LIP → server, and back (the server sees a LIP).
/// - `Nat` (LVS "Masq"): only the destination changes on the way in and only the source on the
///   way out; the server sees the client's address and must route its replies through the
///   balancer. No LIP or local port is used.
/// - `Dr` (LVS "Route"): the packet is sent unchanged to the server's MAC; the server holds the
///   VIP itself (on `lo`) and answers the client directly.
/// - `Tun` (LVS "Tunnel"): the packet is sent unchanged inside an IP-in-IP header (IPv4 in
///   IPv4, IPv6 in IPv6) from the service's local address of the server's family to the
///   server, which decapsulates it and answers the client directly.
///
/// DR and TUN are one-way: the balancer sees only the client's packets, and the connection's
/// state follows them ([`crate::conn::TcpState::next_one_way`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Forward {
    /// FullNAT (the default).
    #[default]
    FullNat,
    /// NAT (DNAT only).
    Nat,
    /// Direct routing.
    Dr,
    /// IP-in-IP tunnelling.
    Tun,
}

impl Forward {
    /// Every mode, in the order the configuration documents them.
    pub const ALL: [Forward; 4] = [Forward::FullNat, Forward::Nat, Forward::Dr, Forward::Tun];

    /// The configuration's word: "fullnat", "nat", "dr" or "tun".
    pub fn as_str(self) -> &'static str {
        match self {
            Forward::FullNat => "fullnat",
            Forward::Nat => "nat",
            Forward::Dr => "dr",
            Forward::Tun => "tun",
        }
    }

    /// The mode of a configuration word.
    pub fn parse(s: &str) -> Option<Forward> {
        Forward::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// ipvsadm's word for it (`Masq`, `Route`, `Tunnel`; `FullNat` as DPVS's ipvsadm prints it).
    pub fn ipvs_word(self) -> &'static str {
        match self {
            Forward::FullNat => "FullNat",
            Forward::Nat => "Masq",
            Forward::Dr => "Route",
            Forward::Tun => "Tunnel",
        }
    }

    /// The server answers the client directly: the balancer sees one direction only.
    pub fn one_way(self) -> bool {
        matches!(self, Forward::Dr | Forward::Tun)
    }

    /// The connection takes a local address and port (FullNAT only).
    pub fn uses_lip(self) -> bool {
        self == Forward::FullNat
    }
}

impl std::fmt::Display for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
