//! The kernel VFIO transport: a real Sluice NIC bound to `vfio-pci`, driven from userspace.
//!
//! # What it owns
//!
//! - The VFIO container (`/dev/vfio/vfio`, a type1v2 IOMMU domain) and the device of one PCI
//!   function, opened through its IOMMU group (`/dev/vfio/<group>`) with vfio-ioctls.
//! - BAR0 (VFIO region 0), mapped once with memmap2 on the device fd and reached only through
//!   `read_volatile`/`write_volatile`: 32-bit accesses at 4-byte aligned offsets, 64-bit ones
//!   at 8-byte aligned offsets as one access each.
//! - Every DMA region it handed out and has not freed: memfd-backed memory ([`DmaBacking`])
//!   mapped into the IOMMU at an IOVA from [`IovaAllocator`]; the transport keeps a handle on
//!   each, so the memory outlives its IOMMU mapping. Sizes are rounded up to the page size,
//!   as the IOMMU maps whole pages.
//! - The MSI-X eventfds requested so far; asking for a new vector re-enables MSI-X for all of
//!   them (a disable/enable pair, which kernels without dynamic MSI-X allocation need).
//!
//! On drop it disables MSI-X and unmaps what is still mapped, then closes the device and the
//! container. It does not quiesce the card: that is the driver's job (reset before drop).
//!
//! # Binding a card to vfio-pci
//!
//! With the IOMMU on (`intel_iommu=on` or `amd_iommu=on` on the kernel command line), as root,
//! for a card at `0000:03:00.0` currently bound to `somedriver`:
//!
//! ```text
//! modprobe vfio-pci
//! echo vfio-pci > /sys/bus/pci/devices/0000:03:00.0/driver_override
//! echo 0000:03:00.0 > /sys/bus/pci/drivers/somedriver/unbind
//! echo 0000:03:00.0 > /sys/bus/pci/drivers_probe
//! ls -l /sys/bus/pci/devices/0000:03:00.0/iommu_group   # -> .../iommu_groups/N
//! ls -l /dev/vfio/N                                      # the group's device node
//! ```
//!
//! Every other device of group N must be bound to vfio-pci too (or to no driver), or the
//! group is not viable. To run unprivileged, give the user `/dev/vfio/N` and a locked-memory
//! limit (`ulimit -l`) that covers the DMA memory. vfio's no-IOMMU mode is refused: it has no
//! DMA translation, and the rings live in DMA memory.
//!
//! # Preflight
//!
//! [`VfioTransport::open`] checks, before any ioctl, the things people get wrong, in order: the
//! address, `/dev/vfio`, the device in sysfs, its vendor/device ids, its driver, its IOMMU
//! group and the group's device node. Each failure is a [`DriverError::Vfio`] naming the
//! address, what is wrong and the commands that fix it. [`preflight`] runs the checks alone.
//! The roots of `/sys` and `/dev` are parameters so that tests can build fake trees; the
//! ioctl path itself always uses `/dev/vfio` (vfio-ioctls opens it by name), so
//! [`VfioTransport::open_with_root`] with another device root stops after the preflight.
//!
//! # What was tested where
//!
//! The preflight is unit-tested against fake sysfs/dev trees, and against this machine's real
//! `/sys` and `/dev` (which has no `/dev/vfio`). The ioctl path (container, group, device,
//! BAR0 mapping, DMA map/unmap, MSI-X, reset) needs a Sluice card (or any device bound to
//! vfio-pci with an IOMMU) and could not be exercised on the machine this was written on:
//! it has been checked against the vfio-ioctls 0.10 sources and the kernel's VFIO API, not
//! run. The pure helpers it uses (offset checks, page rounding, error mapping) are tested.

use super::{IovaAllocator, Transport};
use crate::dma::{DmaBacking, DmaRegion};
use crate::error::DriverError;
use memmap2::{MmapOptions, MmapRaw};
use rtl_spec::regs::BAR0_SIZE;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vfio_ioctls::{VfioContainer, VfioDevice, VfioError, VfioOps};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

