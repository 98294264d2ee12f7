//! Tests of the VFIO transport's preflight (fake sysfs/dev trees and this machine's real ones)
//! and of the pure helpers of its ioctl path. The ioctl path itself needs a card.

use super::*;
use std::os::unix::fs::symlink;
use tempfile::TempDir;

const ADDR: &str = "0000:03:00.0";

/// A fake `/sys` and `/dev` under a temporary directory, built up step by step.
struct Tree {
    _dir: TempDir,
    sys: PathBuf,
    dev: PathBuf,
}

impl Tree {
    /// Nothing at all: no `/dev/vfio`, no device.
    fn empty() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (sys, dev) = (dir.path().join("sys"), dir.path().join("dev"));
        std::fs::create_dir_all(sys.join("bus/pci/devices")).unwrap();
        std::fs::create_dir_all(sys.join("bus/pci/drivers/vfio-pci")).unwrap();
        std::fs::create_dir_all(&dev).unwrap();
        Tree { _dir: dir, sys, dev }
    }
    fn device_dir(&self) -> PathBuf {
        self.sys.join("bus/pci/devices").join(ADDR)
    }
    fn with_vfio_dir(self) -> Self {
        std::fs::create_dir_all(self.dev.join("vfio")).unwrap();
        self
    }
    fn with_device(self, vendor: &str, device: &str) -> Self {
        std::fs::create_dir_all(self.device_dir()).unwrap();
        std::fs::write(self.device_dir().join("vendor"), format!("{vendor}\n")).unwrap();
        std::fs::write(self.device_dir().join("device"), format!("{device}\n")).unwrap();
        self
    }
    fn with_sluice_device(self) -> Self {
        self.with_device("0x1bad", "0x5c01")
    }
    fn with_driver(self, driver: &str) -> Self {
        let target = self.sys.join("bus/pci/drivers").join(driver);
        std::fs::create_dir_all(&target).unwrap();
        symlink(target, self.device_dir().join("driver")).unwrap();
        self
    }
    fn with_group(self, group: u32) -> Self {
        let target = self.sys.join("kernel/iommu_groups").join(group.to_string());
        std::fs::create_dir_all(&target).unwrap();
        symlink(target, self.device_dir().join("iommu_group")).unwrap();
        self
    }
    fn with_group_node(self, name: &str) -> Self {
        std::fs::write(self.dev.join("vfio").join(name), b"").unwrap();
        self
    }
    /// Everything the preflight wants: a Sluice NIC on vfio-pci in group 7.
    fn complete() -> Self {
        Tree::empty()
            .with_vfio_dir()
            .with_sluice_device()
            .with_driver("vfio-pci")
            .with_group(7)
            .with_group_node("7")
    }
    fn preflight(&self, pci: &str) -> Result<VfioTarget, DriverError> {
        preflight(pci, &self.sys, &self.dev)
    }
}

/// The parts of a `DriverError::Vfio`; panics on any other error.
fn parts<T>(r: Result<T, DriverError>) -> (String, String, String) {
    match r {
        Err(DriverError::Vfio { pci, problem, fix }) => (pci, problem, fix),
        Err(other) => panic!("expected a Vfio error, got {other:?}"),
        Ok(_) => panic!("expected a Vfio error, got success"),
    }
}

#[test]
fn malformed_addresses_are_refused_before_anything_is_looked_at() {
    let tree = Tree::complete();
    for bad in [
        "",
        "03:00",
        "0000:03:00",
        "0000:03:00.8",
        "0000:03:20.0",
        "0000:3:00.0",
        "000:03:00.0",
        "0000:03:00.0x",
        "zzzz:03:00.0",
        "0000-03-00.0",
    ] {
        let (pci, problem, fix) = parts(tree.preflight(bad));
        assert_eq!(pci, bad);
        assert_eq!(
            problem,
            "malformed PCI address: expected DDDD:BB:DD.F (domain:bus:device.function in hex)"
        );
        assert!(fix.contains("lspci -D"), "{fix}");
    }
}

