//! Capture-file ports: frames read from pcap/pcapng files and written to classic pcap files.
//!
//! This module owns [`PcapSource`] (reads classic pcap or pcapng, Ethernet only), [`PcapSink`]
//! (writes classic pcap, Ethernet, micro- or nanosecond timestamps) and [`PcapPort`], which puts
//! an optional source and an optional sink behind the [`Port`] trait for `sluice replay`.
//!
//! Reading goes through `pcap-file`'s parsers, over the file buffered by [`input::Input`] (not
//! pcap-file's readers, which zero a fixed 8 MB buffer per file); every parse error, including a
//! file that ends in the middle of a record, becomes an `io::Error` naming the file and the
//! record, never a panic.
//! Writing is done here rather than with `pcap_file::pcap::PcapWriter`, because that writer does
//! not give access to its inner writer, so it could not be flushed without being consumed.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use pcap_file::pcap::{PcapHeader, PcapParser, RawPcapPacket};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};

use self::input::Input;
use super::{Port, RxBurst, RxFrame};

mod input;

/// The snapshot length written in output headers: tcpdump's default, far above any MTU, so
/// frames are never cut.
const SINK_SNAPLEN: u32 = 262_144;

const NS_PER_SEC: u64 = 1_000_000_000;

/// Magic numbers (as read big-endian from the first four bytes) that identify the format.
const PCAP_MAGICS: [u32; 4] = [0xA1B2_C3D4, 0xD4C3_B2A1, 0xA1B2_3C4D, 0x4D3C_B2A1];
const PCAPNG_MAGIC: u32 = 0x0A0D_0D0A;

/// What pcapng says about one interface, kept to interpret its packets' timestamps.
#[derive(Debug, Clone, Copy)]
struct NgInterface {
    /// `if_tsresol`: bit 7 clear = 10^-n s per unit, set = 2^-n s per unit. Default 6 (µs).
    tsresol: u8,
    /// `if_tsoffset`, seconds added to every timestamp.
    tsoffset_s: i64,
    /// Snapshot length (0 = none), needed to cut a Simple Packet Block's padding off.
    snaplen: u32,
}

/// The file and the parser of its format: what pcap-file's `PcapReader` and `PcapNgReader` do,
/// over [`Input`]'s buffer.
enum Reader {
    Pcap { parser: PcapParser, input: Input },
    PcapNg { parser: PcapNgParser, input: Input, interfaces: Vec<NgInterface> },
}

impl Reader {
    /// The next classic-pcap record, `None` at the end of the file.
    fn next_raw_packet(
        parser: &PcapParser,
        input: &mut Input,
    ) -> Option<Result<RawPcapPacket<'static>, PcapError>> {
        match input.has_data_left() {
            Ok(true) => Some(input.parse_with(|src| {
                parser.next_raw_packet(src).map(|(rest, packet)| (rest, packet.into_owned()))
            })),
            Ok(false) => None,
            Err(e) => Some(Err(PcapError::IoError(e))),
        }
    }

    /// The next pcapng block, `None` at the end of the file.
    fn next_block(parser: &mut PcapNgParser, input: &mut Input) -> Option<Result<Block<'static>, PcapError>> {
        match input.has_data_left() {
            Ok(true) => Some(
                input
                    .parse_with(|src| parser.next_block(src).map(|(rest, block)| (rest, block.into_owned()))),
            ),
            Ok(false) => None,
            Err(e) => Some(Err(PcapError::IoError(e))),
        }
    }
}

/// Frames read from a classic pcap or pcapng capture of Ethernet frames, with their timestamps.
pub struct PcapSource {
    path: PathBuf,
    reader: Reader,
    /// A frame read ahead by `open` (pcapng: to check the interfaces declared before it).
    pending: Option<RxFrame>,
    /// Records read so far, to say where a corrupt file went wrong.
    records: u64,
    truncated: u64,
    /// Records whose timestamp fraction was a second or more.
    odd_timestamps: u64,
}