// From the kernel's <linux/vfio.h> (vfio-bindings is not a direct dependency of this crate).
const VFIO_TYPE: u32 = b';' as u32;
const VFIO_BASE: u32 = 100;
const VFIO_REGION_INFO_FLAG_READ: u32 = 1 << 0;
const VFIO_REGION_INFO_FLAG_WRITE: u32 = 1 << 1;
const VFIO_REGION_INFO_FLAG_MMAP: u32 = 1 << 2;
const VFIO_PCI_BAR0_REGION_INDEX: u32 = 0;
const VFIO_PCI_MSIX_IRQ_INDEX: u32 = 2;
/// `VFIO_DEVICE_RESET`: `_IO(VFIO_TYPE, VFIO_BASE + 11)`.
const VFIO_DEVICE_RESET: libc::c_ulong =
    vmm_sys_util::ioctl::ioctl_expr(vmm_sys_util::ioctl::_IOC_NONE, VFIO_TYPE, VFIO_BASE + 11, 0);

/// What the preflight found: a Sluice NIC bound to vfio-pci, with a usable IOMMU group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VfioTarget {
    /// The PCI address, normalised (`DDDD:BB:DD.F`, lower case).
    pub pci: String,
    /// The device's directory in sysfs (`/sys/bus/pci/devices/<pci>`).
    pub sysfs_path: PathBuf,
    /// Its IOMMU group.
    pub group: u32,
}

/// A Sluice NIC through kernel VFIO.
pub struct VfioTransport {
    pci: String,
    group: u32,
    bar: MmapRaw,
    device: VfioDevice,
    container: Arc<VfioContainer>,
    iovas: IovaAllocator,
    vectors: Vec<EventFd>,
    /// How many of `vectors` the kernel has enabled (0: MSI-X off).
    enabled: usize,
    msix_count: u32,
    /// Declared last: dropped after the container has gone, so no mapping outlives its memory.
    mapped: Vec<DmaRegion>,
}

fn vfio_error(pci: &str, problem: impl Into<String>, fix: impl Into<String>) -> DriverError {
    DriverError::Vfio { pci: pci.to_string(), problem: problem.into(), fix: fix.into() }
}

/// Normalises a PCI address (`DDDD:BB:DD.F`, or `BB:DD.F` meaning domain 0), or `None`.
/// Domains of up to 8 hex digits are accepted (Intel VMD puts devices in domain 10000).
pub(crate) fn parse_pci(address: &str) -> Option<String> {
    let address = address.trim();
    let full =
        if address.matches(':').count() == 1 { format!("0000:{address}") } else { address.to_string() };
    let (domain, rest) = full.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    let hex = |s: &str, min: usize, max: usize| {
        (min..=max).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit())
    };
    let dev_ok = hex(dev, 2, 2) && u8::from_str_radix(dev, 16).is_ok_and(|d| d < 32);
    let func_ok = func.len() == 1 && matches!(func.as_bytes()[0], b'0'..=b'7');
    (hex(domain, 4, 8) && hex(bus, 2, 2) && dev_ok && func_ok).then(|| full.to_ascii_lowercase())
}

/// The fix for a device that is not bound to vfio-pci: the three sysfs writes.
fn bind_fix(sys: &Path, pci: &str, current: Option<&str>) -> String {
    let mut lines = vec![format!("echo vfio-pci > {}/bus/pci/devices/{pci}/driver_override", sys.display())];
    if let Some(driver) = current {
        lines.push(format!("echo {pci} > {}/bus/pci/drivers/{driver}/unbind", sys.display()));
    }
    lines.push(format!("echo {pci} > {}/bus/pci/drivers_probe", sys.display()));
    format!("as root, after modprobe vfio-pci: {}", lines.join("; "))
}