#[test]
fn addresses_are_normalised() {
    assert_eq!(parse_pci("03:00.0").as_deref(), Some("0000:03:00.0"));
    assert_eq!(parse_pci(" 0000:AF:1f.7 ").as_deref(), Some("0000:af:1f.7"));
    assert_eq!(parse_pci("10000:e0:17.0").as_deref(), Some("10000:e0:17.0"));
    assert_eq!(parse_pci("0000:03:00"), None);
}

#[test]
fn the_short_form_is_looked_up_in_domain_zero() {
    let target = Tree::complete().preflight("03:00.0").unwrap();
    assert_eq!(target.pci, ADDR);
}

#[test]
fn missing_dev_vfio_says_the_kernel_has_no_vfio() {
    let tree = Tree::empty().with_sluice_device();
    let (pci, problem, fix) = parts(tree.preflight(ADDR));
    assert_eq!(pci, ADDR);
    assert_eq!(problem, format!("no {}/vfio: kernel built without VFIO", tree.dev.display()));
    assert_eq!(fix, "load vfio-pci (modprobe vfio-pci) or use a kernel with CONFIG_VFIO_PCI");
}

#[test]
fn a_missing_device_is_named() {
    let tree = Tree::empty().with_vfio_dir();
    let (pci, problem, fix) = parts(tree.preflight(ADDR));
    assert_eq!(pci, ADDR);
    assert_eq!(problem, format!("no such device under {}/bus/pci/devices", tree.sys.display()));
    assert!(fix.contains("lspci -D") && fix.contains("/bus/pci/rescan"), "{fix}");
}

#[test]
fn another_vendors_device_is_refused_naming_both_ids() {
    let tree =
        Tree::empty().with_vfio_dir().with_device("0x8086", "0x10fb").with_driver("vfio-pci").with_group(7);
    let (pci, problem, fix) = parts(tree.preflight(ADDR));
    assert_eq!(pci, ADDR);
    assert_eq!(problem, "not a Sluice NIC: vendor:device is 8086:10fb, expected 1bad:5c01");
    assert!(fix.contains("lspci -D -nn -d 1bad:5c01"), "{fix}");
}

#[test]
fn unreadable_ids_are_errors_not_guesses() {
    let tree = Tree::empty().with_vfio_dir().with_device("bogus", "0x5c01");
    let (_, problem, _) = parts(tree.preflight(ADDR));
    assert_eq!(problem, format!("cannot parse {}: \"bogus\"", tree.device_dir().join("vendor").display()));
    std::fs::remove_file(tree.device_dir().join("device")).unwrap();
    std::fs::write(tree.device_dir().join("vendor"), "0x1bad").unwrap();
    let (_, problem, _) = parts(tree.preflight(ADDR));
    assert!(
        problem.starts_with(&format!("cannot read {}: ", tree.device_dir().join("device").display())),
        "{problem}"
    );
}

#[test]
fn a_device_on_another_driver_gets_the_three_rebind_lines() {
    let tree = Tree::empty().with_vfio_dir().with_sluice_device().with_driver("ixgbe").with_group(7);
    let (pci, problem, fix) = parts(tree.preflight(ADDR));
    let s = tree.sys.display();
    assert_eq!(pci, ADDR);
    assert_eq!(problem, "not bound to vfio-pci (bound to ixgbe)");
    let lines = format!(
        "echo vfio-pci > {s}/bus/pci/devices/{ADDR}/driver_override; \
         echo {ADDR} > {s}/bus/pci/drivers/ixgbe/unbind; echo {ADDR} > {s}/bus/pci/drivers_probe"
    );
    assert!(fix.contains(&lines), "{fix}");
}

#[test]
fn a_device_with_no_driver_gets_the_override_and_probe_lines() {
    let tree = Tree::empty().with_vfio_dir().with_sluice_device().with_group(7);
    let (_, problem, fix) = parts(tree.preflight(ADDR));
    let s = tree.sys.display();
    assert_eq!(problem, "not bound to vfio-pci (no driver bound)");
    let lines = format!(
        "echo vfio-pci > {s}/bus/pci/devices/{ADDR}/driver_override; echo {ADDR} > {s}/bus/pci/drivers_probe"
    );
    assert!(fix.contains(&lines) && !fix.contains("unbind"), "{fix}");
}

