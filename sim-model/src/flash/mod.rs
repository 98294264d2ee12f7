//! The model's flash: the medium ([`Flash`]: two slots and the state area, in memory or in a
//! file) and the boot ROM's image checks ([`check`]), with the factory image
//! ([`factory_image`]). The flash controller that the host drives through the `FLASH` register
//! block, and the boot procedure, are in `device::flashctl`. The image format itself (header,
//! digest, the model configuration a payload carries) is the contract's, [`rtl_spec::image`].

mod image;
mod store;

pub use image::{BootImage, ImageFault, check, check_header, factory_image};
pub use store::{FLASH_FILE_SIZE, Flash, FlashState, PowerCutHook, SLOTS};
