//! Tests of the shadow cuckoo index: the invariants after every change, make-before-break
//! plans executed step by step, and a fill-to-failure measurement.

use super::*;
use proptest::prelude::*;
use rtl_spec::formats::FlowTuple;
use rtl_spec::hash::{KeyHash, Seeds};
use std::collections::{HashMap, HashSet};

const SEED_A: u32 = 0x9E37_79B9;
const SEED_B: u32 = 0x85EB_CA6B;

/// splitmix64: reproducible random keys without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The hash of a reproducible random key (the index holds hashes; distinct random keys have
/// distinct 64-bit hashes here, so a hash stands for its key).
fn key_of(n: u64) -> KeyHash {
    Seeds { a: SEED_A, b: SEED_B }.key_hash(&lookup_key_of(n))
}

fn lookup_key_of(n: u64) -> LookupKey {
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src[..4].copy_from_slice(&(n as u32).to_be_bytes());
    dst[..4].copy_from_slice(&((n >> 32) as u32).to_be_bytes());
    let tuple = FlowTuple {
        src_addr: src,
        dst_addr: dst,
        src_port: ((n >> 16) as u16).into(),
        dst_port: (n as u16 ^ 0x5A5A).into(),
    };
    LookupKey::new(tuple, if n & 1 == 0 { 6 } else { 17 }, false)
}

/// Every entry matches: a test's hashes stand for their keys.
fn every(_: Occupant) -> bool {
    true
}

/// The tests' records, as the index's key source sees them: the hash of each record's tuples.
#[derive(Clone, Debug, Default)]
struct Keys(HashMap<(u32, bool), KeyHash>);

impl Keys {
    fn add(&mut self, e: Entry) {
        self.0.insert((e.record, e.reply), e.hash);
    }

    /// Both tuples of a record.
    fn add_record(&mut self, record: u32, orig: KeyHash, reply: KeyHash) {
        self.add(Entry { hash: orig, record, reply: false });
        self.add(Entry { hash: reply, record, reply: true });
    }

    /// The key source (zero for a record it does not know).
    fn of(&self) -> impl Fn(u32, bool) -> KeyHash + '_ {
        |record, reply| self.0.get(&(record, reply)).copied().unwrap_or_default()
    }
}

fn index(buckets: u32, stash: u32) -> ShadowIndex {
    ShadowIndex::new(buckets, 4, stash, SEED_A, SEED_B).unwrap()
}

/// An index under the contract's rule (whose second bucket is mixed, so cuckoo chains form).
fn mixed_index(buckets: u32, stash: u32) -> ShadowIndex {
    index(buckets, stash)
}

/// Every entry is in one of its buckets or the stash, `find` returns its position, no key is
/// placed twice, and the counters agree with the contents.
fn check_invariants(ix: &ShadowIndex, ks: &Keys) {
    let mut keys = HashSet::new();
    let (mut used, mut stash_used) = (0, 0);
    for (pos, e) in ix.entries(&ks.of()) {
        used += 1;
        if pos.stash() {
            stash_used += 1;
        } else {
            let p = ix.placement(e.hash);
            assert!(
                pos.index() == p.bucket_a || pos.index() == p.bucket_b,
                "{pos:?} is not a bucket of its key"
            );
        }
        assert!(keys.insert(e.hash), "key placed twice");
        // The cell agrees with the key source: the entry's own hash finds it there.
        assert_eq!(ix.find(e.hash, |o| o == e.occupant()), Some(pos));
        assert_eq!(ix.find(e.hash, every), Some(pos));
        assert_eq!(ix.find_occupant(e.occupant(), e.hash), Some(pos));
        assert_eq!(ix.get(pos, &ks.of()), Some(e));
        assert_eq!(ix.occupant(pos), Some(e.occupant()));
        let w = ix.slot_word(pos, &ks.of());
        assert!(w.word.valid());
        assert_eq!(
            (w.record.get(), w.word.reply(), w.word.sig()),
            (e.record, e.reply, ix.placement(e.hash).sig)
        );
    }
    assert_eq!(ix.used(), used);
    assert_eq!(ix.stash_used(), stash_used);
    assert!(ix.used() <= ix.capacity());
}

