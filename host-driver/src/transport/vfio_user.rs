//! The vfio-user transport: the sim-model in another process (`sluice sim --socket PATH`),
//! reached over the vfio-user protocol (the one QEMU and libvfio-user speak) on a Unix socket,
//! with the rust-vmm `vfio_user` crate's client.
//!
//! - Registers: `REGION_READ`/`REGION_WRITE` on region 0 (BAR0), one message per access, 4 or
//!   8 bytes, so a 64-bit register is read or written in one access as on the card.
//! - DMA memory: a memfd ([`DmaBacking`]) passed with `DMA_MAP`, so the server maps the very
//!   same pages; what the device writes is in the driver's mapping at once, and the other way
//!   round. `DMA_UNMAP` on free.
//! - Interrupts: an eventfd per MSI-X vector, passed with `SET_IRQS` (index
//!   `VFIO_PCI_MSIX_IRQ_INDEX`, `DATA_EVENTFD | ACTION_TRIGGER`); the server writes it when
//!   the device fires the vector.
//! - Reset: `DEVICE_RESET`.
//!
//! A broken connection cannot be reported through [`Transport::read32`] (it has no error path):
//! as a PCIe read of a removed device does, register reads then return all ones and writes are
//! dropped; the first failure is logged. The driver sees `0xFFFF_FFFF` where the identity
//! block should be and stops with a clear error.
//!
//! A broken connection is reported by [`Transport::is_broken`]; [`Transport::reconnect`]
//! connects again to the same socket (a `sluice sim` restarted there), after which the driver
//! brings the device up from scratch (flow_offload rewrites the table from its shadow).
//!
//! Every exchange has a deadline (`SESSION_TIMEOUT`); a server that refuses the session (another
//! client holds it) says so, and the error carries its reason.
//!
//! Limits of the `vfio_user` client this rests on (0.1.7, patched in `vendor/`): beyond the
//! VERSION reply it does not look at the error flag of a reply, so a request the server refuses (a `DMA_MAP` it cannot map, a `SET_IRQS` out of
//! range) is not reported here; the server logs it, and a DMA map that failed shows up as the
//! device's DMA fault. The checks this transport can make itself (vector in range, region 0
//! the size of BAR0, the PCI identity) it makes before sending.

use super::{IovaAllocator, Transport};
use crate::dma::{DmaBacking, DmaRegion};
use crate::error::DriverError;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

/// How long any exchange with the server may take before the session counts as dead (a
/// server that holds another client's session, or hangs).
const SESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `VFIO_PCI_BAR0_REGION_INDEX` (linux/vfio.h).
const BAR0_REGION: u32 = 0;
/// `VFIO_PCI_CONFIG_REGION_INDEX`.
const CONFIG_REGION: u32 = 7;
/// `VFIO_PCI_MSIX_IRQ_INDEX`.
const MSIX_IRQ_INDEX: u32 = 2;
/// `VFIO_IRQ_SET_DATA_EVENTFD`.
const IRQ_SET_DATA_EVENTFD: u32 = 1 << 2;
/// `VFIO_IRQ_SET_ACTION_TRIGGER`.
const IRQ_SET_ACTION_TRIGGER: u32 = 1 << 5;

/// The sim-model (or any Sluice vfio-user device) behind a Unix socket.
pub struct VfioUserTransport {
    client: vfio_user::Client,
    socket: PathBuf,
    iovas: IovaAllocator,
    msix_vectors: u32,
    /// The first failed register access, once logged.
    broken: bool,
}

