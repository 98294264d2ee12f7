//! The fixture corpus's parts: the cases in the order they run ([`cases`]) and the runner that
//! applies them to one device and checks each verdict ([`runner`], with the export for the RTL
//! testbench). The frames they are made of come from `sluice_test_support::frame`.

pub mod cases;
pub mod runner;
