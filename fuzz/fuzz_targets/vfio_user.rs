//! vfio-user messages to `sluice sim`'s server side: the vendored protocol server with the
//! sim's own backend (BAR0 on the model, configuration space, MSI-X, DMA maps), one hostile
//! client and then a good one, as `sluice sim` serves clients one after the other
//! (`sluice::sim::Sessions`).
//!
//! Input: the bytes the hostile client writes (then it closes its side and reads everything).
//!
//! Invariants:
//! - the server never panics, hangs or allocates what a header claims;
//! - what it wrote back is a sequence of whole replies, each marked as a reply;
//! - a session that ended with an error (a malformed message) ended with an error reply;
//! - the next client is served: its VERSION is answered and a read of the identity block's
//!   magic through BAR0 returns the specification's magic.
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use fuzz_harness::vfio::{self, FLAG_ERROR, FLAG_REPLY};
use libfuzzer_sys::fuzz_target;
use sim_model::device::ModelConfig;
use sluice::sim::Sessions;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

/// Serves `input` as one client and returns what the server wrote and how the session ended.
fn session(sessions: &mut Sessions, input: Vec<u8>) -> (Vec<u8>, Result<(), vfio_user::Error>) {
    let (mut client, server) = UnixStream::pair().expect("a socket pair");
    let talker = std::thread::spawn(move || {
        // The server may stop reading (a malformed message): a failed write is its business.
        let _ = client.write_all(&input);
        let _ = client.shutdown(Shutdown::Write);
        let mut out = Vec::new();
        // A server that stops reading closes with our bytes unread: ECONNRESET after its replies.
        let _ = client.read_to_end(&mut out);
        out
    });
    let result = sessions.serve(server);
    (talker.join().expect("the client thread"), result)
}

fuzz_target!(|data: &[u8]| {
    static SESSIONS: Mutex<Option<Sessions>> = Mutex::new(None);
    let mut guard = SESSIONS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let sessions = guard.get_or_insert_with(|| Sessions::new(ModelConfig::small(16)).expect("a model"));

    let (out, result) = session(sessions, data.to_vec());
    let replies = vfio::replies(&out).unwrap_or_else(|e| panic!("replies out of step: {e}"));
    for r in &replies {
        assert!(r.flags & FLAG_REPLY != 0, "a message that is not a reply: {r:?}");
    }
    if let Err(e) = &result {
        let last = replies.last().unwrap_or_else(|| panic!("session ended ({e}) without a reply"));
        assert!(last.flags & FLAG_ERROR != 0, "session ended ({e}) without an error reply: {last:?}");
    }

    let magic_at = rtl_spec::regs::identity::BASE + rtl_spec::regs::identity::MAGIC;
    let good = [vfio::version(1), vfio::region_read(2, 0, u64::from(magic_at), 4)].concat();
    let (out, result) = session(sessions, good);
    assert!(result.is_ok(), "the next client was not served: {result:?}");
    let replies = vfio::replies(&out).expect("good replies");
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[0].flags, FLAG_REPLY, "VERSION refused: {:?}", replies[0]);
    let data = &replies[1].body[16..];
    assert_eq!(data, rtl_spec::MAGIC.to_le_bytes(), "BAR0 magic read {data:02x?}");
});
