//! Random TCP segments from both sides at a SYN-proxied VIP, through the in-process NIC: SYNs,
//! ACKs that return the cookies the proxy gave (or not), data, FINs and resets in any order,
//! servers answering (or not) with any numbers, time jumping past every timeout. Whatever
//! arrives, nothing panics, every frame the appliance sends has right checksums, and its books
//! hold together: half-open connections are among the connections, the NIC holds no more flows
//! than there are connections, and a connection listed is a connection counted.

use proptest::prelude::*;
use slowpath::sched::SchedulerKind;
use sluice_test_support::engine::*;
use sluice_test_support::frame::Seg;
use sluice_test_support::verify::{checksums, endpoints, tcp_fields};
use std::collections::HashMap;

const VIP: &str = "10.10.1.100:80";

#[derive(Clone, Debug)]
enum Step {
    /// A client segment: client port, flags, whether to acknowledge the cookie it was given,
    /// sequence offset, payload length.
    Client { port: u16, flags: u8, use_cookie: bool, seq: u32, len: usize },
    /// A server segment to the LIP port of a connection the proxy opened: which one, flags,
    /// whether to acknowledge its ISN, payload length.
    Server { which: usize, flags: u8, ack_isn: bool, len: usize },
    /// Time passes, seconds.
    Wait(u64),
}

fn flags() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(0x02),
        Just(0x10),
        Just(0x12),
        Just(0x18),
        Just(0x11),
        Just(0x04),
        Just(0x14),
        Just(0x00),
        any::<u8>()
    ]
}

/// A server mostly answers (SYN-ACK) or sends data, sometimes anything.
fn server_flags() -> impl Strategy<Value = u8> {
    prop_oneof![3 => Just(0x12), 3 => Just(0x18), 2 => flags()]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (0u16..4, flags(), prop::bool::weighted(0.8), 0u32..3, 0usize..80)
            .prop_map(|(port, flags, use_cookie, seq, len)| Step::Client { port, flags, use_cookie, seq, len }),
        4 => (0usize..4, server_flags(), prop::bool::weighted(0.8), 0usize..80)
            .prop_map(|(which, flags, ack_isn, len)| Step::Server { which, flags, ack_isn, len }),
        1 => prop_oneof![Just(1u64), Just(8), Just(40), Just(200)].prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_segments_at_a_proxied_vip_keep_the_books(steps in prop::collection::vec(step(), 1..80)) {
        let mut services = services(SchedulerKind::Rr, &[("10.10.2.11:80", 1)]);
        services[0].synproxy = true;
        let mut r = rig_with(config(1, services), 1024);
        // What the appliance told each client port (its cookie) and each server (the LIP, the
        // server and the ISN the proxy opened with).
        let mut cookies: HashMap<u16, u32> = HashMap::new();
        let mut isns: HashMap<u16, u32> = HashMap::new();
        let mut opened: Vec<(std::net::SocketAddr, std::net::SocketAddr, u32)> = Vec::new();
        for s in steps {
            let (to_clients, to_servers) = match s {
                Step::Client { port, flags, use_cookie, seq, len } => {
                    let client = format!("10.10.1.10:{}", 4000 + port);
                    let ack = if use_cookie { cookies.get(&port).map_or(1, |c| c.wrapping_add(1)) } else { 12345 };
                    // A SYN starts a new ISN; later segments follow it (or stray when not using
                    // the cookie).
                    let number = if flags & 0x17 == 0x02 {
                        let isn = 1000 * u32::from(port) + 100 * seq;
                        isns.insert(port, isn);
                        isn
                    } else if use_cookie {
                        isns.get(&port).map_or(seq, |i| i.wrapping_add(1))
                    } else {
                        seq
                    };
                    let mut seg = Seg::new(&client, VIP).seq(number).data(&vec![b'x'; len]);
                    if flags & 0x10 != 0 {
                        seg = seg.ack(ack);
                    }
                    seg = match flags & 0x17 {
                        0x02 => seg.syn(),
                        0x12 => seg.syn(),
                        0x04 | 0x14 => seg.rst(),
                        0x11 => seg.fin(),
                        _ => seg,
                    };
                    r.client_sends(seg.frame(CLIENT_MAC, P0_MAC))
                }
                Step::Server { which, flags, ack_isn, len } => {
                    let Some(&(lip, rs, isn)) = opened.get(which % opened.len().max(1)) else { continue };
                    let ack = if ack_isn { isn.wrapping_add(1) } else { 7 };
                    let mut seg = Seg::new(&rs.to_string(), &lip.to_string()).seq(90_000).data(&vec![b'y'; len]);
                    if flags & 0x10 != 0 {
                        seg = seg.ack(ack);
                    }
                    seg = match flags & 0x17 {
                        0x02 | 0x12 => seg.syn(),
                        0x04 | 0x14 => seg.rst(),
                        0x11 => seg.fin(),
                        _ => seg,
                    };
                    r.server_sends(seg.frame(RS1_MAC, P1_MAC))
                }
                Step::Wait(secs) => {
                    r.advance(secs * S);
                    (Vec::new(), Vec::new())
                }
            };
            for f in to_clients.iter().chain(&to_servers) {
                prop_assert!(checksums(f).is_ok(), "a frame with a bad checksum left: {:?}", checksums(f));
            }
            for f in &to_clients {
                if let Some((0x12, cookie, _, _)) = tcp_fields(f) {
                    let (_, client) = endpoints(f);
                    cookies.insert(client.port() - 4000, cookie);
                }
            }
            for f in &to_servers {
                if let Some((0x02, isn, _, _)) = tcp_fields(f) {
                    let (lip, rs) = endpoints(f);
                    opened.push((lip, rs, isn));
                }
            }
            let st = r.engine.stats();
            let w = &st.workers[0];
            prop_assert!(w.half_open <= w.current, "half-open {} of {} connections", w.half_open, w.current);
            prop_assert!(u64::from(r.occupancy()) <= w.current, "{} flows for {} connections", r.occupancy(), w.current);
            prop_assert_eq!(r.engine.conns(false).len() as u64, w.current);
        }
    }
}
