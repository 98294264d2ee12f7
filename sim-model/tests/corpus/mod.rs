//! The fixture corpus's parts: the cases in the order they run ([`cases`]), the frames they
//! are made of ([`pkt`]), and the runner that applies them to one device and checks each
//! verdict ([`runner`], with the export for the RTL testbench).

pub mod cases;
pub mod pkt;
pub mod runner;