fn read_id(pci: &str, path: &Path) -> Result<u16, DriverError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vfio_error(pci, format!("cannot read {}: {e}", path.display()), "run as a user who can read sysfs")
    })?;
    let t = text.trim();
    u16::from_str_radix(t.strip_prefix("0x").unwrap_or(t), 16).map_err(|_| {
        vfio_error(pci, format!("cannot parse {}: {t:?}", path.display()), "sysfs should hold 0xNNNN here")
    })
}

/// Why `/dev/vfio/<group>` could not be opened, and what to do.
fn group_open_error(pci: &str, node: &Path, group: u32, e: &io::Error) -> DriverError {
    let node_s = node.display();
    if e.kind() == io::ErrorKind::NotFound {
        return vfio_error(
            pci,
            format!("no {node_s} (the device node of IOMMU group {group})"),
            format!(
                "vfio-pci creates it when it binds the device: check ls -l {} and dmesg; in a \
                 container, pass the VFIO device nodes through",
                node.parent().unwrap_or(node).display()
            ),
        );
    }
    let fix = if e.kind() == io::ErrorKind::PermissionDenied {
        format!(
            "run as root, or give the user the group device (chown USER {node_s}, or a udev rule) \
             and a locked-memory limit (ulimit -l) that covers the DMA memory"
        )
    } else if e.raw_os_error() == Some(libc::EBUSY) {
        format!(
            "another process (another sluice daemon, a VM) holds IOMMU group {group}: stop it (fuser -v {node_s})"
        )
    } else {
        format!(
            "{node_s} must be the character device of IOMMU group {group}, created by vfio-pci: check ls -l and dmesg"
        )
    };
    vfio_error(pci, format!("cannot open {node_s}: {e}"), fix)
}

/// Checks, without any ioctl, that `pci` is a Sluice NIC bound to vfio-pci whose IOMMU group
/// device can be opened; `sysfs_root` and `dev_root` stand for `/sys` and `/dev`.
pub fn preflight(pci: &str, sysfs_root: &Path, dev_root: &Path) -> Result<VfioTarget, DriverError> {
    let addr = parse_pci(pci).ok_or_else(|| {
        vfio_error(
            pci,
            "malformed PCI address: expected DDDD:BB:DD.F (domain:bus:device.function in hex)",
            "give the address as lspci -D shows it, e.g. 0000:03:00.0",
        )
    })?;
    let pci = addr.as_str();
    let vfio_dir = dev_root.join("vfio");
    if !vfio_dir.exists() {
        return Err(vfio_error(
            pci,
            format!("no {}: kernel built without VFIO", vfio_dir.display()),
            "load vfio-pci (modprobe vfio-pci) or use a kernel with CONFIG_VFIO_PCI",
        ));
    }
    let devices = sysfs_root.join("bus/pci/devices");
    let dev = devices.join(pci);
    if !dev.exists() {
        return Err(vfio_error(
            pci,
            format!("no such device under {}", devices.display()),
            format!(
                "check the address with lspci -D; a card missing there is not enumerated (seating, \
                 power, slot settings in the firmware); echo 1 > {}/bus/pci/rescan rescans the bus",
                sysfs_root.display()
            ),
        ));
    }
    let (vendor, device) = (read_id(pci, &dev.join("vendor"))?, read_id(pci, &dev.join("device"))?);
    let (want_v, want_d) = (rtl_spec::pci::VENDOR_ID, rtl_spec::pci::DEVICE_ID);
    if (vendor, device) != (want_v, want_d) {
        return Err(vfio_error(
            pci,
            format!(
                "not a Sluice NIC: vendor:device is {vendor:04x}:{device:04x}, expected {want_v:04x}:{want_d:04x}"
            ),
            format!(
                "check the address: lspci -D -nn -d {want_v:04x}:{want_d:04x} lists the Sluice NICs of this host"
            ),
        ));
    }
    let driver = std::fs::read_link(dev.join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    match driver.as_deref() {
        Some("vfio-pci") => {}
        Some(other) => {
            return Err(vfio_error(
                pci,
                format!("not bound to vfio-pci (bound to {other})"),
                bind_fix(sysfs_root, pci, Some(other)),
            ));
        }
        None => {
            return Err(vfio_error(
                pci,
                "not bound to vfio-pci (no driver bound)",
                bind_fix(sysfs_root, pci, None),
            ));
        }
    }
    let link = dev.join("iommu_group");
    let Ok(target) = std::fs::read_link(&link) else {
        return Err(vfio_error(
            pci,
            "no IOMMU group",
            "enable the IOMMU: boot with intel_iommu=on (Intel) or amd_iommu=on (AMD), with VT-d / \
             AMD-Vi on in the firmware; vfio's noiommu mode (modprobe vfio enable_unsafe_noiommu_mode=1) \
             gives a group for testing, but without DMA translation, which this transport needs",
        ));
    };
    let group =
        target.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok()).ok_or_else(|| {
            vfio_error(
                pci,
                format!("unreadable IOMMU group link {} -> {}", link.display(), target.display()),
                "the link should end in the group number; check dmesg for IOMMU errors",
            )
        })?;
    let node = vfio_dir.join(group.to_string());
    let noiommu = vfio_dir.join(format!("noiommu-{group}"));
    if !node.exists() && noiommu.exists() {
        return Err(vfio_error(
            pci,
            format!(
                "IOMMU group {group} is a vfio no-IOMMU group ({}): no DMA mapping is possible",
                noiommu.display()
            ),
            "enable the IOMMU (intel_iommu=on / amd_iommu=on) and load vfio without enable_unsafe_noiommu_mode",
        ));
    }
    // Opened and closed at once: a group can be open only once, and vfio-ioctls opens it next.
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&node)
        .map_err(|e| group_open_error(pci, &node, group, &e))?;
    Ok(VfioTarget { pci: addr.clone(), sysfs_path: dev, group })
}

