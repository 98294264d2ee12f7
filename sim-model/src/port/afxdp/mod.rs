//! The AF_XDP port: the model's wire is a Linux interface, its frames taken from the driver by
//! an XDP program before the kernel's stack sees them.
//!
//! This module owns [`AfXdpPort`]: a UMEM (one anonymous mapping cut into 4 KiB frames, the
//! first [`RX_FRAMES`] lent to the kernel for receiving, the other [`TX_FRAMES`] ours to send
//! from), the four rings over it (fill, completion, rx, tx; from `xdpilone`), and the XDP
//! program of [`super::xdp_prog`] that redirects the bound queue's frames to the socket.
//!
//! - Receive: descriptors are read from the rx ring in a burst, each frame copied (volatile)
//!   into the caller's [`RxBurst`], and its UMEM frame returned to the fill ring at once, so
//!   the kernel never runs short; one release and one fill commit per burst.
//! - Send: a frame is copied into a free tx frame and its descriptor queued here; [`flush`]
//!   publishes the lot on the tx ring with one producer update and kicks the kernel with one
//!   `sendto` (more only while it answers "again": copy mode sends 32 a call), then reaps the
//!   completion ring back into the free list. `need_wakeup` is on, so a kick is made only when
//!   the kernel asks for one.
//! - Idle: the socket's descriptor polls readable when the rx ring holds frames
//!   ([`Port::poll_fd`]).
//!
//! Native XDP (`XDP_FLAGS_DRV_MODE`) is used where the driver has it (veth does: frames the peer
//! sends are handed to the program in veth's NAPI poll, before any skb is built for our side),
//! generic XDP elsewhere; either way the socket runs in copy mode unless the driver offers zero
//! copy. Sending from an AF_XDP socket goes through the device's ordinary transmit, so a veth
//! peer needs no XDP program of its own (that is only asked of a veth that XDP_REDIRECTs or
//! XDP_TXes into its peer, which this port never does).
//!
//! What the port expects of the interface: an MTU whose frames fit one UMEM frame after the
//! kernel's 256-byte XDP headroom (about 3.8 KiB; a larger one is refused, and `kind = "auto"`
//! falls back to AF_PACKET), and offloads off as for AF_PACKET (design.md, "Test topologies").
//! Only queue `queue` is taken: frames on the interface's other receive queues go on to the
//! kernel (the program's XDP_PASS), so bind a single-queue interface or steer the traffic.
//! Frames carry no timestamp (`None`): the model stamps them with its own clock.

use std::ffi::CString;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::RawFd;
use std::ptr::NonNull;

use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig};

use super::mmap::{self, Mapping};
use super::netdev::NetDev;
use super::xdp_prog::{XDP_FLAGS_DRV_MODE, XdpProgram};
use super::{Port, RxBurst};

/// Bytes per UMEM frame: a page, the largest the kernel takes in aligned mode.
const FRAME_SIZE: u32 = 4096;
/// The headroom the kernel keeps in front of every received frame (`XDP_PACKET_HEADROOM`).
const XDP_HEADROOM: u32 = 256;
/// The longest frame a UMEM frame holds.
const MAX_FRAME: usize = (FRAME_SIZE - XDP_HEADROOM) as usize;
/// Frames lent to the kernel for receiving (the fill and rx rings hold as many).
pub const RX_FRAMES: u32 = 2048;
/// Frames to send from (the tx and completion rings hold as many).
pub const TX_FRAMES: u32 = 1024;
/// Kicks one flush may make while the kernel answers EAGAIN (copy mode sends 32 per call).
const MAX_KICKS: usize = (TX_FRAMES / 32) as usize + 2;

/// How the XDP program ended up attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver's receive path (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the stack, after an skb is built (`XDP_FLAGS_SKB_MODE`): any driver.
    Generic,
}

/// A port on one receive queue of a Linux interface through an AF_XDP socket.
pub struct AfXdpPort {
    // Fields drop in order: the program is detached first, then the rings are unmapped and the
    // socket closed, and the UMEM's memory goes last, when the kernel no longer uses it.
    prog: XdpProgram,
    rx: RingRx,
    tx: RingTx,
    fq_cq: DeviceQueue,
    fd: RawFd,
    dev: NetDev,
    queue: u32,
    /// Tx frames (UMEM offsets) that are ours to fill.
    free_tx: Vec<u64>,
    /// Descriptors of frames copied but not yet published on the tx ring.
    queued: Vec<XdpDesc>,
    /// Rx frames read this burst, to give back to the fill ring.
    refill: Vec<u64>,
    /// Descriptors were published on the tx ring and the kernel not yet asked to send them.
    unkicked: bool,
    /// The driver runs the socket in zero-copy mode (else copy mode: veth, generic XDP).
    zero_copy: bool,
    /// Rx descriptors that did not describe a frame inside the UMEM (never seen; counted).
    bad_descs: u64,
    area: Mapping,
}