/// Runs `plans` on a copy of `ix` as the NIC would, one write at a time (`to` written, then
/// `from` cleared), asserting after every write that every installed key is still found.
/// The targets are occupied only at the end, as one `Insert` does.
fn execute_step_by_step(ix: &ShadowIndex, ks: &Keys, plans: &[(&Plan, Entry)]) -> ShadowIndex {
    let mut nic = ix.clone();
    let installed: Vec<KeyHash> = nic.entries(&ks.of()).map(|(_, e)| e.hash).collect();
    let all_found = |nic: &ShadowIndex| {
        for k in &installed {
            let pos = nic.find(*k, every).expect("a packet missed an installed flow");
            assert_eq!(nic.get(pos, &ks.of()).map(|e| e.hash), Some(*k));
        }
    };
    for (plan, _) in plans {
        for m in &plan.moves {
            assert!(nic.occupant(m.to).is_none(), "move onto a live slot");
            nic.occupy(m.to, m.entry).expect("legal move");
            all_found(&nic);
            assert_eq!(nic.clear(m.from), Some(m.entry.occupant()));
            all_found(&nic);
        }
    }
    for (plan, entry) in plans {
        nic.occupy(plan.target, *entry).expect("target free after the moves");
    }
    all_found(&nic);
    nic
}

/// Inserts records with random keys until one does not fit, checking everything on the way;
/// returns the index, the records placed and the total number of moves.
fn fill(ix: &mut ShadowIndex, rng: &mut Rng, max_moves: usize) -> (u32, usize) {
    let (mut record, mut moves) = (0u32, 0usize);
    let mut ks = Keys::default();
    loop {
        let (ko, kr) = (key_of(rng.next()), key_of(rng.next()));
        let before = ix.clone();
        let Some(rp) = ix.place_record(record, ko, kr, max_moves, &ks.of()) else {
            assert_eq!(slots_of(ix, &ks), slots_of(&before, &ks), "a failed record changed the index");
            return (record, moves);
        };
        assert!(rp.reply.moves.iter().all(|m| m.from != rp.orig.target && m.entry.hash != ko));
        let eo = Entry { hash: ko, record, reply: false };
        let er = Entry { hash: kr, record, reply: true };
        let nic = execute_step_by_step(&before, &ks, &[(&rp.orig, eo), (&rp.reply, er)]);
        ks.add_record(record, ko, kr);
        assert_eq!(slots_of(&nic, &ks), slots_of(ix, &ks), "the NIC's replica differs from the shadow");
        check_invariants(ix, &ks);
        moves += rp.orig.moves.len() + rp.reply.moves.len();
        record += 1;
    }
}

/// The index's contents: every entry in full, and the slot word the NIC holds for it (whose
/// signature comes from the stored half when the entry sits in its bucket_b).
fn slots_of(ix: &ShadowIndex, ks: &Keys) -> Vec<(IndexPos, Entry, IndexSlot)> {
    ix.entries(&ks.of()).map(|(p, e)| (p, e, ix.slot_word(p, &ks.of()))).collect()
}

#[test]
fn geometry_is_checked() {
    assert_eq!(ShadowIndex::new(3, 4, 0, 0, 0).err(), Some(GeometryError::Buckets(3)));
    assert_eq!(ShadowIndex::new(1, 4, 0, 0, 0).err(), Some(GeometryError::Buckets(1)));
    assert_eq!(ShadowIndex::new(0, 4, 0, 0, 0).err(), Some(GeometryError::Buckets(0)));
    assert_eq!(ShadowIndex::new(1 << 29, 4, 0, 0, 0).err(), Some(GeometryError::Buckets(1 << 29)));
    assert_eq!(ShadowIndex::new(4, 0, 0, 0, 0).err(), Some(GeometryError::SlotsPerBucket(0)));
    assert_eq!(ShadowIndex::new(4, 9, 0, 0, 0).err(), Some(GeometryError::SlotsPerBucket(9)));
    assert_eq!(ShadowIndex::new(4, 4, u32::MAX, 0, 0).err(), Some(GeometryError::Stash(u32::MAX)));
    let ix = index(16, 3);
    assert_eq!((ix.capacity(), ix.bucket_capacity(), ix.used(), ix.stash_used()), (67, 64, 0, 0));
}