/// A library error on the ioctl path, as a `DriverError::Vfio` naming the operation.
fn map_vfio_error(pci: &str, group: u32, op: &str, e: &VfioError) -> DriverError {
    let fix = match e {
        VfioError::OpenContainer(_) => {
            "modprobe vfio-pci; run as root or give the user /dev/vfio/vfio".to_string()
        }
        VfioError::OpenGroup(io, _) => {
            return group_open_error(pci, &Path::new("/dev/vfio").join(group.to_string()), group, io);
        }
        VfioError::GroupViable => format!(
            "bind every device in /sys/kernel/iommu_groups/{group}/devices to vfio-pci (or unbind it), \
             or move the card to a slot with an IOMMU group of its own"
        ),
        VfioError::VfioApiVersion
        | VfioError::VfioExtension
        | VfioError::VfioType1V2
        | VfioError::ContainerSetIOMMU(_) => {
            "the kernel's VFIO needs the type1v2 IOMMU backend: enable the IOMMU \
             (intel_iommu=on / amd_iommu=on) and load vfio_iommu_type1; noiommu mode is not supported"
                .to_string()
        }
        VfioError::GroupGetDeviceFD(_) => {
            "check that the device is bound to vfio-pci and that no other process has it open".to_string()
        }
        VfioError::IommuDmaMap(errno) if errno.errno() == libc::ENOMEM => {
            "raise the locked-memory limit (ulimit -l, or LimitMEMLOCK= in the service unit)".to_string()
        }
        _ => "see dmesg for the kernel's VFIO messages".to_string(),
    };
    let problem = match std::error::Error::source(e) {
        Some(cause) => format!("{op}: {e} ({cause})"),
        None => format!("{op}: {e}"),
    };
    vfio_error(pci, problem, fix)
}

/// The BAR0 offset of a `width`-byte access at `offset` if it is aligned and inside `bar_len`.
pub(crate) fn bar_offset(bar_len: usize, offset: u32, width: usize) -> Option<usize> {
    let at = usize::try_from(offset).ok()?;
    (at % width == 0 && at.checked_add(width)? <= bar_len).then_some(at)
}

