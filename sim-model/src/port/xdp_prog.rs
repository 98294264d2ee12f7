//! The XDP program that gives an interface's frames to an AF_XDP socket, loaded and attached
//! with the `bpf()` system call directly: no libbpf, no C toolchain, no ELF object.
//!
//! The program is five instructions, written here as bytecode:
//!
//! ```text
//! r2 = *(u32 *)(r1 + 16)       ; ctx->rx_queue_index
//! r1 = map_fd(xsks)            ; the XSKMAP (a 64-bit immediate the kernel resolves)
//! r3 = XDP_PASS                ; what happens when no socket sits at that index
//! call bpf_redirect_map        ; r0 = XDP_REDIRECT, or XDP_PASS
//! exit
//! ```
//!
//! so a frame on a queue a socket is bound to goes to that socket, and a frame on any other
//! queue goes on to the kernel's stack as if there were no program. It is attached through a
//! BPF link (`BPF_LINK_CREATE`, kernel 5.9+): the attachment lives exactly as long as the link's
//! descriptor, so dropping the [`XdpProgram`] detaches it, and so does the process dying, however
//! it dies. Native (driver) mode is tried first and generic (SKB) mode where the driver has no
//! XDP of its own.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const BPF_PSEUDO_MAP_FD: u8 = 1;
const XDP_PASS: i32 = 2;

