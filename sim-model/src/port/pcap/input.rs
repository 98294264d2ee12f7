//! The capture file's bytes, buffered for pcap-file's slice parsers.
//!
//! pcap-file's `PcapReader` and `PcapNgReader` read through a buffer of a fixed 8 MB that they
//! allocate zeroed on every open: 8 MB written per capture opened, whatever its size (most of
//! the time of the `pcap` fuzz target, which opens a small file four times an execution; and
//! 8 MB of memory per `pcap:` port). [`Input`] does what their buffer does, with the same
//! parsers (`PcapParser`, `PcapNgParser`) and the same results, but starts at
//! [`INITIAL_CAPACITY`] and doubles only when one record does not fit, up to pcap-file's
//! 8 MB, so a record larger than that is still reported as a file cut short, as before.

use std::fs::File;
use std::io::{self, Read};

use pcap_file::PcapError;

/// The buffer a capture starts with: room for dozens of full-size frames per `read`.
pub(super) const INITIAL_CAPACITY: usize = 64 * 1024;

/// The largest the buffer grows: pcap-file's own (fixed) buffer size, hence the largest record
/// it could read.
pub(super) const MAX_CAPACITY: usize = 8_000_000;

/// A file read through a growable buffer, parsed record by record.
#[derive(Debug)]
pub(super) struct Input {
    file: File,
    buffer: Vec<u8>,
    /// Start of the bytes not parsed yet.
    pos: usize,
    /// End of the bytes read.
    len: usize,
}

impl Input {
    pub(super) fn new(file: File) -> Self {
        Self { file, buffer: vec![0; INITIAL_CAPACITY], pos: 0, len: 0 }
    }

    /// Runs `parse` on the unparsed bytes, reading more (and growing the buffer) as long as it
    /// reports [`PcapError::IncompleteBuffer`]. `parse` returns the bytes it left unparsed
    /// (a suffix of its input) and an owned value. A record cut by the end of the file, or
    /// larger than [`MAX_CAPACITY`], is an `UnexpectedEof` I/O error, as with pcap-file's readers.
    pub(super) fn parse_with<O>(
        &mut self,
        mut parse: impl FnMut(&[u8]) -> Result<(&[u8], O), PcapError>,
    ) -> Result<O, PcapError> {
        loop {
            let unparsed = &self.buffer[self.pos..self.len];
            match parse(unparsed) {
                Ok((rest, value)) => {
                    self.pos = self.len - rest.len();
                    return Ok(value);
                }
                Err(PcapError::IncompleteBuffer) => {
                    if unparsed.len() == self.buffer.len() {
                        if self.buffer.len() >= MAX_CAPACITY {
                            return Err(PcapError::IoError(io::ErrorKind::UnexpectedEof.into()));
                        }
                        let grown = (self.buffer.len() * 2).min(MAX_CAPACITY);
                        self.buffer.resize(grown, 0);
                    }
                    if self.fill().map_err(PcapError::IoError)? == 0 {
                        return Err(PcapError::IoError(io::ErrorKind::UnexpectedEof.into()));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether any byte is left to parse, reading more if the buffer is empty.
    pub(super) fn has_data_left(&mut self) -> io::Result<bool> {
        Ok(self.pos < self.len || self.fill()? > 0)
    }

    /// Moves the unparsed bytes to the start of the buffer and reads after them (one `read`);
    /// the bytes read, 0 at the end of the file.
    fn fill(&mut self) -> io::Result<usize> {
        self.buffer.copy_within(self.pos..self.len, 0);
        self.len -= self.pos;
        self.pos = 0;
        let n = self.file.read(&mut self.buffer[self.len..])?;
        self.len += n;
        Ok(n)
    }
}
