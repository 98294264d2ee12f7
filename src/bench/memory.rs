//! Memory: bytes per connection on the host and per record in the NIC, and the most concurrent
//! connections this machine sets up before something refuses.
//!
//! How it is measured, and why so: the bench runs inside the `sluice` binary, so a counting
//! `#[global_allocator]` would count (and slow) the daemon too. Instead the bench reads glibc's
//! own books, `mallinfo2()` (bytes the allocator has handed out and not taken back: arenas plus
//! mmapped chunks), around what it builds, and the kernel's resident set from
//! `/proc/self/statm`. The heap figure is exact for what was allocated (untouched pages of a
//! zeroed allocation count in full); the RSS figure says what was touched. Each figure below
//! names the one it uses.
//!
//! - The NIC's table (the model's memory, as the hardware's DRAM would hold it): measured as the
//!   heap the model allocates for its geometry plus the mappings its records and buckets live
//!   in, divided by its records; also given from the formats (record 128 B, index slot 8 B, two
//!   per record).
//! - The host's shadow (flow-offload's compact records and shadow index), allocated once
//!   for the NIC's geometry: measured as the heap `FlowTable::new` takes, per record.
//! - The host's connection table (the workers' connections, the tuple map, timers, port
//!   pools): it grows with the connections; measured as heap growth per connection between the
//!   ramp's first and last checkpoints.

use super::report::Figure;
use super::rig;

/// Heap bytes in use (glibc `mallinfo2`: `uordblks + hblkhd`); 0 where unavailable.
pub fn heap() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no arguments and only reads the allocator's statistics.
        let m = unsafe { libc::mallinfo2() };
        (m.uordblks + m.hblkhd) as u64
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        0
    }
}

/// Resident set size, bytes (`/proc/self/statm`); 0 where unavailable.
pub fn rss() -> u64 {
    let text = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// What the table geometry costs, measured by allocation.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableBytes {
    /// Records of the geometry.
    pub records: u32,
    /// Heap the model took for its tables (and the rest of the device), bytes.
    pub model: u64,
    /// Heap the shadow took (`FlowTable::new`), bytes.
    pub shadow: u64,
}

/// Builds a model of `records` records and its shadow, measuring the heap each takes.
pub fn table_bytes(records: u32) -> anyhow::Result<TableBytes> {
    let h0 = heap();
    let (model, nic) = rig::model(records, 1, false)?;
    let h1 = heap();
    // The records and buckets are mappings of their own, not heap: counted from the device.
    let mapped = model.shared.with_device(|d| d.table_mapped_bytes());
    let table = flow_offload::FlowTable::new(nic)?;
    let h2 = heap();
    drop(table);
    drop(model);
    Ok(TableBytes { records, model: h1.saturating_sub(h0) + mapped, shadow: h2.saturating_sub(h1) })
}

/// Bytes of one record in the NIC's table by the formats: the 128-byte record and its two
/// 8-byte index slots.
pub fn record_format_bytes() -> u64 {
    let rec = std::mem::size_of::<rtl_spec::formats::FlowRecord>() as u64;
    let slot = std::mem::size_of::<rtl_spec::formats::IndexSlot>() as u64;
    rec + 2 * slot
}

/// The memory figures.
pub fn figures(t: &TableBytes, heap_per_conn: f64, ramp_note: &str) -> Vec<Figure> {
    let r = f64::from(t.records);
    vec![
        Figure::single(
            "memory",
            "NIC table per record",
            t.model as f64 / r,
            "B/record",
            format!(
                "model heap and table mappings for {} records / records (formats: {} B = 128 B record + 2 × 8 B slots; buckets = records/2 × 32 B)",
                t.records,
                record_format_bytes()
            ),
        ),
        Figure::single(
            "memory",
            "host shadow per record",
            t.shadow as f64 / r,
            "B/record",
            "flow-offload shadow (compact records, index), allocated for the geometry".into(),
        ),
        Figure::single(
            "memory",
            "host connection table per connection",
            heap_per_conn,
            "B/conn",
            format!("heap growth per connection set up ({ramp_note})"),
        ),
        Figure::single(
            "memory",
            "host total per connection",
            heap_per_conn + t.shadow as f64 / r,
            "B/conn",
            "connection table + shadow per record (a full table)".into(),
        ),
        Figure::single(
            "memory",
            "host connections in 24 GiB (projected)",
            24.0 * f64::from(1u32 << 30) / (heap_per_conn + t.shadow as f64 / r),
            "conns",
            "24 GiB / host total per connection: what the host side holds when the NIC's table is the card's memory (a projection from the measured bytes, not a run)".into(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_counts_its_memory() {
        // Other tests allocate and free concurrently: only that both counts read something.
        let v = std::hint::black_box(vec![1u8; 1 << 20]);
        assert!(super::rss() > 0);
        assert!(cfg!(not(target_env = "gnu")) || super::heap() >= v.len() as u64);
    }
}
