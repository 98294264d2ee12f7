//! # sim_model: the software Sluice NIC
//!
//! A behavioural model of the NIC, bit-true to `rtl_spec`: everything it does is observable only
//! through BAR0 registers and the memory formats of the specification, exactly as the hardware's
//! behaviour is. It owns the register file, the rings, the flow and next-hop tables, the
//! datapath (parse, lookup, FullNAT rewrite, punt), the ager, the interrupt logic, the flash controller
//! (two image slots, boot with fallback) and the packet ports (memory, pcap, AF_XDP, AF_PACKET). It never sees the driver's types.
//!
//! - [`device`]: the device (registers, rings, tables, commands, datapath, ager, interrupts);
//! - [`packet`]: zerocopy header views, the parser that classifies a frame, the rewrite;
//! - [`flash`]: the flash medium (two slots and a state area, in memory or a file) and the
//!   boot ROM's image checks (the image format itself, and the model configuration an image
//!   carries, are the contract's: `rtl_spec::image`);
//! - [`port`]: where frames come from and go to;
//! - [`mem`]: host memory as the device sees it (DMA by IOVA);
//! - [`clock`]: injected time.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod clock;
pub mod device;
pub mod flash;
pub mod mem;
pub mod packet;
pub mod port;
