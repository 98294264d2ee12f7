//! The model's flash: the medium ([`Flash`]: two slots and the state area, in memory or in a
//! file) and the boot ROM's image checks ([`check`]), with the factory image
//! ([`factory_image`]). The flash controller that the host drives through the `FLASH` register
//! block, and the boot procedure, are in `device::flashctl`.

mod image;
mod store;

pub use image::{
    BootImage, ImageFault, check, factory_image, geometry_of, header_of, image_digest, model_caps,
    unsigned_header,
};
pub use store::{FLASH_FILE_SIZE, Flash, FlashState, PowerCutHook, SLOTS};