impl std::fmt::Debug for PcapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let format = if matches!(self.reader, Reader::Pcap { .. }) { "pcap" } else { "pcapng" };
        f.debug_struct("PcapSource")
            .field("path", &self.path)
            .field("format", &format)
            .finish_non_exhaustive()
    }
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("pcap: {}: {what}", path.display()))
}

fn not_ethernet(path: &Path, link: DataLink) -> io::Error {
    invalid(
        path,
        format!(
            "link type {link:?} ({}) is not Ethernet; only Ethernet captures are supported",
            u32::from(link)
        ),
    )
}

impl PcapSource {
    /// Opens a capture, classic pcap or pcapng (told apart by the magic number). Only Ethernet
    /// link types are accepted: a pcapng interface of another type, here or later in the file, is
    /// an error naming the file and the link type.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let ctx = |e: io::Error| io::Error::new(e.kind(), format!("pcap: {}: {e}", path.display()));
        let mut file = File::open(&path).map_err(ctx)?;
        let mut magic = [0u8; 4];
        file.read_exact(&mut magic).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                invalid(&path, "file too short for a capture header")
            } else {
                ctx(e)
            }
        })?;
        file.rewind().map_err(ctx)?;
        let magic = u32::from_be_bytes(magic);
        let mut source = if PCAP_MAGICS.contains(&magic) {
            let mut input = Input::new(file);
            let parser =
                input.parse_with(PcapParser::new).map_err(|e| pcap_error(&path, e, "the file header"))?;
            let link = parser.header().datalink;
            if link != DataLink::ETHERNET {
                return Err(not_ethernet(&path, link));
            }
            Self {
                path,
                reader: Reader::Pcap { parser, input },
                pending: None,
                records: 0,
                truncated: 0,
                odd_timestamps: 0,
            }
        } else if magic == PCAPNG_MAGIC {
            let mut input = Input::new(file);
            let parser = input
                .parse_with(PcapNgParser::new)
                .map_err(|e| pcap_error(&path, e, "the section header"))?;
            let reader = Reader::PcapNg { parser, input, interfaces: Vec::new() };
            Self { path, reader, pending: None, records: 1, truncated: 0, odd_timestamps: 0 }
        } else {
            return Err(invalid(&path, format_args!("not a pcap or pcapng file (magic {magic:#010x})")));
        };
        if matches!(source.reader, Reader::PcapNg { .. }) {
            // Read up to the first packet so that the interfaces declared before it (normally
            // all of them) are checked now rather than at the first receive.
            source.pending = source.read_frame()?;
        }
        Ok(source)
    }

    /// The file this source reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many frames so far were cut short by the capture's snapshot length. They are still
    /// delivered as captured, shorter than their headers say; a warning is logged once.
    pub fn truncated_frames(&self) -> u64 {
        self.truncated
    }

    /// How many classic-pcap records so far had a timestamp fraction of a second or more
    /// (carried into the seconds, with a warning logged once).
    pub fn odd_timestamps(&self) -> u64 {
        self.odd_timestamps
    }

    /// The next frame, `Ok(None)` at the end of the file. After an error the position in the
    /// file is unknown: callers should stop reading.
    pub fn next_frame(&mut self) -> io::Result<Option<RxFrame>> {
        if let Some(frame) = self.pending.take() {
            return Ok(Some(frame));
        }
        self.read_frame()
    }

    fn read_frame(&mut self) -> io::Result<Option<RxFrame>> {
        let Some((frame, truncated)) = self.read_record()? else { return Ok(None) };
        if truncated {
            if self.truncated == 0 {
                tracing::warn!(file = %self.path.display(), "capture has frames cut by its snapshot length");
            }
            self.truncated += 1;
        }
        Ok(Some(frame))
    }

    /// The next frame and whether the capture cut it short.
    fn read_record(&mut self) -> io::Result<Option<(RxFrame, bool)>> {
        match &mut self.reader {
            Reader::Pcap { parser, input } => {
                // Raw records, checked here: pcap-file's own check refuses an original length
                // above the snapshot length, which is exactly what a capture taken with a small
                // snapshot length (`tcpdump -s 96`) contains.
                let nanosecond = parser.header().ts_resolution == TsResolution::NanoSecond;
                let Some(packet) = Reader::next_raw_packet(parser, input) else { return Ok(None) };
                self.records += 1;
                let record = self.records;
                let packet =
                    packet.map_err(|e| pcap_error(&self.path, e, format_args!("record {record}")))?;
                let frac_ns =
                    if nanosecond { u64::from(packet.ts_frac) } else { u64::from(packet.ts_frac) * 1000 };
                if frac_ns >= NS_PER_SEC {
                    // Some writers leave a fraction of a second of 10^6 µs or more; tcpdump reads
                    // such a record, so do we, carrying the excess into the seconds.
                    if self.odd_timestamps == 0 {
                        tracing::warn!(
                            file = %self.path.display(), record,
                            "timestamp fraction is a second or more; carried into the seconds"
                        );
                    }
                    self.odd_timestamps += 1;
                }
                let truncated = packet.incl_len < packet.orig_len;
                // At most u32::MAX s and (u32::MAX * 1000) ns: fits u64.
                let ts = u64::from(packet.ts_sec) * NS_PER_SEC + frac_ns;
                Ok(Some((RxFrame { data: packet.data.into_owned(), timestamp_ns: Some(ts) }, truncated)))
            }
            Reader::PcapNg { parser, input, interfaces } => loop {
                let Some(block) = Reader::next_block(parser, input) else { return Ok(None) };
                self.records += 1;
                let record = self.records;
                let block = block.map_err(|e| pcap_error(&self.path, e, format_args!("block {record}")))?;
                let (iface, raw_ts, data, orig_len) = match block {
                    Block::SectionHeader(_) => {
                        // Interface numbering starts again in every section.
                        interfaces.clear();
                        continue;
                    }
                    Block::InterfaceDescription(idb) => {
                        if idb.linktype != DataLink::ETHERNET {
                            return Err(not_ethernet(&self.path, idb.linktype));
                        }
                        let mut iface = NgInterface { tsresol: 6, tsoffset_s: 0, snaplen: idb.snaplen };
                        for option in &idb.options {
                            match option {
                                InterfaceDescriptionOption::IfTsResol(r) => iface.tsresol = *r,
                                // The field is a signed 64-bit integer; pcap-file reads it as u64.
                                #[allow(clippy::cast_possible_wrap)]
                                InterfaceDescriptionOption::IfTsOffset(o) => iface.tsoffset_s = *o as i64,
                                _ => {}
                            }
                        }
                        interfaces.push(iface);
                        continue;
                    }
                    // pcap-file hands the raw 64-bit timestamp over as nanoseconds, whatever the
                    // interface's resolution: `as_nanos` gives the raw value back.
                    Block::EnhancedPacket(p) => (
                        p.interface_id,
                        Some(p.timestamp.as_nanos() as u64),
                        p.data.into_owned(),
                        p.original_len,
                    ),
                    Block::Packet(p) => {
                        (u32::from(p.interface_id), Some(p.timestamp), p.data.into_owned(), p.original_len)
                    }
                    Block::SimplePacket(p) => {
                        // The body runs to the end of the block, padding included: the frame is
                        // the original length, capped by the snapshot length of interface 0.
                        let snaplen = interfaces.first().map_or(0, |i| i.snaplen);
                        let mut len = (p.original_len as usize).min(p.data.len());
                        if snaplen != 0 {
                            len = len.min(snaplen as usize);
                        }
                        (0, None, p.data[..len].to_vec(), p.original_len)
                    }
                    _ => continue,
                };
                let Some(&info) = interfaces.get(iface as usize) else {
                    return Err(invalid(
                        &self.path,
                        format_args!("block {record}: packet for undeclared interface {iface}"),
                    ));
                };
                let timestamp_ns = match raw_ts {
                    Some(raw) => Some(ng_timestamp_ns(raw, info).ok_or_else(|| {
                        invalid(&self.path, format_args!("block {record}: timestamp out of range"))
                    })?),
                    None => None,
                };
                let truncated = data.len() < orig_len as usize;
                return Ok(Some((RxFrame { data, timestamp_ns }, truncated)));
            },
        }
    }
}

