//! Tests of the capture-file ports (kept apart from `pcap.rs` to keep both files readable).

use std::borrow::Cow;
use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::simple_packet::SimplePacketBlock;
use proptest::prelude::*;

use super::*;

/// A UDP frame whose payload is `tag` repeated, so frames are told apart.
fn frame(tag: u8, payload_len: usize) -> Vec<u8> {
    let payload = vec![tag; payload_len];
    sluice_test_support::frame::udp(
        "10.0.0.1:1000",
        "10.0.0.2:2000",
        64,
        &payload,
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
    )
}

fn read_all(source: &mut PcapSource) -> io::Result<Vec<RxFrame>> {
    let mut frames = Vec::new();
    while let Some(f) = source.next_frame()? {
        frames.push(f);
    }
    Ok(frames)
}

/// Writes `frames` (with timestamps) to a classic pcap file.
fn write_pcap(path: &Path, frames: &[(Vec<u8>, u64)], nanosecond: bool) {
    let mut sink = PcapSink::create(path, nanosecond).unwrap();
    for (data, ts) in frames {
        sink.write(data, *ts).unwrap();
    }
    assert_eq!(sink.packets_written(), frames.len() as u64);
}

const T0: u64 = 1_700_000_000_123_456_789;

#[test]
fn classic_pcap_round_trips_in_both_resolutions() {
    let dir = tempfile::tempdir().unwrap();
    let frames: Vec<(Vec<u8>, u64)> =
        (0..5u8).map(|i| (frame(i, 10 + usize::from(i)), T0 + u64::from(i) * 1500)).collect();
    for nanosecond in [false, true] {
        let path = dir.path().join(format!("rt-{nanosecond}.pcap"));
        write_pcap(&path, &frames, nanosecond);
        let mut source = PcapSource::open(&path).unwrap();
        let got = read_all(&mut source).unwrap();
        assert_eq!(got.len(), frames.len());
        for (rx, (data, ts)) in got.iter().zip(&frames) {
            assert_eq!(&rx.data, data);
            let want = if nanosecond { *ts } else { ts / 1000 * 1000 };
            assert_eq!(rx.timestamp_ns, Some(want));
        }
        assert_eq!(source.truncated_frames(), 0);
        assert!(source.next_frame().unwrap().is_none(), "end of file stays the end");
    }
}

#[test]
fn a_file_cut_in_the_middle_of_a_record_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.pcap");
    let frames: Vec<(Vec<u8>, u64)> = (0..3u8).map(|i| (frame(i, 40), T0)).collect();
    write_pcap(&path, &frames, false);
    let full = std::fs::read(&path).unwrap();
    // Header 24 bytes, then records of 16 + frame bytes: cut in the middle of record 3's data.
    let rec = 16 + frames[0].0.len();
    let cut = 24 + 2 * rec + 16 + 10;
    std::fs::write(&path, &full[..cut]).unwrap();

    let mut source = PcapSource::open(&path).unwrap();
    assert_eq!(source.next_frame().unwrap().unwrap().data, frames[0].0);
    assert_eq!(source.next_frame().unwrap().unwrap().data, frames[1].0);
    let err = source.next_frame().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let msg = err.to_string();
    assert!(msg.contains("cut.pcap") && msg.contains("record 3") && msg.contains("truncated"), "{msg}");

    // Through the port: the good frames come first, the error on the next call, then nothing.
    let mut port = PcapPort::new(Some(PcapSource::open(&path).unwrap()), None);
    let mut out = RxBurst::default();
    assert_eq!(port.recv_burst(&mut out, 10).unwrap(), 2);
    assert!(!port.is_exhausted());
    assert!(port.recv_burst(&mut out, 10).is_err());
    assert_eq!(port.recv_burst(&mut out, 10).unwrap(), 0);
    assert!(port.is_exhausted());

    // Cut inside a record header too.
    std::fs::write(&path, &full[..24 + rec + 7]).unwrap();
    let mut source = PcapSource::open(&path).unwrap();
    assert!(source.next_frame().unwrap().is_some());
    assert!(source.next_frame().unwrap_err().to_string().contains("record 2"));
}