impl std::fmt::Debug for AfXdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfXdpPort")
            .field("ifname", &self.dev.name())
            .field("queue", &self.queue)
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

/// A kernel refusal while setting AF_XDP up: `PermissionDenied` stays itself, anything else
/// becomes `Unsupported` (AF_XDP cannot be had here), so that `kind = "auto"` falls back.
fn refused(dev: &NetDev, op: &str, errno: i32) -> io::Error {
    let err = io::Error::from_raw_os_error(errno);
    let err = dev.error(op, &err);
    if matches!(errno, libc::EPERM | libc::EACCES) {
        err
    } else {
        io::Error::new(io::ErrorKind::Unsupported, err.to_string())
    }
}

/// Whether the bound socket `fd` runs in zero-copy mode (`XDP_OPTIONS`, kernel 5.3+; false
/// when the kernel cannot tell).
fn zero_copy(fd: RawFd) -> bool {
    const SOL_XDP: libc::c_int = 283;
    const XDP_OPTIONS: libc::c_int = 8;
    const XDP_OPTIONS_ZEROCOPY: u32 = 1;
    let mut flags: u32 = 0;
    let mut len = size_of::<u32>() as libc::socklen_t;
    // SAFETY: `flags` and `len` are live and `len` is flags' size (struct xdp_options).
    let rc = unsafe { libc::getsockopt(fd, SOL_XDP, XDP_OPTIONS, (&raw mut flags).cast(), &raw mut len) };
    rc == 0 && flags & XDP_OPTIONS_ZEROCOPY != 0
}

/// Binds the socket to its queue. A socket of a process that just ended holds the queue for a
/// moment after (the kernel releases it from a work queue): `EBUSY` is retried for up to a
/// second, so a restarted daemon gets its queue back.
fn bind(umem: &Umem, user: &xdpilone::User, dev: &NetDev, queue: u32) -> io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let errno = match umem.bind(user) {
            Ok(()) => return Ok(()),
            Err(e) => e.get_raw(),
        };
        if errno == libc::EBUSY && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            continue;
        }
        return Err(match errno {
            libc::EINVAL => io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "af_xdp: bind to {} queue {queue}: {} (no such queue, or no AF_XDP here)",
                    dev.name(),
                    io::Error::from_raw_os_error(libc::EINVAL)
                ),
            ),
            errno => refused(dev, &format!("bind to queue {queue} of"), errno),
        });
    }
}