impl VfioUserTransport {
    /// Connects to the vfio-user server at `socket`, negotiates the protocol and checks that
    /// the device is a Sluice NIC (PCI ids, BAR0 size) with MSI-X vectors.
    pub fn connect(socket: &Path) -> Result<Self, DriverError> {
        let shown = socket.display();
        let mut client = vfio_user::Client::with_timeout(socket, Some(SESSION_TIMEOUT)).map_err(|e| {
            let detail = match &e {
                // The server refused the session: another client holds it (its reason names who).
                vfio_user::Error::Refused(_, reason) if !reason.is_empty() => reason.clone(),
                vfio_user::Error::Refused(errno, _) => {
                    format!("the server refused the session (errno {errno})")
                }
                vfio_user::Error::StreamRead(io) | vfio_user::Error::StreamWrite(io)
                    if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    format!(
                        "no answer in {} s: the server is busy with another client or hung",
                        SESSION_TIMEOUT.as_secs()
                    )
                }
                vfio_user::Error::Connect(io) => match io.kind() {
                    std::io::ErrorKind::NotFound => {
                        format!("no such socket — is `sluice sim --socket {shown}` running?")
                    }
                    std::io::ErrorKind::ConnectionRefused => format!(
                        "nothing is listening on the socket (a stale file?) — is \
                         `sluice sim --socket {shown}` running?"
                    ),
                    std::io::ErrorKind::PermissionDenied => {
                        format!("permission denied on the socket ({io}); run as its owner or fix its mode")
                    }
                    _ => format!("cannot connect: {io}"),
                },
                other => format!("protocol negotiation failed: {other}"),
            };
            DriverError::VfioUser { op: format!("connect to {shown}"), detail }
        })?;
        let fail =
            |op: &str, detail: String| DriverError::VfioUser { op: format!("{op} on {shown}"), detail };
        let bar0 = client
            .region(BAR0_REGION)
            .map(|r| r.size)
            .ok_or_else(|| fail("checking BAR0", "the device has no region 0".into()))?;
        if bar0 < rtl_spec::regs::BAR0_SIZE {
            return Err(fail(
                "checking BAR0",
                format!("region 0 is {bar0:#x} bytes; a Sluice BAR0 is {:#x}", rtl_spec::regs::BAR0_SIZE),
            ));
        }
        let mut ids = [0u8; 4];
        client
            .region_read(CONFIG_REGION, 0, &mut ids)
            .map_err(|e| fail("reading PCI config space", e.to_string()))?;
        let vendor = u16::from_le_bytes([ids[0], ids[1]]);
        let device = u16::from_le_bytes([ids[2], ids[3]]);
        if (vendor, device) != (rtl_spec::pci::VENDOR_ID, rtl_spec::pci::DEVICE_ID) {
            return Err(fail(
                "checking the PCI identity",
                format!(
                    "the device is {vendor:04x}:{device:04x}, not a Sluice NIC ({:04x}:{:04x})",
                    rtl_spec::pci::VENDOR_ID,
                    rtl_spec::pci::DEVICE_ID
                ),
            ));
        }
        let msix = client
            .get_irq_info(MSIX_IRQ_INDEX)
            .map_err(|e| fail("reading the MSI-X interrupt info", e.to_string()))?;
        tracing::debug!(socket = %shown, bar0, vectors = msix.count, "vfio-user device connected");
        Ok(VfioUserTransport {
            client,
            socket: socket.to_path_buf(),
            iovas: IovaAllocator::default(),
            msix_vectors: msix.count,
            broken: false,
        })
    }

    /// The socket this transport is connected to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Number of MSI-X vectors the device offers.
    pub fn msix_vectors(&self) -> u32 {
        self.msix_vectors
    }

    fn error(&self, op: &str, e: &vfio_user::Error) -> DriverError {
        DriverError::VfioUser { op: format!("{op} on {}", self.socket.display()), detail: e.to_string() }
    }

    fn lost(&mut self, op: &str, offset: u32, e: &vfio_user::Error) {
        if !self.broken {
            self.broken = true;
            tracing::error!(
                socket = %self.socket.display(),
                offset = format_args!("{offset:#x}"),
                error = %e,
                "vfio-user {op} failed: the device is gone; reads now return all ones"
            );
        }
    }

    fn read(&mut self, offset: u32, buf: &mut [u8]) {
        if let Err(e) = self.client.region_read(BAR0_REGION, u64::from(offset), buf) {
            buf.fill(0xFF);
            self.lost("register read", offset, &e);
        }
    }

    fn write(&mut self, offset: u32, data: &[u8]) {
        if let Err(e) = self.client.region_write(BAR0_REGION, u64::from(offset), data) {
            self.lost("register write", offset, &e);
        }
    }
}

