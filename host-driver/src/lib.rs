//! # host_driver
//!
//! The userspace driver of the Sluice NIC: one code path over a Transport (kernel VFIO, vfio-user, in-process). Not built yet: see issue 4.
#![deny(unsafe_op_in_unsafe_fn)]
