//! The service set's snapshots: what they carry over, what they rebuild, what survives them.

use super::*;

fn key() -> ServiceKey {
    ServiceKey { vip: "10.10.1.100:80".parse().unwrap(), proto: Proto::Tcp }
}

fn cfg() -> ServiceConfig {
    ServiceConfig {
        key: key(),
        scheduler: SchedulerKind::Rr,
        forward: Forward::FullNat,
        local_addresses: vec!["10.10.2.1".parse().unwrap()],
        conn_limit: 0,
        synproxy: false,
        synproxy_offer: crate::synproxy::Offer::default(),
        proxy_protocol: None,
        health: None,
        backends: vec![BackendConfig { addr: "10.10.2.11:80".parse().unwrap(), weight: 1 }],
    }
}

#[test]
fn a_snapshot_rebuilds_only_the_schedulers_whose_inputs_changed() {
    let mut s = Services::default();
    s.add_service(cfg()).unwrap();
    let other = ServiceKey { vip: "10.10.1.101:80".parse().unwrap(), proto: Proto::Tcp };
    s.add_service(ServiceConfig { key: other, ..cfg() }).unwrap();
    let epochs = |t: &ServiceTable| t.services.iter().map(|v| v.scheduler_epoch).collect::<Vec<_>>();
    let t1 = s.snapshot();
    let rs: SocketAddr = "10.10.2.11:80".parse().unwrap();
    assert!(s.set_health(&other, rs, false));
    let t2 = s.snapshot();
    assert_eq!(epochs(&t2)[0], epochs(&t1)[0], "untouched: carried over");
    assert_ne!(epochs(&t2)[1], epochs(&t1)[1], "its server failed: rebuilt");
    s.set_weight(&key(), rs, 5).unwrap();
    let t3 = s.snapshot();
    assert_ne!(epochs(&t3)[0], epochs(&t2)[0], "a weight changed: rebuilt");
    assert_eq!(epochs(&t3)[1], epochs(&t2)[1]);
    // Removed and added again: a fresh build, never the old one's.
    s.del_service(&other).unwrap();
    let _ = s.snapshot();
    s.add_service(ServiceConfig { key: other, ..cfg() }).unwrap();
    let t5 = s.snapshot();
    assert!(!epochs(&t3).contains(&epochs(&t5)[1]));
}

#[test]
fn changes_make_new_snapshots_and_counters_survive_them() {
    let mut s = Services::default();
    s.add_service(cfg()).unwrap();
    assert_eq!(s.add_service(cfg()), Err(ServiceError::ServiceExists(key())));
    let t1 = s.snapshot();
    let (_, svc) = t1.find(&key()).unwrap();
    svc.backends[0].stats.active.fetch_add(3, Ordering::Relaxed);
    let rs: SocketAddr = "10.10.2.11:80".parse().unwrap();
    s.set_weight(&key(), rs, 5).unwrap();
    s.add_backend(&key(), BackendConfig { addr: "10.10.2.12:80".parse().unwrap(), weight: 1 }).unwrap();
    let t2 = s.snapshot();
    assert!(t2.version > t1.version);
    let (_, svc2) = t2.find(&key()).unwrap();
    assert_eq!(svc2.backends.len(), 2);
    assert_eq!(svc2.backends[0].weight, 5);
    assert_eq!(svc2.views()[0].active, 3, "counters outlive the snapshot");
    assert_eq!(t1.find(&key()).unwrap().1.backends.len(), 1, "the old snapshot is untouched");
    assert!(t2.is_vip("10.10.1.100".parse().unwrap()));
    assert!(t2.is_lip("10.10.2.1".parse().unwrap()));
}

#[test]
fn health_and_errors() {
    let mut s = Services::default();
    s.add_service(cfg()).unwrap();
    let rs: SocketAddr = "10.10.2.11:80".parse().unwrap();
    assert!(s.is_up(&key(), rs));
    assert!(!s.set_health(&key(), rs, true), "up is the starting state");
    assert!(s.set_health(&key(), rs, false));
    assert!(!s.snapshot().find(&key()).unwrap().1.backends[0].up);
    let v6: SocketAddr = "[fd00::1]:80".parse().unwrap();
    assert_eq!(
        s.add_backend(&key(), BackendConfig { addr: v6, weight: 1 }),
        Err(ServiceError::MixedFamilies(key(), v6.ip())),
        "an IPv6 server behind an IPv4 VIP would leave as a corrupt packet"
    );
    assert!(s.del_backend(&key(), v6).is_err());
    s.del_backend(&key(), rs).unwrap();
    s.del_service(&key()).unwrap();
    assert!(s.snapshot().services.is_empty());
}