impl Transport for VfioUserTransport {
    fn describe(&self) -> String {
        format!("vfio-user {}", self.socket.display())
    }

    fn read32(&mut self, offset: u32) -> u32 {
        let mut b = [0u8; 4];
        self.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    fn write32(&mut self, offset: u32, value: u32) {
        self.write(offset, &value.to_le_bytes());
    }

    fn read64(&mut self, offset: u32) -> u64 {
        let mut b = [0u8; 8];
        self.read(offset, &mut b);
        u64::from_le_bytes(b)
    }

    fn write64(&mut self, offset: u32, value: u64) {
        self.write(offset, &value.to_le_bytes());
    }

    fn alloc_dma(&mut self, len: usize) -> Result<DmaRegion, DriverError> {
        let backing = DmaBacking::new(len)?;
        let iova = self.iovas.take(len);
        self.client
            .dma_map(0, iova, len as u64, backing.fd().as_raw_fd())
            .map_err(|e| self.error(&format!("DMA_MAP of {len} bytes at IOVA {iova:#x}"), &e))?;
        Ok(DmaRegion::new(backing, iova))
    }

    fn free_dma(&mut self, region: &DmaRegion) -> Result<(), DriverError> {
        self.client
            .dma_unmap(region.iova(), region.len() as u64)
            .map_err(|e| self.error(&format!("DMA_UNMAP at IOVA {:#x}", region.iova()), &e))
    }

    fn interrupt(&mut self, vector: u16) -> Result<Option<EventFd>, DriverError> {
        if u32::from(vector) >= self.msix_vectors {
            return Err(DriverError::VfioUser {
                op: format!("SET_IRQS on {}", self.socket.display()),
                detail: format!("MSI-X vector {vector}: the device has {}", self.msix_vectors),
            });
        }
        let fd = EventFd::new(EFD_NONBLOCK).map_err(|e| DriverError::io("eventfd", e))?;
        self.client
            .set_irqs(
                MSIX_IRQ_INDEX,
                IRQ_SET_DATA_EVENTFD | IRQ_SET_ACTION_TRIGGER,
                u32::from(vector),
                1,
                &[fd.as_raw_fd()],
            )
            .map_err(|e| self.error(&format!("SET_IRQS for MSI-X vector {vector}"), &e))?;
        Ok(Some(fd))
    }

    fn reset(&mut self) -> Result<(), DriverError> {
        self.client.reset().map_err(|e| self.error("DEVICE_RESET", &e))
    }

    fn is_broken(&self) -> bool {
        self.broken
    }

    fn reconnect(&mut self) -> Result<(), DriverError> {
        let socket = self.socket.clone();
        *self = VfioUserTransport::connect(&socket)?;
        tracing::info!(socket = %socket.display(), "vfio-user device reconnected");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_socket_names_the_path_and_the_fix() {
        let path = std::env::temp_dir().join(format!("sluice-no-such-{}.sock", std::process::id()));
        let Err(e) = VfioUserTransport::connect(&path) else { panic!("connected to nothing") };
        let msg = e.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("no such socket"), "{msg}");
        assert!(msg.contains("sluice sim --socket"), "{msg}");
    }

    #[test]
    fn a_socket_nobody_listens_on_is_called_stale() {
        let dir = std::env::temp_dir().join(format!("sluice-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nic.sock");
        let _ = std::fs::remove_file(&path);
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let Err(e) = VfioUserTransport::connect(&path) else { panic!("connected to a closed socket") };
        let msg = e.to_string();
        assert!(msg.contains("nothing is listening"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