/// `XDP_FLAGS_SKB_MODE`: generic XDP, in the stack after the skb is built; any driver.
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`: native XDP, in the driver's receive path (veth has it).
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | (dst & 0x0f), off, imm }
}

/// The program, for the XSKMAP `map_fd`.
fn program(map_fd: RawFd) -> [Insn; 6] {
    [
        // BPF_LDX | BPF_MEM | BPF_W: r2 = *(u32 *)(r1 + offsetof(struct xdp_md, rx_queue_index)).
        insn(0x61, 2, 1, 16, 0),
        // BPF_LD | BPF_IMM | BPF_DW, two slots: r1 = the map (src = BPF_PSEUDO_MAP_FD).
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        // BPF_ALU64 | BPF_MOV | BPF_K: r3 = XDP_PASS (the action when the slot is empty).
        insn(0xb7, 3, 0, 0, XDP_PASS),
        // BPF_JMP | BPF_CALL: bpf_redirect_map(r1, r2, r3).
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        // BPF_JMP | BPF_EXIT: return r0.
        insn(0x95, 0, 0, 0, 0),
    ]
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    // The rest of the union (target-specific) stays zero for XDP.
    _rest: [u64; 4],
}

/// `bpf(cmd, attr, sizeof attr)`: a new descriptor, or the OS error.
///
/// # Safety
/// `attr` must be the attribute struct of `cmd`, and every pointer it holds must point to
/// live memory of the size it claims for the duration of the call.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: per the contract; the kernel reads (and for some commands writes) `size_of::<T>()`
    // bytes at `attr`.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size_of::<T>()) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (d, s) in out.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    out
}

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("bpf returned a bad descriptor"))?;
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Where an attach step failed, with the OS error (`EPERM`, `EOPNOTSUPP`, `EBUSY`...).
#[derive(Debug)]
pub struct AttachError {
    /// The step: "creating the XSKMAP", "loading the program", "attaching"...
    pub step: &'static str,
    /// The error.
    pub err: io::Error,
    /// The verifier's words, when it refused the program.
    pub log: String,
}

impl std::fmt::Display for AttachError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.err)?;
        if !self.log.is_empty() {
            write!(f, " (verifier: {})", self.log.trim().replace('\n', "; "))?;
        }
        Ok(())
    }
}

fn step(step: &'static str) -> impl FnOnce(io::Error) -> AttachError {
    move |err| AttachError { step, err, log: String::new() }
}

/// An XSKMAP, the program over it and its attachment to an interface; dropping it detaches.
#[derive(Debug)]
pub struct XdpProgram {
    map: OwnedFd,
    /// Kept so the program outlives any question about it; the link holds its own reference.
    _prog: OwnedFd,
    /// The attachment: closing it detaches the program.
    _link: OwnedFd,
    /// `XDP_FLAGS_DRV_MODE` or `XDP_FLAGS_SKB_MODE`: how it ended up attached.
    pub mode: u32,
}

impl XdpProgram {
    /// Creates an XSKMAP of `queues` slots with the socket `xsk` at slot `queue`, loads the
    /// program and attaches it to interface `ifindex` of the calling thread's namespace,
    /// natively when `native` and the driver can, else generically.
    pub fn attach(ifindex: u32, queue: u32, xsk: RawFd, native: bool) -> Result<Self, AttachError> {
        let mut attr = MapCreateAttr {
            map_type: BPF_MAP_TYPE_XSKMAP,
            key_size: 4,
            value_size: 4,
            max_entries: queue + 1,
            map_name: name16("sluice_xsks"),
            ..MapCreateAttr::default()
        };
        // SAFETY: the BPF_MAP_CREATE attributes, no pointers.
        let map = owned(unsafe { bpf(BPF_MAP_CREATE, &mut attr) }.map_err(step("creating the XSKMAP"))?)
            .map_err(step("creating the XSKMAP"))?;

        let (key, value) = (queue, u32::try_from(xsk).unwrap_or(u32::MAX));
        let mut attr = MapElemAttr {
            map_fd: u32::try_from(map.as_raw_fd()).unwrap_or(u32::MAX),
            key: (&raw const key) as u64,
            value: (&raw const value) as u64,
            ..MapElemAttr::default()
        };
        // SAFETY: key and value point to live u32s, the sizes the map was created with.
        unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.map_err(step("putting the socket in the XSKMAP"))?;

        let insns = program(map.as_raw_fd());
        let license = c"Apache-2.0";
        let mut log = vec![0u8; 4096];
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: 1,
            log_size: log.len() as u32,
            log_buf: log.as_mut_ptr() as u64,
            prog_name: name16("sluice_xsk"),
            expected_attach_type: BPF_XDP,
            ..ProgLoadAttr::default()
        };
        // SAFETY: insns, license and log point to live buffers of the lengths given.
        let prog = match unsafe { bpf(BPF_PROG_LOAD, &mut attr) }.and_then(owned) {
            Ok(fd) => fd,
            Err(err) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let log = String::from_utf8_lossy(&log[..end]).into_owned();
                return Err(AttachError { step: "loading the XDP program", err, log });
            }
        };

        let modes: &[u32] =
            if native { &[XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE] } else { &[XDP_FLAGS_SKB_MODE] };
        let mut last = None;
        for &mode in modes {
            let mut attr = LinkCreateAttr {
                prog_fd: u32::try_from(prog.as_raw_fd()).unwrap_or(u32::MAX),
                target_ifindex: ifindex,
                attach_type: BPF_XDP,
                flags: mode,
                ..LinkCreateAttr::default()
            };
            // SAFETY: the BPF_LINK_CREATE attributes, no pointers.
            match unsafe { bpf(BPF_LINK_CREATE, &mut attr) }.and_then(owned) {
                Ok(link) => return Ok(Self { map, _prog: prog, _link: link, mode }),
                // Busy (another program) or no permission will not change with the mode.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EPERM | libc::EEXIST)) => {
                    return Err(AttachError {
                        step: "attaching the XDP program",
                        err: e,
                        log: String::new(),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        let err = last.unwrap_or_else(|| io::Error::other("no XDP mode to try"));
        Err(AttachError { step: "attaching the XDP program", err, log: String::new() })
    }

    /// The XSKMAP's descriptor.
    pub fn map_fd(&self) -> RawFd {
        self.map.as_raw_fd()
    }

    /// "native" or "generic".
    pub fn mode_name(&self) -> &'static str {
        if self.mode == XDP_FLAGS_DRV_MODE { "native" } else { "generic" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_is_the_bytecode_documented() {
        let p = program(7);
        assert_eq!(size_of::<Insn>(), 8, "struct bpf_insn is 8 bytes");
        assert_eq!(p[0], Insn { code: 0x61, regs: 0x12, off: 16, imm: 0 }, "r2 = *(u32 *)(r1 + 16)");
        assert_eq!(p[1], Insn { code: 0x18, regs: 0x11, off: 0, imm: 7 }, "r1 = map fd 7");
        assert_eq!(p[2], Insn { code: 0, regs: 0, off: 0, imm: 0 }, "second half of the 64-bit load");
        assert_eq!(p[3].imm, XDP_PASS);
        assert_eq!((p[4].code, p[4].imm), (0x85, 51), "call bpf_redirect_map");
        assert_eq!(p[5].code, 0x95, "exit");
    }

    #[test]
    fn attribute_layouts_match_the_kernels() {
        // Offsets the kernel's union bpf_attr gives these fields.
        assert_eq!(std::mem::offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(std::mem::offset_of!(MapElemAttr, key), 8);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(std::mem::offset_of!(LinkCreateAttr, flags), 12);
    }

    #[test]
    fn names_are_cut_to_fifteen_bytes() {
        assert_eq!(&name16("sluice_xsks")[..12], b"sluice_xsks\0");
        assert_eq!(name16("a-name-longer-than-sixteen")[15], 0);
    }
}