#[test]
fn bucket_a_fills_first_then_bucket_b_then_cuckoo_then_stash() {
    let mut ix = index(2, 1);
    let mut ks = Keys::default();
    // With two buckets every key may use both, so 8 keys fill the buckets with no moves.
    for n in 0..8u64 {
        let k = key_of(n);
        let plan = ix.plan(k, 8, &ks.of()).unwrap();
        let p = ix.placement(k);
        assert!(plan.moves.is_empty());
        let a_free = (0..4).any(|s| ix.occupant(bucket_pos(p.bucket_a, s)).is_none());
        assert_eq!(plan.target.index(), if a_free { p.bucket_a } else { p.bucket_b });
        let e = Entry { hash: k, record: n as u32, reply: false };
        ix.apply(&plan, e).unwrap();
        ks.add(e);
    }
    let k = key_of(100);
    let plan = ix.plan(k, 8, &ks.of()).unwrap();
    assert_eq!(plan.target, stash_pos(0));
    ix.apply(&plan, Entry { hash: k, record: 100, reply: true }).unwrap();
    assert_eq!(ix.stash_used(), 1);
    assert_eq!(ix.plan(key_of(101), 8, &ks.of()), None, "full table is None");
    check_invariants(&ix, &ks);
}

#[test]
fn cuckoo_moves_make_room_and_are_make_before_break() {
    let mut ix = mixed_index(64, 0);
    let mut rng = Rng(7);
    let (records, moves) = fill(&mut ix, &mut rng, 8);
    assert!(moves > 0, "a full fill needs cuckoo moves");
    // Two slots per record; without a stash the last failure is the bucket capacity's limit.
    assert_eq!(ix.used(), records * 2);
    assert!(ix.used() * 10 >= ix.capacity() * 8, "occupancy {} of {}", ix.used(), ix.capacity());
}

#[test]
fn fill_with_stash_and_no_moves() {
    let mut rng = Rng(11);
    let mut ix = index(32, 4);
    let (_, moves) = fill(&mut ix, &mut rng, 0);
    assert_eq!(moves, 0, "max_moves 0 never moves an entry");
    assert!(ix.stash_used() > 0, "the stash takes what the buckets cannot");
    let mut deeper = index(32, 4);
    fill(&mut deeper, &mut rng, 3);
    assert!(deeper.used() >= ix.used() / 2);
}

#[test]
fn occupy_checks_as_the_nic_does() {
    let mut ix = index(16, 2);
    let k = key_of(42);
    let p = ix.placement(k);
    let e = Entry { hash: k, record: 5, reply: true };
    let mut ks = Keys::default();
    ks.add(e);
    let wrong = (0..16).find(|b| *b != p.bucket_a && *b != p.bucket_b).unwrap();
    assert_eq!(ix.occupy(bucket_pos(wrong, 0), e), Err(Status::BadPlacement));
    assert_eq!(ix.occupy(bucket_pos(16, 0), e), Err(Status::SlotOutOfRange));
    assert_eq!(ix.occupy(bucket_pos(p.bucket_a, 4), e), Err(Status::SlotOutOfRange));
    assert_eq!(ix.occupy(stash_pos(2), e), Err(Status::SlotOutOfRange));
    assert_eq!(ix.occupy(stash_pos(0).with_slot(1), e), Err(Status::SlotOutOfRange));
    assert_eq!(ix.used(), 0);
    ix.occupy(bucket_pos(p.bucket_b, 3), e).unwrap();
    assert_eq!(ix.occupy(bucket_pos(p.bucket_b, 3), e), Err(Status::SlotLive));
    assert_eq!(ix.find(k, every), Some(bucket_pos(p.bucket_b, 3)));
    let w = ix.slot_word(bucket_pos(p.bucket_b, 3), &ks.of());
    assert_eq!(w.record.get(), 5);
    assert_eq!(w.word, SlotWord::new().with_sig(p.sig).with_reply(true).with_valid(true));
    assert_eq!(ix.slot_word(bucket_pos(p.bucket_b, 2), &ks.of()), IndexSlot::default());
    assert_eq!(ix.slot_word(bucket_pos(99, 7), &ks.of()), IndexSlot::default());
    // A record an index cell cannot name is refused as the NIC refuses one beyond its table.
    let far = Entry { record: MAX_RECORDS, ..e };
    assert_eq!(ix.occupy(bucket_pos(p.bucket_a, 0), far), Err(Status::RecordOutOfRange));
    // The stash takes any key, and is searched after the buckets.
    let k2 = key_of(43);
    let e2 = Entry { hash: k2, record: 6, reply: false };
    ix.occupy(stash_pos(1), e2).unwrap();
    ks.add(e2);
    assert_eq!((ix.find(k2, every), ix.stash_used(), ix.used()), (Some(stash_pos(1)), 1, 2));
    check_invariants(&ix, &ks);
    assert_eq!(ix.clear(stash_pos(1)).map(|e| e.record), Some(6));
    assert_eq!(ix.clear(stash_pos(1)), None);
    assert_eq!(ix.clear(bucket_pos(1 << 27, 0)), None);
    assert_eq!(ix.remove(k, every).map(|(pos, _)| pos), Some(bucket_pos(p.bucket_b, 3)));
    assert_eq!((ix.used(), ix.stash_used()), (0, 0));
}

