//! Injected time: the contract's clock ([`rtl_spec::clock`]), re-exported for the model's users.

pub use rtl_spec::clock::{Clock, ManualClock, SystemClock};