#[test]
fn bad_headers_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.pcap");
    for (bytes, expect) in [
        (&b""[..], "too short"),
        (&b"\xd4\xc3\xb2\xa1\x02\x00"[..], "truncated"),
        (&b"GIF89a-not-a-capture-at-all"[..], "not a pcap or pcapng file"),
        (&b"\x0a\x0d\x0d\x0a\x00\x00"[..], "truncated"),
    ] {
        std::fs::write(&path, bytes).unwrap();
        let msg = PcapSource::open(&path).unwrap_err().to_string();
        assert!(msg.contains("bad.pcap") && msg.contains(expect), "{expect}: {msg}");
    }
    let msg = PcapSource::open(dir.path().join("missing.pcap")).unwrap_err().to_string();
    assert!(msg.contains("missing.pcap"), "{msg}");
}

#[test]
fn other_link_types_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.pcap");
    let header = PcapHeader { datalink: DataLink::LINUX_SLL, ..PcapHeader::default() };
    let mut writer = PcapWriter::with_header(File::create(&path).unwrap(), header).unwrap();
    writer.write_packet(&PcapPacket::new(Duration::ZERO, 4, &[0, 1, 2, 3])).unwrap();
    drop(writer);
    let msg = PcapSource::open(&path).unwrap_err().to_string();
    assert!(msg.contains("raw.pcap") && msg.contains("LINUX_SLL") && msg.contains("(113)"), "{msg}");

    let path = dir.path().join("raw.pcapng");
    let mut writer = PcapNgWriter::new(File::create(&path).unwrap()).unwrap();
    writer
        .write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::RAW,
            snaplen: 0,
            options: vec![],
        })
        .unwrap();
    drop(writer);
    let msg = PcapSource::open(&path).unwrap_err().to_string();
    assert!(msg.contains("raw.pcapng") && msg.contains("RAW"), "{msg}");
}

/// A pcapng file with a microsecond interface, a nanosecond interface with a time offset and a
/// simple packet; returns the frames and their expected timestamps.
fn write_pcapng(path: &Path) -> Vec<(Vec<u8>, Option<u64>)> {
    let mut writer = PcapNgWriter::new(File::create(path).unwrap()).unwrap();
    writer
        .write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options: vec![],
        })
        .unwrap();
    writer
        .write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 65535,
            options: vec![
                InterfaceDescriptionOption::IfTsResol(9),
                InterfaceDescriptionOption::IfTsOffset(100),
            ],
        })
        .unwrap();
    let (a, b, c) = (frame(1, 20), frame(2, 21), frame(3, 23));
    // pcap-file writes `timestamp.as_nanos()` as the raw count of the interface's units.
    let epb = |iface: u32, raw: u64, data: &Vec<u8>| EnhancedPacketBlock {
        interface_id: iface,
        timestamp: Duration::from_nanos(raw),
        original_len: data.len() as u32,
        data: Cow::Owned(data.clone()),
        options: vec![],
    };
    writer.write_pcapng_block(epb(0, 1_700_000_000_000_001, &a)).unwrap();
    writer.write_pcapng_block(epb(1, 5, &b)).unwrap();
    writer
        .write_pcapng_block(SimplePacketBlock { original_len: c.len() as u32, data: Cow::Owned(c.clone()) })
        .unwrap();
    vec![(a, Some(1_700_000_000_000_001_000)), (b, Some(100_000_000_005)), (c, None)]
}

#[test]
fn pcapng_is_read_with_each_interfaces_time_units() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.pcapng");
    let want = write_pcapng(&path);
    let mut source = PcapSource::open(&path).unwrap();
    let got = read_all(&mut source).unwrap();
    assert_eq!(got.len(), want.len());
    for (rx, (data, ts)) in got.iter().zip(&want) {
        assert_eq!(&rx.data, data, "simple packet padding must be cut off");
        assert_eq!(rx.timestamp_ns, *ts);
    }
}

#[test]
fn pcapng_cut_in_a_block_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.pcapng");
    write_pcapng(&path);
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() - 30]).unwrap();
    let mut source = PcapSource::open(&path).unwrap();
    let err = read_all(&mut source).unwrap_err().to_string();
    assert!(err.contains("cut.pcapng") && err.contains("truncated"), "{err}");
}