#[test]
fn stale_plans_are_refused_whole_and_undo_restores() {
    let mut ix = mixed_index(8, 1);
    let mut rng = Rng(3);
    let mut ks = Keys::default();
    // Fill until a plan needs moves (records 100 and up, one key each).
    let (plan, key) = (100..)
        .find_map(|record| {
            let k = key_of(rng.next());
            let plan = ix.plan(k, 8, &ks.of()).unwrap();
            if !plan.moves.is_empty() {
                return Some((plan, k));
            }
            let e = Entry { hash: k, record, reply: false };
            ix.apply(&plan, e).unwrap();
            ks.add(e);
            None
        })
        .unwrap();
    let e = Entry { hash: key, record: 9, reply: false };
    ks.add(e);
    let before = slots_of(&ix, &ks);
    // Occupying the plan's target makes it stale: the last move would land on a live slot...
    let mut stale = ix.clone();
    let first = plan.moves[0];
    let intruder = Entry { hash: first.entry.hash, record: 1, reply: true };
    ks.add(intruder);
    stale.occupy(first.to, intruder).unwrap();
    let snapshot = slots_of(&stale, &ks);
    assert_eq!(stale.apply(&plan, e), Err(Status::SlotLive));
    assert_eq!(slots_of(&stale, &ks), snapshot, "a refused plan changes nothing");
    // ...and a moved entry that is no longer where the plan says is a mismatch.
    let mut stale = ix.clone();
    stale.clear(first.from);
    assert_eq!(stale.apply(&plan, e), Err(Status::SlotMismatch));
    ix.apply(&plan, e).unwrap();
    check_invariants(&ix, &ks);
    assert_eq!(ix.apply(&plan, e), Err(Status::BadPlacement), "an entry is never placed twice");
    ix.undo(&plan, e).unwrap();
    assert_eq!(slots_of(&ix, &ks), before);
    assert_eq!(ix.undo(&plan, e), Err(Status::SlotMismatch));
}

#[test]
fn a_record_whose_two_keys_are_equal_is_refused() {
    let mut ix = index(8, 1);
    let mut ks = Keys::default();
    let k = key_of(1);
    assert_eq!(ix.place_record(0, k, k, 8, &ks.of()), None);
    assert_eq!(ix.used(), 0);
    let rp = ix.place_record(0, k, key_of(2), 8, &ks.of()).unwrap();
    ks.add_record(0, k, key_of(2));
    assert_ne!(rp.orig.target, rp.reply.target);
    check_invariants(&ix, &ks);
}