#[test]
fn no_iommu_group_says_to_enable_the_iommu() {
    let tree = Tree::empty().with_vfio_dir().with_sluice_device().with_driver("vfio-pci");
    let (pci, problem, fix) = parts(tree.preflight(ADDR));
    assert_eq!(pci, ADDR);
    assert_eq!(problem, "no IOMMU group");
    for needed in ["intel_iommu=on", "amd_iommu=on", "noiommu"] {
        assert!(fix.contains(needed), "{fix}");
    }
}

#[test]
fn a_missing_group_node_is_named() {
    let tree = Tree::empty().with_vfio_dir().with_sluice_device().with_driver("vfio-pci").with_group(7);
    let (pci, problem, fix) = parts(tree.preflight(ADDR));
    assert_eq!(pci, ADDR);
    assert_eq!(problem, format!("no {}/vfio/7 (the device node of IOMMU group 7)", tree.dev.display()));
    assert!(fix.contains("vfio-pci creates it"), "{fix}");
}

#[test]
fn a_noiommu_group_is_refused() {
    let tree = Tree::empty()
        .with_vfio_dir()
        .with_sluice_device()
        .with_driver("vfio-pci")
        .with_group(7)
        .with_group_node("noiommu-7");
    let (_, problem, fix) = parts(tree.preflight(ADDR));
    assert_eq!(
        problem,
        format!(
            "IOMMU group 7 is a vfio no-IOMMU group ({}/vfio/noiommu-7): no DMA mapping is possible",
            tree.dev.display()
        )
    );
    assert!(fix.contains("intel_iommu=on"), "{fix}");
}

#[test]
fn a_group_node_that_cannot_be_opened_is_named() {
    // This machine's tests run as root, who may open anything: a directory stands in for a
    // node that cannot be opened read-write.
    let tree = Tree::empty().with_vfio_dir().with_sluice_device().with_driver("vfio-pci").with_group(7);
    std::fs::create_dir(tree.dev.join("vfio/7")).unwrap();
    let (pci, problem, fix) = parts(tree.preflight(ADDR));
    assert_eq!(pci, ADDR);
    let node = tree.dev.join("vfio/7");
    assert_eq!(
        problem,
        format!("cannot open {}: {}", node.display(), io::Error::from_raw_os_error(libc::EISDIR))
    );
    assert!(fix.contains("character device of IOMMU group 7"), "{fix}");
}

#[test]
fn permission_and_busy_errors_on_the_group_node_say_what_to_do() {
    let node = Path::new("/dev/vfio/7");
    let denied = io::Error::from_raw_os_error(libc::EACCES);
    let (pci, problem, fix) = parts::<()>(Err(group_open_error(ADDR, node, 7, &denied)));
    assert_eq!(pci, ADDR);
    assert_eq!(problem, format!("cannot open /dev/vfio/7: {denied}"));
    assert!(fix.contains("run as root") && fix.contains("chown USER /dev/vfio/7"), "{fix}");
    let busy = io::Error::from_raw_os_error(libc::EBUSY);
    let (_, _, fix) = parts::<()>(Err(group_open_error(ADDR, node, 7, &busy)));
    assert!(fix.contains("holds IOMMU group 7"), "{fix}");
}

#[test]
fn an_unreadable_group_node_is_refused_unless_root() {
    let tree = Tree::complete();
    let node = tree.dev.join("vfio/7");
    std::fs::set_permissions(&node, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        // Root opens a mode-000 node anyway: the preflight goes on to name the target.
        let target = tree.preflight(ADDR).expect("root opens the node");
        assert_eq!(target.group, 7);
        return;
    }
    let (_, problem, fix) = parts(tree.preflight(ADDR));
    assert!(problem.starts_with(&format!("cannot open {}", node.display())), "{problem}");
    assert!(fix.contains("run as root"), "{fix}");
}

#[test]
fn a_complete_fake_tree_passes_the_preflight_and_stops_before_the_ioctls() {
    let tree = Tree::complete();
    let target = tree.preflight(ADDR).unwrap();
    assert_eq!(target, VfioTarget { pci: ADDR.into(), sysfs_path: tree.device_dir(), group: 7 });
    let (pci, problem, fix) = parts(VfioTransport::open_with_root(ADDR, &tree.sys, &tree.dev));
    assert_eq!(pci, ADDR);
    assert_eq!(
        problem,
        format!(
            "preflight passed under {}, but the VFIO ioctls use /dev/vfio (vfio-ioctls opens it by name)",
            tree.dev.display()
        )
    );
    assert!(fix.contains("VfioTransport::open"), "{fix}");
}