#[test]
fn pcapng_timestamp_units() {
    let iface = |tsresol, tsoffset_s| NgInterface { tsresol, tsoffset_s, snaplen: 0 };
    assert_eq!(ng_timestamp_ns(7, iface(6, 0)), Some(7_000));
    assert_eq!(ng_timestamp_ns(7, iface(9, 0)), Some(7));
    assert_eq!(ng_timestamp_ns(7_000, iface(12, 0)), Some(7));
    assert_eq!(ng_timestamp_ns(7, iface(127, 0)), Some(0));
    assert_eq!(ng_timestamp_ns(3 << 10, iface(0x80 + 10, 0)), Some(3_000_000_000)); // 2^-10 s
    assert_eq!(ng_timestamp_ns(u64::MAX, iface(0x80 + 127, 0)), Some(0));
    assert_eq!(ng_timestamp_ns(1, iface(9, -1)), None, "before the epoch");
    assert_eq!(ng_timestamp_ns(u64::MAX, iface(6, 0)), None, "beyond u64 nanoseconds");
}

#[test]
fn port_writes_at_the_models_time_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.pcap");
    let mut port = PcapPort::new(None, Some(PcapSink::create(&out_path, true).unwrap()));
    assert!(port.is_exhausted() && port.link_up() && port.mac().is_none());
    assert!(port.describe().starts_with("pcap:->") && port.describe().ends_with("out.pcap"));
    let mut out = RxBurst::default();
    assert_eq!(port.recv_burst(&mut out, 4).unwrap(), 0);

    port.send(&frame(1, 10)).unwrap(); // before any set_time_ns: time 0
    port.set_time_ns(T0);
    port.send(&frame(2, 10)).unwrap();
    port.flush().unwrap();
    // Readable while the port is still open, thanks to the explicit flush.
    let got = read_all(&mut PcapSource::open(&out_path).unwrap()).unwrap();
    assert_eq!(got.iter().map(|f| f.timestamp_ns).collect::<Vec<_>>(), [Some(0), Some(T0)]);

    port.send(&frame(3, 10)).unwrap();
    drop(port); // flushes
    assert_eq!(read_all(&mut PcapSource::open(&out_path).unwrap()).unwrap().len(), 3);

    // No sink: frames are counted and dropped. Source and sink: both named.
    let mut port = PcapPort::new(Some(PcapSource::open(&out_path).unwrap()), None);
    port.send(&[0; 60]).unwrap();
    assert_eq!(port.dropped_frames(), 1);
    assert!(port.describe().ends_with("out.pcap"));
    let both = PcapPort::new(
        Some(PcapSource::open(&out_path).unwrap()),
        Some(PcapSink::create(dir.path().join("o2.pcap"), false).unwrap()),
    );
    assert!(both.describe().contains("out.pcap->") && both.describe().ends_with("o2.pcap"));
    assert_eq!(PcapPort::new(None, None).describe(), "pcap:none");
}

#[test]
fn port_receives_in_batches_with_file_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.pcap");
    let frames: Vec<(Vec<u8>, u64)> = (0..5u8).map(|i| (frame(i, 30), T0 + u64::from(i))).collect();
    write_pcap(&path, &frames, true);
    let mut port = PcapPort::new(Some(PcapSource::open(&path).unwrap()), None);
    assert!(port.describe().starts_with("pcap:") && port.describe().ends_with("in.pcap"));
    let mut out = RxBurst::default();
    assert_eq!(port.recv_burst(&mut out, 2).unwrap(), 2);
    assert_eq!(port.recv_burst(&mut out, 2).unwrap(), 2);
    assert!(!port.is_exhausted());
    assert_eq!(port.recv_burst(&mut out, 2).unwrap(), 1);
    assert_eq!(port.recv_burst(&mut out, 2).unwrap(), 0);
    assert!(port.is_exhausted());
    assert_eq!(out.get(out.len() - 1).unwrap().timestamp_ns, Some(T0 + 4));
}

#[test]
fn oversized_frames_and_far_future_times() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.pcap");
    let mut sink = PcapSink::create(&path, false).unwrap();
    let err = sink.write(&[0; 60], 5_000_000_000 * NS_PER_SEC).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    sink.write(&vec![7; SINK_SNAPLEN as usize + 100], 0).unwrap();
    drop(sink);
    let mut source = PcapSource::open(&path).unwrap();
    assert_eq!(source.next_frame().unwrap().unwrap().data.len(), SINK_SNAPLEN as usize);
    assert_eq!(source.truncated_frames(), 1);
}