impl AfXdpPort {
    /// Opens an AF_XDP socket on receive queue `queue` of `ifname` (in the calling thread's
    /// network namespace) and attaches the redirecting XDP program, natively if the driver can.
    /// Needs root (or CAP_NET_RAW, CAP_NET_ADMIN and CAP_BPF).
    ///
    /// Errors name the interface: `NotFound`/`InvalidInput`/`NetworkDown` for a missing or bad
    /// interface, a queue it does not have, or one that is down; `PermissionDenied`; and
    /// `Unsupported` for anything else the kernel refuses (no AF_XDP, an MTU too large for a
    /// UMEM frame, another XDP program attached...).
    pub fn open(ifname: &str, queue: u32) -> io::Result<Self> {
        let dev = NetDev::open("af_xdp", ifname)?;
        if let Some(n) = dev.rx_queues().filter(|&n| queue >= n) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("af_xdp: {ifname} has no receive queue {queue} (it has {n}: 0..={})", n - 1),
            ));
        }
        let mtu = dev.mtu().map_err(|e| dev.error("MTU of", &e))?;
        // Ethernet header and one VLAN tag on top of the MTU.
        if mtu as usize + 18 > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "af_xdp: {ifname}: MTU {mtu} is larger than an AF_XDP frame holds ({} bytes)",
                    MAX_FRAME - 18
                ),
            ));
        }

        let frames = RX_FRAMES + TX_FRAMES;
        let area = Mapping::anonymous(frames as usize * FRAME_SIZE as usize)
            .map_err(|e| dev.error("UMEM for", &e))?;
        let config = UmemConfig {
            fill_size: RX_FRAMES,
            complete_size: TX_FRAMES,
            frame_size: FRAME_SIZE,
            headroom: 0,
            flags: 0,
        };
        let region = NonNull::slice_from_raw_parts(area.base(), area.len());
        // SAFETY: `region` is the whole of `area`, page aligned (mmap), and `area` is a field of
        // the port that outlives the socket (it drops last); the kernel pins the pages.
        let umem = unsafe { Umem::new(config, region) }
            .map_err(|e| refused(&dev, "AF_XDP socket (UMEM) on", e.get_raw()))?;

        let mut info = IfInfo::invalid();
        let cname = CString::new(ifname).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        info.from_name(&cname).map_err(|e| refused(&dev, "interface", e.get_raw()))?;
        info.set_queue(queue);
        let sock =
            Socket::with_shared(&info, &umem).map_err(|e| refused(&dev, "AF_XDP socket on", e.get_raw()))?;
        let mut fq_cq =
            umem.fq_cq(&sock).map_err(|e| refused(&dev, "fill/completion rings on", e.get_raw()))?;
        let rings = SocketConfig {
            rx_size: NonZeroU32::new(RX_FRAMES),
            tx_size: NonZeroU32::new(TX_FRAMES),
            bind_flags: SocketConfig::XDP_BIND_NEED_WAKEUP,
        };
        let user = umem.rx_tx(&sock, &rings).map_err(|e| refused(&dev, "rx/tx rings on", e.get_raw()))?;
        let rx = user.map_rx().map_err(|e| refused(&dev, "mapping the rx ring of", e.get_raw()))?;
        let tx = user.map_tx().map_err(|e| refused(&dev, "mapping the tx ring of", e.get_raw()))?;
        bind(&umem, &user, &dev, queue)?;

        // Every rx frame goes to the kernel before any traffic is redirected here.
        {
            let mut fill = fq_cq.fill(RX_FRAMES);
            let given = fill.insert((0..RX_FRAMES).map(|i| u64::from(i) * u64::from(FRAME_SIZE)));
            fill.commit();
            if given != RX_FRAMES {
                return Err(io::Error::other(format!(
                    "af_xdp: {ifname}: the fill ring took {given} of {RX_FRAMES} frames"
                )));
            }
        }
        let fd = user.as_raw_fd();
        let prog = XdpProgram::attach(dev.index(), queue, fd, true).map_err(|e| {
            let kind = match e.err.kind() {
                io::ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
                _ => io::ErrorKind::Unsupported,
            };
            io::Error::new(kind, format!("af_xdp: {ifname}: {e}"))
        })?;
        tracing::debug!(
            interface = ifname,
            queue,
            mode = prog.mode_name(),
            xskmap = prog.map_fd(),
            "AF_XDP port open"
        );
        // `umem` and `user` only hold clones of the socket's descriptor: the rings keep it open.
        drop((user, umem));
        let free_tx = (RX_FRAMES..frames).rev().map(|i| u64::from(i) * u64::from(FRAME_SIZE)).collect();
        Ok(Self {
            prog,
            rx,
            tx,
            fq_cq,
            fd,
            dev,
            queue,
            free_tx,
            queued: Vec::with_capacity(TX_FRAMES as usize),
            refill: Vec::with_capacity(RX_FRAMES as usize),
            unkicked: false,
            zero_copy: zero_copy(fd),
            bad_descs: 0,
            area,
        })
    }

    /// The interface this port is bound to.
    pub fn ifname(&self) -> &str {
        self.dev.name()
    }

    /// How the XDP program is attached.
    pub fn mode(&self) -> XdpMode {
        if self.prog.mode == XDP_FLAGS_DRV_MODE { XdpMode::Native } else { XdpMode::Generic }
    }

    /// The receive queue the socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Frames the kernel dropped because the rx or fill ring was full, and rx descriptors that
    /// did not describe a frame in the UMEM.
    pub fn dropped_frames(&self) -> u64 {
        let kernel = self.fq_cq.statistics_v2().map_or(0, |s| s.rx_dropped + s.rx_ring_full);
        kernel + self.bad_descs
    }

    /// Gives finished tx frames back to the free list.
    fn reap(&mut self) {
        let mut done = self.fq_cq.complete(TX_FRAMES);
        while let Some(addr) = done.read() {
            self.free_tx.push(addr - addr % u64::from(FRAME_SIZE));
        }
        done.release();
    }

    /// Publishes the queued descriptors on the tx ring (one producer update, two when the
    /// ring's cached view of the kernel's consumer was stale).
    fn publish(&mut self) {
        let mut done = 0;
        // `transmit(n)` reserves what the cached consumer index says is free and reloads it only
        // when that is nothing: a second call sees the kernel's progress since.
        for _ in 0..2 {
            if done == self.queued.len() {
                break;
            }
            let mut w = self.tx.transmit((self.queued.len() - done) as u32);
            done += w.insert(self.queued[done..].iter().copied()) as usize;
            w.commit();
        }
        self.unkicked |= done > 0;
        // The ring has a slot for every tx frame, so it cannot be full; if it were, the frames
        // left over go back to the free list (dropped).
        for d in self.queued.drain(..).skip(done) {
            self.free_tx.push(d.addr);
        }
    }

    /// Asks the kernel to send what the tx ring holds: `sendto`, repeated while it answers
    /// "again" (copy mode sends 32 a call and says EAGAIN while more wait). A call that
    /// succeeds has drained the ring: the kernel's consumer index may still lag in the shared
    /// page, so it is not asked again.
    fn kick(&mut self) -> io::Result<()> {
        if !self.unkicked {
            return Ok(());
        }
        for _ in 0..MAX_KICKS {
            if !self.tx.needs_wakeup() {
                self.unkicked = false;
                return Ok(());
            }
            // SAFETY: a zero-length sendto on our socket with no buffers: it only kicks tx.
            let rc = unsafe {
                libc::sendto(self.fd, std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0)
            };
            if rc >= 0 {
                self.unkicked = false;
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN | libc::EBUSY | libc::EINTR | libc::ENOBUFS) => {}
                _ => {
                    self.dev.forget_link();
                    return Err(self.dev.error("send on", &err));
                }
            }
        }
        Ok(())
    }
}