/// `len` rounded up to a whole number of `page`-byte pages; `None` for 0 or on overflow.
pub(crate) fn page_round(len: usize, page: usize) -> Option<usize> {
    if len == 0 {
        return None;
    }
    len.div_ceil(page).checked_mul(page)
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects; it only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

impl VfioTransport {
    /// Opens the Sluice NIC at `pci` (`0000:03:00.0`, or `03:00.0`) through `/dev/vfio`.
    pub fn open(pci: &str) -> Result<Self, DriverError> {
        Self::open_with_root(pci, Path::new("/sys"), Path::new("/dev"))
    }

    /// As [`open`](Self::open), with the preflight looking at `sysfs_root` and `dev_root`
    /// instead of `/sys` and `/dev`. vfio-ioctls opens `/dev/vfio` by name, so a `dev_root`
    /// other than `/dev` ends with an error once the preflight has passed.
    pub fn open_with_root(pci: &str, sysfs_root: &Path, dev_root: &Path) -> Result<Self, DriverError> {
        let target = preflight(pci, sysfs_root, dev_root)?;
        if dev_root != Path::new("/dev") {
            return Err(vfio_error(
                &target.pci,
                format!(
                    "preflight passed under {}, but the VFIO ioctls use /dev/vfio (vfio-ioctls opens it by name)",
                    dev_root.display()
                ),
                "use VfioTransport::open, or open_with_root with /dev as the device root",
            ));
        }
        Self::open_target(&target)
    }

    fn open_target(target: &VfioTarget) -> Result<Self, DriverError> {
        let pci = target.pci.as_str();
        let container = Arc::new(
            VfioContainer::new(None)
                .map_err(|e| map_vfio_error(pci, target.group, "opening the VFIO container", &e))?,
        );
        let ops: Arc<dyn VfioOps> = container.clone();
        let device = VfioDevice::new(&target.sysfs_path, ops, false).map_err(|e| {
            map_vfio_error(pci, target.group, "opening the device through its IOMMU group", &e)
        })?;

        // vfio-ioctls lists the regions it could query in order, so index 0 is BAR0 unless
        // BAR0 itself failed; the checks below and the driver's identity-block check catch that.
        // A BAR0 smaller than the specification's is refused; a larger one is mapped whole.
        let size = device.get_region_size(VFIO_PCI_BAR0_REGION_INDEX);
        let offset = device.get_region_offset(VFIO_PCI_BAR0_REGION_INDEX);
        let flags = device.get_region_flags(VFIO_PCI_BAR0_REGION_INDEX);
        if size < BAR0_SIZE {
            return Err(vfio_error(
                pci,
                format!("BAR0 is {size:#x} bytes, the Sluice specification needs {BAR0_SIZE:#x}"),
                "the card is not running a Sluice image of this specification: flash one (sluice flash)",
            ));
        }
        let want = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP;
        if flags & want != want {
            return Err(vfio_error(
                pci,
                format!("BAR0 cannot be mapped read-write (VFIO region flags {flags:#x})"),
                "BAR0 must be a memory BAR that vfio-pci lets userspace mmap; see dmesg",
            ));
        }
        let len = usize::try_from(size).map_err(|_| {
            vfio_error(
                pci,
                format!("BAR0 of {size:#x} bytes does not fit the address space"),
                "use a 64-bit host",
            )
        })?;
        let bar = MmapOptions::new().offset(offset).len(len).map_raw(device.as_raw_fd()).map_err(|e| {
            vfio_error(
                pci,
                format!("mapping BAR0 ({len:#x} bytes at device-fd offset {offset:#x}): {e}"),
                "kernels before 4.16, or hosts without interrupt remapping, refuse to map a BAR holding \
                 the MSI-X table: use a newer kernel with the IOMMU's interrupt remapping on",
            )
        })?;
        let msix_count = device.get_irq_info(VFIO_PCI_MSIX_IRQ_INDEX).map_or(0, |irq| irq.count);
        tracing::info!(pci, group = target.group, bar0 = len, msix_count, "vfio device opened");
        Ok(VfioTransport {
            pci: target.pci.clone(),
            group: target.group,
            bar,
            device,
            container,
            iovas: IovaAllocator::default(),
            vectors: Vec::new(),
            enabled: 0,
            msix_count,
            mapped: Vec::new(),
        })
    }

    /// The device's PCI address.
    pub fn pci(&self) -> &str {
        &self.pci
    }

    /// The device's IOMMU group.
    pub fn group(&self) -> u32 {
        self.group
    }

    /// A pointer to the `T`-sized register at `offset`, or `None` (logged) if the access is
    /// misaligned or outside BAR0 (`bar_offset` checks the alignment against the page-aligned
    /// mapping, so the returned pointer is aligned for `T`).
    fn register<T>(&self, op: &str, offset: u32) -> Option<*mut T> {
        let Some(at) = bar_offset(self.bar.len(), offset, size_of::<T>()) else {
            tracing::error!(
                pci = %self.pci, op, offset, bar0 = self.bar.len(),
                "register access outside BAR0 or misaligned: refused (reads return all-ones, as from a missing device)"
            );
            return None;
        };
        // SAFETY: `bar_offset` checked that `at + size_of::<T>() <= len`, so the result stays
        // inside the live mapping `self.bar` owns.
        Some(unsafe { self.bar.as_mut_ptr().add(at) }.cast::<T>())
    }
}

impl Transport for VfioTransport {
    fn describe(&self) -> String {
        format!("vfio {} (IOMMU group {})", self.pci, self.group)
    }

    fn read32(&mut self, offset: u32) -> u32 {
        let Some(p) = self.register::<u32>("read32", offset) else { return u32::MAX };
        // SAFETY: `p` is 4-byte aligned (the mapping is page aligned, the offset checked) and
        // inside BAR0's mapping; device memory is only ever accessed volatile.
        unsafe { p.read_volatile() }
    }

    fn write32(&mut self, offset: u32, value: u32) {
        if let Some(p) = self.register::<u32>("write32", offset) {
            // SAFETY: as in `read32`.
            unsafe { p.write_volatile(value) }
        }
    }

    fn read64(&mut self, offset: u32) -> u64 {
        let Some(p) = self.register::<u64>("read64", offset) else { return u64::MAX };
        // SAFETY: `p` is 8-byte aligned and inside BAR0's mapping; one volatile u64 load is
        // one 64-bit access on the 64-bit hosts this driver runs on.
        unsafe { p.read_volatile() }
    }

    fn write64(&mut self, offset: u32, value: u64) {
        if let Some(p) = self.register::<u64>("write64", offset) {
            // SAFETY: as in `read64`.
            unsafe { p.write_volatile(value) }
        }
    }

    fn alloc_dma(&mut self, len: usize) -> Result<DmaRegion, DriverError> {
        let pages = page_round(len, page_size()).ok_or_else(|| {
            vfio_error(&self.pci, format!("alloc_dma: cannot allocate {len} bytes"), "ask for 1 byte or more")
        })?;
        let backing = DmaBacking::new(pages)?;
        let iova = self.iovas.take(pages);
        // SAFETY: the range is the whole of a fresh shared mapping that `backing` owns; no Rust
        // reference into it exists or will (DmaRegion only touches it volatile), and the
        // transport keeps a handle on it in `mapped` until `vfio_dma_unmap` succeeds or the
        // container is closed, so the memory outlives the IOMMU mapping.
        unsafe { self.container.vfio_dma_map(iova, pages, backing.as_ptr()) }.map_err(|e| {
            map_vfio_error(
                &self.pci,
                self.group,
                &format!("alloc_dma: mapping {pages} bytes at IOVA {iova:#x}"),
                &e,
            )
        })?;
        let region = DmaRegion::new(backing, iova);
        self.mapped.push(region.clone());
        Ok(region)
    }

    fn free_dma(&mut self, region: &DmaRegion) -> Result<(), DriverError> {
        let at = self
            .mapped
            .iter()
            .position(|r| r.iova() == region.iova() && Arc::ptr_eq(r.backing(), region.backing()))
            .ok_or_else(|| {
                vfio_error(
                    &self.pci,
                    format!("free_dma: no region at IOVA {:#x} was mapped by this transport", region.iova()),
                    "free only regions this transport allocated, once each",
                )
            })?;
        self.container.vfio_dma_unmap(region.iova(), region.len()).map_err(|e| {
            map_vfio_error(
                &self.pci,
                self.group,
                &format!("free_dma: unmapping IOVA {:#x}", region.iova()),
                &e,
            )
        })?;
        self.mapped.swap_remove(at);
        Ok(())
    }

    fn interrupt(&mut self, vector: u16) -> Result<Option<EventFd>, DriverError> {
        if self.msix_count == 0 {
            tracing::warn!(pci = %self.pci, "the device exposes no MSI-X vectors: the driver polls");
            return Ok(None);
        }
        let v = usize::from(vector);
        if u32::from(vector) >= self.msix_count {
            return Err(vfio_error(
                &self.pci,
                format!("interrupt: MSI-X vector {vector} requested, the device has {}", self.msix_count),
                "configure fewer interrupt vectors (at most one per vector the device exposes)",
            ));
        }
        if v >= self.enabled {
            while self.vectors.len() <= v {
                let fd = EventFd::new(EFD_NONBLOCK).map_err(|e| DriverError::io("interrupt: eventfd", e))?;
                self.vectors.push(fd);
            }
            // Kernels without dynamic MSI-X allocation cannot grow an enabled set: disable it
            // and enable the larger one. An interrupt firing in between is lost: request the
            // vectors at bring-up, before any is armed.
            if self.enabled > 0 {
                self.device.disable_msix().map_err(|e| {
                    map_vfio_error(&self.pci, self.group, "interrupt: disabling MSI-X to grow it", &e)
                })?;
                self.enabled = 0;
            }
            self.device.enable_msix(self.vectors.iter().collect()).map_err(|e| {
                let op = format!("interrupt: enabling MSI-X vectors 0..={}", self.vectors.len() - 1);
                map_vfio_error(&self.pci, self.group, &op, &e)
            })?;
            self.enabled = self.vectors.len();
        }
        let fd = self.vectors[v].try_clone().map_err(|e| DriverError::io("interrupt: eventfd dup", e))?;
        Ok(Some(fd))
    }

    fn reset(&mut self) -> Result<(), DriverError> {
        // The ioctl itself rather than `VfioDevice::reset`, which skips devices without reset
        // support and drops the kernel's answer: a reset that did not happen must say so.
        // SAFETY: the fd is this transport's open VFIO device; VFIO_DEVICE_RESET takes no
        // argument and touches no memory of this process.
        let rc = unsafe { vmm_sys_util::ioctl::ioctl(&self.device, VFIO_DEVICE_RESET) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(vfio_error(
                &self.pci,
                format!("reset: VFIO_DEVICE_RESET failed: {e}"),
                "the device offers no function-level reset, or it did not come back: check dmesg, \
                 and lspci -vv for FLReset+ in its capabilities",
            ));
        }
        Ok(())
    }
}

impl std::fmt::Debug for VfioTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VfioTransport")
            .field("pci", &self.pci)
            .field("group", &self.group)
            .field("bar0_len", &self.bar.len())
            .field("dma_regions", &self.mapped.len())
            .field("msix_enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Drop for VfioTransport {
    fn drop(&mut self) {
        if self.enabled > 0 {
            if let Err(e) = self.device.disable_msix() {
                tracing::warn!(pci = %self.pci, error = %e, "disabling MSI-X on close");
            }
        }
        for region in self.mapped.drain(..) {
            if let Err(e) = self.container.vfio_dma_unmap(region.iova(), region.len()) {
                tracing::warn!(pci = %self.pci, iova = region.iova(), error = %e, "unmapping DMA memory on close");
            }
        }
    }
}

#[cfg(test)]
mod tests;