/// Converts a pcapng timestamp in the interface's units to nanoseconds since the epoch, or
/// `None` if it does not fit in a u64.
fn ng_timestamp_ns(raw: u64, iface: NgInterface) -> Option<u64> {
    let exp = u32::from(iface.tsresol & 0x7f);
    let ns: u128 = if iface.tsresol & 0x80 == 0 {
        if exp <= 9 {
            u128::from(raw) * 10u128.pow(9 - exp)
        } else {
            // 10^(exp-9) for exp up to 127 overflows u128; beyond 10^38 every u64 rounds to 0.
            10u128.checked_pow(exp - 9).map_or(0, |div| u128::from(raw) / div)
        }
    } else {
        (u128::from(raw) * u128::from(NS_PER_SEC)) >> exp
    };
    let ns = i128::try_from(ns).ok()? + i128::from(iface.tsoffset_s) * i128::from(NS_PER_SEC);
    u64::try_from(ns).ok()
}

/// Turns a pcap-file error into an `io::Error` that names the file and where it went wrong.
fn pcap_error(path: &Path, err: PcapError, at: impl std::fmt::Display) -> io::Error {
    match err {
        // The reader reports a record cut by the end of the file as an unexpected EOF.
        PcapError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            invalid(path, format_args!("file ends in the middle of {at} (truncated capture)"))
        }
        PcapError::IoError(e) => {
            io::Error::new(e.kind(), format!("pcap: {}: reading {at}: {e}", path.display()))
        }
        other => invalid(path, format_args!("{at} is corrupt: {other}")),
    }
}