impl Port for AfXdpPort {
    fn recv_burst(&mut self, burst: &mut RxBurst, max: usize) -> io::Result<usize> {
        let mut n = 0;
        {
            let mut ready = self.rx.receive(u32::try_from(max).unwrap_or(u32::MAX));
            while let Some(desc) = ready.read() {
                let (addr, len) = (desc.addr as usize, desc.len as usize);
                match self.area.at(addr, len).filter(|_| len <= MAX_FRAME) {
                    Some(p) => {
                        burst.push_with(len, None, |dst| {
                            // SAFETY: the kernel handed this frame over on the rx ring (read
                            // after an acquire of its producer index) and gets it back only
                            // through the fill ring below; `p..p + len` is inside the UMEM.
                            unsafe { mmap::copy_in(p, dst) };
                            len
                        });
                        n += 1;
                    }
                    None => self.bad_descs += 1,
                }
                self.refill.push(desc.addr - desc.addr % u64::from(FRAME_SIZE));
            }
            ready.release();
        }
        // As in `publish`: a second reservation sees the kernel's progress the first one did
        // not. The fill ring has room for every rx frame, so all are given back.
        for _ in 0..2 {
            if self.refill.is_empty() {
                break;
            }
            let mut fill = self.fq_cq.fill(self.refill.len() as u32);
            let given = fill.insert(self.refill.iter().copied()) as usize;
            fill.commit();
            drop(fill);
            self.refill.drain(..given);
        }
        if self.zero_copy && self.fq_cq.needs_wakeup() {
            // Zero-copy drivers stop when the fill ring ran dry; they want a poke. (In copy
            // mode the flag means nothing to the receive path, and the poke, a poll(), would
            // try to transmit: a wasted system call per burst.)
            self.fq_cq.wake();
        }
        Ok(n)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        if frame.len() > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "af_xdp: send on {}: a {}-byte frame does not fit a UMEM frame",
                    self.dev.name(),
                    frame.len()
                ),
            ));
        }
        if self.free_tx.is_empty() {
            self.reap();
        }
        if self.free_tx.is_empty() && !self.queued.is_empty() {
            // Every frame is queued here: hand them over now and take back what is done.
            self.flush()?;
        }
        let Some(addr) = self.free_tx.pop() else {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("af_xdp: send on {}: every tx frame is in flight", self.dev.name()),
            ));
        };
        let Some(dst) = self.area.at(addr as usize, frame.len()) else {
            return Err(io::Error::other("af_xdp: a tx frame outside the UMEM"));
        };
        // SAFETY: the frame at `addr` is on our free list: the kernel completed it (or never had
        // it) and gets it only when its descriptor is published with release ordering.
        unsafe { mmap::copy_out(frame, dst) };
        self.queued.push(XdpDesc { addr, len: frame.len() as u32, options: 0 });
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.publish();
        let kicked = self.kick();
        self.reap();
        kicked
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn link_up(&self) -> bool {
        self.dev.link_up()
    }

    fn mac(&self) -> Option<[u8; 6]> {
        self.dev.mac()
    }

    fn describe(&self) -> String {
        format!("af_xdp:{} {} q{}", self.dev.name(), self.prog.mode_name(), self.queue)
    }
}

#[cfg(test)]
mod tests;