#[test]
fn on_this_machine_open_says_there_is_no_dev_vfio() {
    if Path::new("/dev/vfio").exists() {
        // A machine with VFIO: the failure is then about the device, still naming it.
        let Err(e) = VfioTransport::open("0000:03:00.0") else { panic!("opened a card at 03:00.0") };
        let err = e.to_string();
        assert!(err.starts_with("vfio 0000:03:00.0: "), "{err}");
        return;
    }
    for address in ["0000:03:00.0", "03:00.0"] {
        let (pci, problem, fix) = parts(VfioTransport::open(address));
        assert_eq!(pci, "0000:03:00.0");
        assert_eq!(problem, "no /dev/vfio: kernel built without VFIO");
        assert_eq!(fix, "load vfio-pci (modprobe vfio-pci) or use a kernel with CONFIG_VFIO_PCI");
    }
    let err = VfioTransport::open("0000:03:00.0").err().unwrap().to_string();
    assert!(err.starts_with("vfio 0000:03:00.0: no /dev/vfio"), "{err}");
}

#[test]
fn library_errors_name_the_operation_and_a_fix() {
    let (pci, problem, fix) =
        parts::<()>(Err(map_vfio_error(ADDR, 7, "opening the device", &VfioError::GroupViable)));
    assert_eq!(pci, ADDR);
    assert_eq!(problem, "opening the device: group is not viable");
    assert!(fix.contains("/sys/kernel/iommu_groups/7/devices"), "{fix}");
    let nomem = VfioError::IommuDmaMap(vmm_sys_util::errno::Error::new(libc::ENOMEM));
    let (_, problem, fix) =
        parts::<()>(Err(map_vfio_error(ADDR, 7, "alloc_dma: mapping 4096 bytes", &nomem)));
    assert!(
        problem.starts_with("alloc_dma: mapping 4096 bytes: failed to add guest memory map"),
        "{problem}"
    );
    assert!(fix.contains("ulimit -l"), "{fix}");
    let open = VfioError::OpenContainer(io::Error::from_raw_os_error(libc::ENOENT));
    let (_, problem, _) = parts::<()>(Err(map_vfio_error(ADDR, 7, "opening the VFIO container", &open)));
    assert!(
        problem.starts_with("opening the VFIO container: failed to open /dev/vfio/vfio container"),
        "{problem}"
    );
}

#[test]
fn register_offsets_must_be_aligned_and_inside_bar0() {
    let len = usize::try_from(BAR0_SIZE).unwrap();
    assert_eq!(bar_offset(len, 0, 4), Some(0));
    assert_eq!(bar_offset(len, 0x3_fffc, 4), Some(0x3_fffc));
    assert_eq!(bar_offset(len, 0x3_fff8, 8), Some(0x3_fff8));
    assert_eq!(bar_offset(len, 0x4_0000, 4), None);
    assert_eq!(bar_offset(len, 0x3_fffc, 8), None);
    assert_eq!(bar_offset(len, 2, 4), None);
    assert_eq!(bar_offset(len, 4, 8), None);
    assert_eq!(bar_offset(len, u32::MAX - 3, 4), None);
}

#[test]
fn dma_sizes_round_up_to_whole_pages() {
    assert_eq!(page_round(0, 4096), None);
    assert_eq!(page_round(1, 4096), Some(4096));
    assert_eq!(page_round(4096, 4096), Some(4096));
    assert_eq!(page_round(4097, 65536), Some(65536));
    assert_eq!(page_round(usize::MAX, 4096), None);
    assert!(page_size().is_power_of_two());
}

#[test]
fn the_reset_ioctl_number_is_the_kernels() {
    // _IO(';', 100 + 11) on the architectures whose _IOC_NONE is 0 (x86, arm, riscv).
    if vmm_sys_util::ioctl::_IOC_NONE == 0 {
        assert_eq!(VFIO_DEVICE_RESET, 0x3B6F);
    }
}
