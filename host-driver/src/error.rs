//! The driver's errors: each names the operation that failed and carries the cause, so a
//! person can act on it.

use std::fmt;

/// Everything the driver can fail at.
#[derive(Debug)]
pub enum DriverError {
    /// A system call or I/O step of a transport failed.
    Io {
        /// What the driver was doing ("memfd_create for DMA memory", "connect to /run/x.sock").
        op: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The kernel VFIO path cannot reach the device; `fix` says what to do.
    Vfio {
        /// The PCI address.
        pci: String,
        /// What is wrong.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// The vfio-user peer refused or broke the protocol.
    VfioUser {
        /// What the driver was doing.
        op: String,
        /// The peer's or the library's message.
        detail: String,
    },
    /// BAR0 does not start with a Sluice identity block.
    NotASluiceDevice {
        /// The block type word found at offset 0.
        type_word: u32,
        /// The word found where the magic should be.
        magic: u32,
    },
    /// The device implements another major version of the specification.
    VersionMismatch {
        /// The device's `SPEC_VERSION` (major.minor).
        device: (u16, u16),
        /// The version this driver implements.
        driver: (u16, u16),
    },
    /// A register block the driver needs is not in the chain, or the chain is broken.
    BlockChain(String),
    /// The device did not come out of reset, refused a ring configuration, or reads back wrong.
    BringUp(String),
    /// No completion arrived for a submitted command in time: the device stopped answering.
    CompletionTimeout {
        /// Commands submitted and not completed.
        outstanding: u32,
        /// How long the driver waited, in milliseconds.
        waited_ms: u64,
    },
    /// A ring has no room for what the caller wanted to submit.
    RingFull(&'static str),
    /// The device completed a command the driver waited on with a status other than `Ok`.
    Refused {
        /// What the driver asked ("CounterBankRead").
        op: &'static str,
        /// The completion's status ([`rtl_spec::codes::Status`]).
        status: u8,
    },
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Io { op, source } => write!(f, "{op}: {source}"),
            DriverError::Vfio { pci, problem, fix } => write!(f, "vfio {pci}: {problem} (fix: {fix})"),
            DriverError::VfioUser { op, detail } => write!(f, "vfio-user: {op}: {detail}"),
            DriverError::NotASluiceDevice { type_word, magic } => write!(
                f,
                "not a Sluice NIC: BAR0 starts with type {type_word:#010x} and magic {magic:#010x} \
                 (expected {:#010x} and {:#010x})",
                rtl_spec::codes::BlockType::Identity as u32,
                rtl_spec::MAGIC
            ),
            DriverError::VersionMismatch { device, driver } => write!(
                f,
                "the device implements specification {}.{}, this driver implements {}.{}: \
                 the major versions differ; flash a matching image or use a matching driver",
                device.0, device.1, driver.0, driver.1
            ),
            DriverError::BlockChain(m) => write!(f, "register block chain: {m}"),
            DriverError::BringUp(m) => write!(f, "bring-up: {m}"),
            DriverError::CompletionTimeout { outstanding, waited_ms } => write!(
                f,
                "the device stopped completing commands: {outstanding} outstanding after {waited_ms} ms"
            ),
            DriverError::RingFull(ring) => write!(f, "the {ring} ring is full"),
            DriverError::Refused { op, status } => match rtl_spec::codes::Status::try_from(*status) {
                Ok(s) => write!(f, "the device refused {op}: {s:?}"),
                Err(_) => write!(f, "the device refused {op}: status {status}"),
            },
        }
    }
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DriverError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl DriverError {
    /// An I/O error with the operation that failed.
    pub fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        DriverError::Io { op: op.into(), source }
    }
}
