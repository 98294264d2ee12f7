//! Resource bounds under attack, through the in-process NIC: a client address is held to its
//! half-open bound (`half_open_per_source`) while other clients still connect, and the bound
//! frees as its connections complete or time out.

use slowpath::sched::SchedulerKind;
use sluice_test_support::engine::*;
use sluice_test_support::frame::Seg;
use sluice_test_support::verify::endpoints;

const VIP: &str = "10.10.1.100:80";

#[test]
fn one_source_is_held_to_its_half_open_bound_and_others_are_not() {
    let mut cfg = config(1, services(SchedulerKind::Rr, &[("10.10.2.11:80", 1)]));
    cfg.half_open_per_source = 2;
    let mut r = rig_with(cfg, 1024);
    let syn = |r: &mut Rig, client: &str| {
        r.client_sends(Seg::new(client, VIP).syn().seq(1).frame(CLIENT_MAC, P0_MAC)).1
    };
    assert_eq!(syn(&mut r, "10.10.1.10:1000").len(), 1);
    let second = syn(&mut r, "10.10.1.10:1001");
    assert_eq!(second.len(), 1);
    assert!(syn(&mut r, "10.10.1.10:1002").is_empty(), "a third half-open connection from one address");
    assert_eq!(r.drops("half_open_source"), 1);
    assert_eq!(syn(&mut r, "10.10.1.20:1000").len(), 1, "another address is not held back");
    // One of the two completes its handshake: the source may open another.
    let (lip, rs) = endpoints(&second[0]);
    r.server_sends(Seg::new(&rs.to_string(), &lip.to_string()).syn().ack(2).seq(50).frame(RS1_MAC, P1_MAC));
    r.client_sends(Seg::new("10.10.1.10:1001", VIP).ack(51).seq(2).frame(CLIENT_MAC, P0_MAC));
    assert_eq!(syn(&mut r, "10.10.1.10:1003").len(), 1, "room again after a handshake completed");
    assert!(syn(&mut r, "10.10.1.10:1004").is_empty());
    // Half-open connections time out (SYN_RECV, 30 s): the source's count goes with them.
    r.advance(31 * S);
    assert_eq!(syn(&mut r, "10.10.1.10:1005").len(), 1, "room again after the timeout");
    assert_eq!(r.drops("half_open_source"), 2);
}