/// Fill-to-failure figures for the NIC's default geometry. Prints, never asserts a figure.
/// Run with `cargo test -p flow_offload --release -- --ignored --nocapture measure`.
#[test]
#[ignore = "measurement; run in release with --ignored --nocapture"]
fn measure_occupancy_and_moves() {
    for max_moves in [0usize, 4, 8, 16] {
        let rule = "contract";
        let mut ix = index(1 << 16, 64);
        let slots = f64::from(ix.bucket_capacity());
        let mut rng = Rng(0x5EED);
        let (mut record, mut keys, mut moves, mut window) = (0u32, 0u32, 0u32, (0u32, 0u32));
        let mut marks = [0.5f64, 0.9, 0.95].into_iter().peekable();
        let mut ks = Keys::default();
        let started = std::time::Instant::now();
        loop {
            let (ko, kr) = (key_of(rng.next()), key_of(rng.next()));
            let Some(rp) = ix.place_record(record, ko, kr, max_moves, &ks.of()) else { break };
            ks.add_record(record, ko, kr);
            let m = (rp.orig.moves.len() + rp.reply.moves.len()) as u32;
            (keys, moves, record) = (keys + 2, moves + m, record + 1);
            window = (window.0 + 2, window.1 + m);
            if let Some(mark) = marks.peek().copied() {
                if f64::from(ix.used()) >= mark * slots {
                    println!(
                        "{rule}, max_moves {max_moves:2}: at {:.0}% of slots: mean moves/key {:.4} overall, {:.4} since the last mark; stash {}",
                        mark * 100.0,
                        f64::from(moves) / f64::from(keys),
                        f64::from(window.1) / f64::from(window.0),
                        ix.stash_used()
                    );
                    window = (0, 0);
                    marks.next();
                }
            }
        }
        println!(
            "{rule}, max_moves {max_moves:2}: first failure at record {record}: {} of {} positions used ({:.2}%), bucket slots {:.2}%, stash {}/64, mean moves/key {:.4}, {:.2?}",
            ix.used(),
            ix.capacity(),
            100.0 * f64::from(ix.used()) / f64::from(ix.capacity()),
            100.0 * f64::from(ix.used() - ix.stash_used()) / slots,
            ix.stash_used(),
            f64::from(moves) / f64::from(keys),
            started.elapsed()
        );
        check_invariants(&ix, &ks);
    }
}

#[derive(Clone, Debug)]
enum Action {
    Insert(u64),
    /// Remove the record inserted this many records ago (modulo the live count).
    Remove(usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![3 => any::<u64>().prop_map(Action::Insert), 1 => any::<usize>().prop_map(Action::Remove)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_inserts_and_removes_keep_the_invariants(
        actions in proptest::collection::vec(action(), 1..160),
        max_moves in 0usize..6,
        mixed in any::<bool>(),
    ) {
        // The contract's rule never moves anything; the mixed rule exercises the moves.
        let mut ix = if mixed { mixed_index(8, 2) } else { index(8, 2) };
        let mut live: Vec<(KeyHash, KeyHash)> = Vec::new();
        let mut ks = Keys::default();
        for (record, a) in actions.into_iter().enumerate() {
            match a {
                Action::Insert(n) => {
                    let mut rng = Rng(n);
                    let (ko, kr) = (key_of(rng.next()), key_of(rng.next()));
                    let before = ix.clone();
                    let placed = ix.place_record(record as u32, ko, kr, max_moves, &ks.of());
                    if let Some(rp) = placed {
                        let eo = Entry { hash: ko, record: record as u32, reply: false };
                        let er = Entry { hash: kr, record: record as u32, reply: true };
                        let nic = execute_step_by_step(&before, &ks, &[(&rp.orig, eo), (&rp.reply, er)]);
                        ks.add_record(record as u32, ko, kr);
                        prop_assert_eq!(slots_of(&nic, &ks), slots_of(&ix, &ks));
                        prop_assert!(rp.orig.moves.len() <= max_moves && rp.reply.moves.len() <= max_moves);
                        live.push((ko, kr));
                    } else {
                        prop_assert_eq!(slots_of(&ix, &ks), slots_of(&before, &ks));
                    }
                }
                Action::Remove(i) if !live.is_empty() => {
                    let (ko, kr) = live.swap_remove(i % live.len());
                    prop_assert!(ix.remove(ko, every).is_some());
                    prop_assert!(ix.remove(kr, every).is_some());
                    prop_assert_eq!(ix.find(ko, every), None);
                }
                Action::Remove(_) => {}
            }
            check_invariants(&ix, &ks);
            prop_assert_eq!(ix.used() as usize, live.len() * 2);
            for (ko, kr) in &live {
                prop_assert!(ix.find(*ko, every).is_some() && ix.find(*kr, every).is_some());
            }
        }
    }
}

#[test]
fn a_bucket_slot_is_8_bytes() {
    // Two slots per record in the usual geometry: 16 of the shadow's bytes per record. Growing
    // the cell is a decision, not an accident.
    assert_eq!(std::mem::size_of::<super::cell::Cell>(), 8);
}
