//! PCI identity of the NIC: what `lspci` shows and what a driver binds to.

/// Vendor id. Sluice has no PCI-SIG vendor id yet: `0x1BAD` is a placeholder for prototypes and
/// must be replaced by an assigned id (checked against pci.ids) before a board ships.
pub const VENDOR_ID: u16 = 0x1BAD;
/// Device id of a Sluice flow-offload NIC implementing this specification's major version 1.
pub const DEVICE_ID: u16 = 0x5C01;
/// Subsystem vendor id.
pub const SUBSYSTEM_VENDOR_ID: u16 = VENDOR_ID;
/// Subsystem id: 1 for the FPGA image, 0x51 for the software model.
pub const SUBSYSTEM_ID_FPGA: u16 = 0x0001;
/// Subsystem id of the software model.
pub const SUBSYSTEM_ID_MODEL: u16 = 0x0051;
/// Class code: network controller (0x02), Ethernet (0x00), programming interface 0.
pub const CLASS_CODE: u32 = 0x02_00_00;
/// Revision id of this specification's devices.
pub const REVISION_ID: u8 = 0x01;
/// BAR holding the registers (64-bit, non-prefetchable memory).
pub const REGISTER_BAR: u8 = 0;
/// Number of MSI-X vectors the device exposes.
pub const MSIX_VECTORS: u16 = 32;