/// Reads back a written file with tcpdump or tshark.
#[test]
#[ignore = "needs tcpdump or tshark (scripts/test-all installs tcpdump)"]
fn external_tools_read_what_we_write() {
    let found = ["tcpdump", "tshark"]
        .into_iter()
        .find(|tool| Command::new("which").arg(tool).output().is_ok_and(|o| o.status.success()));
    let Some(tool) = found else {
        panic!("neither tcpdump nor tshark is installed");
    };
    let dir = tempfile::tempdir().unwrap();
    for nanosecond in [false, true] {
        let path = dir.path().join(format!("tool-{nanosecond}.pcap"));
        let frames: Vec<(Vec<u8>, u64)> =
            (0..7u8).map(|i| (frame(i, 50), T0 + u64::from(i) * 1000)).collect();
        write_pcap(&path, &frames, nanosecond);
        let out = Command::new(tool).args(["-n", "-r"]).arg(&path).output().unwrap();
        assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
        let lines = String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).count();
        assert_eq!(lines, frames.len(), "{tool} packet count");
    }
}

#[test]
fn a_microsecond_fraction_of_a_second_or_more_is_carried_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.pcap");
    write_pcap(&path, &[(frame(1, 8), 5_000_000_000), (frame(2, 8), 7_000_000_000)], false);
    // The first record's fraction (bytes 4..8 of its header, after the 24-byte file header)
    // becomes 1,500,000 µs: 5 s + 1.5 s.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[24 + 4..24 + 8].copy_from_slice(&1_500_000u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let mut source = PcapSource::open(&path).unwrap();
    let frames = read_all(&mut source).unwrap();
    assert_eq!(frames.len(), 2, "the whole capture is read");
    assert_eq!(frames[0].timestamp_ns, Some(6_500_000_000));
    assert_eq!(frames[1].timestamp_ns, Some(7_000_000_000));
    assert_eq!(source.odd_timestamps(), 1);
}

/// Reads `bytes` as a capture to the end; only checks that nothing panics.
fn read_bytes(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    if let Ok(mut source) = PcapSource::open(path) {
        for _ in 0..1000 {
            match source.next_frame() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

fn sample_files(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let pcap = dir.join("s.pcap");
    write_pcap(&pcap, &(0..4u8).map(|i| (frame(i, 8), T0)).collect::<Vec<_>>(), false);
    let ng = dir.join("s.pcapng");
    write_pcapng(&ng);
    (std::fs::read(pcap).unwrap(), std::fs::read(ng).unwrap())
}

#[test]
fn every_truncation_is_handled() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, ng) = sample_files(dir.path());
    let path = dir.path().join("t");
    for file in [&pcap, &ng] {
        for len in 0..file.len() {
            read_bytes(&path, &file[..len]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn corrupt_captures_never_panic(
        ng in any::<bool>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (pcap, pcapng) = sample_files(dir.path());
        let mut bytes = if ng { pcapng } else { pcap };
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        read_bytes(&dir.path().join("c"), &bytes);
    }
}

/// Frame sizes that cross the edges of the 64 KiB buffer `Input` starts with, and outgrow it
/// (twice, for the largest), between small ones.
const BUFFER_SIZES: [usize; 9] = [60, 1514, 70_000, 60, 9000, 200_000, 1514, 65_536, 61];

/// What pcap-file's own reader (and its fixed 8 MB buffer) reads from a classic capture: the
/// frames up to the first error, and whether there was one.
fn pcap_file_frames(path: &Path) -> (Vec<Vec<u8>>, bool) {
    let Ok(mut reader) = pcap_file::pcap::PcapReader::new(File::open(path).unwrap()) else {
        return (Vec::new(), true);
    };
    let mut frames = Vec::new();
    while let Some(packet) = reader.next_raw_packet() {
        match packet {
            Ok(p) => frames.push(p.data.into_owned()),
            Err(_) => return (frames, true),
        }
    }
    (frames, false)
}

#[test]
fn records_larger_than_the_buffer_or_across_its_edge_read_as_pcap_files_reader_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.pcap");
    let frames: Vec<(Vec<u8>, u64)> =
        BUFFER_SIZES.iter().enumerate().map(|(i, &len)| (vec![i as u8; len], T0 + i as u64)).collect();
    write_pcap(&path, &frames, true);
    let got = read_all(&mut PcapSource::open(&path).unwrap()).unwrap();
    let want: Vec<RxFrame> =
        frames.iter().map(|(d, ts)| RxFrame { data: d.clone(), timestamp_ns: Some(*ts) }).collect();
    assert!(got == want, "frames differ from what was written");
    assert_eq!(pcap_file_frames(&path), (got.into_iter().map(|f| f.data).collect(), false));

    // Cut in the middle of the 200,000-byte record (the 6th): five frames, then "truncated".
    let full = std::fs::read(&path).unwrap();
    let start: usize = 24 + BUFFER_SIZES[..5].iter().map(|len| 16 + len).sum::<usize>();
    std::fs::write(&path, &full[..start + 16 + 150_000]).unwrap();
    let mut source = PcapSource::open(&path).unwrap();
    for want in &frames[..5] {
        assert_eq!(source.next_frame().unwrap().unwrap().data, want.0);
    }
    let err = source.next_frame().unwrap_err().to_string();
    assert!(err.contains("record 6") && err.contains("truncated"), "{err}");
    assert!(pcap_file_frames(&path).1, "pcap-file's reader fails there too");

    // pcapng: the same frames as enhanced packets.
    let path = dir.path().join("big.pcapng");
    let mut writer = PcapNgWriter::new(File::create(&path).unwrap()).unwrap();
    writer
        .write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options: vec![],
        })
        .unwrap();
    for (data, _) in &frames {
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::from_nanos(1),
                original_len: data.len() as u32,
                data: Cow::Borrowed(data),
                options: vec![],
            })
            .unwrap();
    }
    drop(writer);
    let got = read_all(&mut PcapSource::open(&path).unwrap()).unwrap();
    assert!(got.iter().map(|f| &f.data).eq(frames.iter().map(|f| &f.0)), "pcapng frames differ");
}

