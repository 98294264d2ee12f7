//! What the fuzz targets share beyond `sluice_test_support` (the host for the model, FullNAT
//! flows and their packets, which the workspace's tests use too): the input reader, the
//! vfio-user message helpers and the builders of the seed corpora (`examples/seeds.rs`).
//!
//! Every target's input format is described at the top of its file; the seeds are written in
//! that format by [`seeds`].
#![deny(unsafe_op_in_unsafe_fn)]

pub mod seeds;
pub mod vfio;

/// Reads an input as a sequence of fields, never failing: past the end every read is zero or
/// empty, so any byte string is a valid input.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// An input over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// One byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        let (b, rest) = self.data.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.data = rest;
        b
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }
}

/// A length-prefixed record as [`Input::record`] reads it: `len` (u16 LE) then the bytes.
pub fn record(out: &mut Vec<u8>, head: u8, bytes: &[u8]) {
    out.push(head);
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
}

impl<'a> Input<'a> {
    /// A record written by [`record`]: its head byte and its bytes (cut at the end of input).
    pub fn record(&mut self) -> (u8, &'a [u8]) {
        let head = self.byte();
        let len = usize::from(self.u16());
        (head, self.bytes(len))
    }
}