/// A classic pcap file being written: Ethernet link type, little-endian, micro- or nanosecond
/// timestamps, readable by tcpdump, tshark and `PcapSource`. Buffered; flushed by
/// [`flush`](Self::flush) and on drop (where an error can only be logged).
#[derive(Debug)]
pub struct PcapSink {
    path: PathBuf,
    out: BufWriter<File>,
    nanosecond: bool,
    written: u64,
}

impl PcapSink {
    /// Creates (or truncates) `path` and writes the file header, with nanosecond timestamps if
    /// `nanosecond`, else microsecond ones (the classic format every tool reads).
    pub fn create(path: impl AsRef<Path>, nanosecond: bool) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let ctx = |e: io::Error| io::Error::new(e.kind(), format!("pcap: {}: {e}", path.display()));
        let mut out = BufWriter::new(File::create(&path).map_err(ctx)?);
        let header = PcapHeader {
            snaplen: SINK_SNAPLEN,
            datalink: DataLink::ETHERNET,
            ts_resolution: if nanosecond { TsResolution::NanoSecond } else { TsResolution::MicroSecond },
            endianness: Endianness::Little,
            ..PcapHeader::default()
        };
        header.write_to(&mut out).map_err(|e| match e {
            PcapError::IoError(e) => ctx(e),
            other => invalid(&path, other),
        })?;
        // A header on disk at once: the file is a valid (empty) capture even if nothing is sent.
        out.flush().map_err(ctx)?;
        Ok(Self { path, out, nanosecond, written: 0 })
    }

    /// Appends one frame stamped `timestamp_ns` (nanoseconds since the epoch; truncated to the
    /// microsecond in a microsecond file). A frame longer than the snapshot length is cut, with
    /// its original length recorded, as tcpdump does.
    pub fn write(&mut self, frame: &[u8], timestamp_ns: u64) -> io::Result<()> {
        let secs = u32::try_from(timestamp_ns / NS_PER_SEC).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "pcap: {}: timestamp {timestamp_ns} ns is past 2106, beyond classic pcap",
                    self.path.display()
                ),
            )
        })?;
        let nanos = (timestamp_ns % NS_PER_SEC) as u32;
        let frac = if self.nanosecond { nanos } else { nanos / 1000 };
        let orig_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let incl_len = orig_len.min(SINK_SNAPLEN);
        let mut record = [0u8; 16];
        for (chunk, value) in record.chunks_exact_mut(4).zip([secs, frac, incl_len, orig_len]) {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        let ctx = |e: io::Error| io::Error::new(e.kind(), format!("pcap: {}: {e}", self.path.display()));
        self.out.write_all(&record).map_err(ctx)?;
        self.out.write_all(&frame[..incl_len as usize]).map_err(ctx)?;
        self.written += 1;
        Ok(())
    }

    /// Writes everything buffered to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush().map_err(|e| io::Error::new(e.kind(), format!("pcap: {}: {e}", self.path.display())))
    }

    /// The file this sink writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many frames were written.
    pub fn packets_written(&self) -> u64 {
        self.written
    }
}