/// A control-plane change, as the daemon's control socket and health checker make them.
#[derive(Clone, Debug)]
enum Change {
    Health(usize, usize, bool),
    Weight(usize, usize, u32),
    AddServer(usize, usize),
    DelServer(usize, usize),
    Readd(usize),
}

fn change() -> impl proptest::strategy::Strategy<Value = Change> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0usize..3, 0usize..6, any::<bool>()).prop_map(|(s, b, up)| Change::Health(s, b, up)),
        2 => (0usize..3, 0usize..6, 0u32..5).prop_map(|(s, b, w)| Change::Weight(s, b, w)),
        1 => (0usize..3, 0usize..6).prop_map(|(s, b)| Change::AddServer(s, b)),
        1 => (0usize..3, 0usize..6).prop_map(|(s, b)| Change::DelServer(s, b)),
        1 => (0usize..3).prop_map(Change::Readd),
    ]
}

proptest::proptest! {
    /// Through any run of changes, a worker's schedulers (carried over or fresh) line up with
    /// the snapshot's services, pick only servers that can take connections, and say "none"
    /// only when none can; a carried-over one is the worker's own copy, still at its position.
    #[test]
    fn carried_schedulers_pick_only_what_the_snapshot_allows(
        kinds in proptest::collection::vec(0usize..6, 3),
        changes in proptest::collection::vec(change(), 1..40),
    ) {
        let mut s = Services::default();
        let svc_key = |i: usize| ServiceKey { vip: SocketAddr::new("10.10.1.100".parse().unwrap(), 80 + i as u16), proto: Proto::Tcp };
        let rs = |b: usize| -> SocketAddr { format!("10.10.2.{}:80", 11 + b).parse().unwrap() };
        let config = |i: usize| ServiceConfig {
            key: svc_key(i),
            scheduler: SchedulerKind::ALL[kinds[i]],
            backends: (0..3).map(|b| BackendConfig { addr: rs(b), weight: 1 + b as u32 }).collect(),
            ..cfg()
        };
        for i in 0..3 {
            s.add_service(config(i)).unwrap();
        }
        let mut table = s.snapshot();
        let mut mine: Vec<Box<dyn Scheduler>> = table.services.iter().map(|v| v.scheduler.clone_box()).collect();
        for c in changes {
            match c {
                Change::Health(i, b, up) => { s.set_health(&svc_key(i), rs(b), up); }
                Change::Weight(i, b, w) => { let _ = s.set_weight(&svc_key(i), rs(b), w); }
                Change::AddServer(i, b) => { let _ = s.add_backend(&svc_key(i), BackendConfig { addr: rs(b), weight: 2 }); }
                Change::DelServer(i, b) => { let _ = s.del_backend(&svc_key(i), rs(b)); }
                Change::Readd(i) => {
                    let _ = s.del_service(&svc_key(i));
                    s.add_service(config(i)).unwrap();
                }
            }
            let next = s.snapshot();
            mine = carry_schedulers(&table, mine, &next);
            table = next;
            proptest::prop_assert_eq!(mine.len(), table.services.len());
            for (sched, svc) in mine.iter_mut().zip(&table.services) {
                proptest::prop_assert_eq!(sched.kind(), svc.config.scheduler);
                let any = svc.backends.iter().any(|b| b.weight > 0 && b.up);
                for h in 0..4u64 {
                    match sched.pick(svc, h.wrapping_mul(0x9E37_79B9_7F4A_7C15)) {
                        Some(b) => proptest::prop_assert!(svc.backends[b].weight > 0 && svc.backends[b].up),
                        None => proptest::prop_assert!(!any, "none picked in {:?}", svc.config.key),
                    }
                }
            }
        }
    }
}