#[test]
fn a_record_beyond_pcap_files_8_mb_is_still_a_capture_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.pcap");
    write_pcap(&path, &[(frame(1, 8), T0)], false);
    // A second record claiming 8 MB, with all its bytes there: more than the buffer's limit.
    let mut bytes = std::fs::read(&path).unwrap();
    let len = input::MAX_CAPACITY as u32;
    for value in [1, 0, len, len] {
        bytes.extend_from_slice(&u32::to_le_bytes(value));
    }
    bytes.resize(bytes.len() + input::MAX_CAPACITY, 0xab);
    std::fs::write(&path, &bytes).unwrap();
    let mut source = PcapSource::open(&path).unwrap();
    assert!(source.next_frame().unwrap().is_some());
    let err = source.next_frame().unwrap_err().to_string();
    assert!(err.contains("record 2") && err.contains("truncated"), "{err}");
    assert_eq!(pcap_file_frames(&path), (vec![frame(1, 8)], true), "pcap-file's reader agrees");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    /// A corrupt classic capture gives the frames pcap-file's own reader gives, and an error
    /// where it gives one.
    #[test]
    fn corrupt_captures_read_as_pcap_files_reader_reads_them(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pcap");
        let frames: Vec<(Vec<u8>, u64)> =
            BUFFER_SIZES.iter().enumerate().map(|(i, &len)| (vec![i as u8; len], T0)).collect();
        write_pcap(&path, &frames, false);
        let mut bytes = std::fs::read(&path).unwrap();
        // Edits in the headers (the first 24 bytes and each record's 16), where they matter.
        let mut headers = Vec::with_capacity(1 + BUFFER_SIZES.len());
        headers.push(0..24);
        let mut at = 24;
        for len in BUFFER_SIZES {
            headers.push(at..at + 16);
            at += 16 + len;
        }
        for (i, value) in edits {
            let h = &headers[i.index(headers.len())];
            bytes[h.start + i.index(h.len())] = value;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        std::fs::write(&path, &bytes).unwrap();
        let (want, failed) = pcap_file_frames(&path);
        let mut got = Vec::new();
        let mut error = false;
        if let Ok(mut source) = PcapSource::open(&path) {
            loop {
                match source.next_frame() {
                    Ok(Some(f)) => got.push(f.data),
                    Ok(None) => break,
                    Err(_) => { error = true; break; }
                }
            }
        } else {
            error = true;
        }
        prop_assert_eq!(got, want);
        prop_assert_eq!(error, failed);
    }
}