impl Drop for PcapSink {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "pcap output lost on close");
        }
    }
}

/// A port whose wire is a pair of capture files: frames are received from an optional
/// [`PcapSource`] and sent to an optional [`PcapSink`]. With no source nothing is ever
/// received; with no sink sent frames are counted and dropped.
///
/// Timestamps of written frames: a file has no clock, so the model tells the port what time it
/// is with [`set_time_ns`](Self::set_time_ns) before it sends (in `replay`, the device time,
/// which follows the input's timestamps). Until the first call the time is 0, i.e. 1970.
///
/// The source's link is always up and the port has no MAC of its own.
#[derive(Debug)]
pub struct PcapPort {
    source: Option<PcapSource>,
    sink: Option<PcapSink>,
    now_ns: u64,
    /// An error met after some frames of a batch were read, reported by the next call.
    deferred: Option<io::Error>,
    exhausted: bool,
    dropped: u64,
}

impl PcapPort {
    /// A port reading from `source` (if any) and writing to `sink` (if any).
    pub fn new(source: Option<PcapSource>, sink: Option<PcapSink>) -> Self {
        let exhausted = source.is_none();
        Self { source, sink, now_ns: 0, deferred: None, exhausted, dropped: 0 }
    }

    /// Sets the timestamp given to the frames sent from now on.
    pub fn set_time_ns(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
    }

    /// True once the source is finished (end of file, an error, or no source at all).
    pub fn is_exhausted(&self) -> bool {
        self.exhausted && self.deferred.is_none()
    }

    /// Frames sent while there was no sink.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped
    }

    /// The source, if any.
    pub fn source(&self) -> Option<&PcapSource> {
        self.source.as_ref()
    }

    /// The sink, if any.
    pub fn sink(&self) -> Option<&PcapSink> {
        self.sink.as_ref()
    }

    /// Flushes the sink, if any.
    pub fn flush(&mut self) -> io::Result<()> {
        self.sink.as_mut().map_or(Ok(()), PcapSink::flush)
    }
}

impl Port for PcapPort {
    fn recv_burst(&mut self, burst: &mut RxBurst, max: usize) -> io::Result<usize> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let Some(source) = self.source.as_mut().filter(|_| !self.exhausted) else { return Ok(0) };
        let mut n = 0;
        while n < max {
            match source.next_frame() {
                Ok(Some(frame)) => {
                    burst.push(&frame.data, frame.timestamp_ns);
                    n += 1;
                }
                Ok(None) => {
                    self.exhausted = true;
                    break;
                }
                Err(e) => {
                    self.exhausted = true;
                    if n == 0 {
                        return Err(e);
                    }
                    self.deferred = Some(e);
                    break;
                }
            }
        }
        Ok(n)
    }

    /// Writes the frame to the sink's buffer at once; the buffer reaches the file on
    /// [`PcapPort::flush`] and on drop (the trait's per-burst flush leaves it alone, so a
    /// replay does not cost a `write` per burst).
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        if let Some(sink) = &mut self.sink {
            return sink.write(frame, self.now_ns);
        }
        self.dropped += 1;
        Ok(())
    }

    fn link_up(&self) -> bool {
        true
    }

    fn mac(&self) -> Option<[u8; 6]> {
        None
    }

    fn describe(&self) -> String {
        let name = |p: &Path| p.display().to_string();
        match (self.source.as_ref().map(|s| name(s.path())), self.sink.as_ref().map(|s| name(s.path()))) {
            (Some(i), Some(o)) => format!("pcap:{i}->{o}"),
            (Some(i), None) => format!("pcap:{i}"),
            (None, Some(o)) => format!("pcap:->{o}"),
            (None, None) => "pcap:none".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests;
