//! vfio-user messages as bytes on the wire (the protocol's header and the few commands the
//! seeds and the "next client" of the `vfio_user` target use), and the reading of replies.

/// Bytes of a message header.
pub const HEADER: usize = 16;
/// `VERSION`.
pub const VERSION: u16 = 1;
/// `DEVICE_GET_INFO`.
pub const DEVICE_GET_INFO: u16 = 4;
/// `DEVICE_GET_REGION_INFO`.
pub const DEVICE_GET_REGION_INFO: u16 = 5;
/// `GET_IRQ_INFO`.
pub const GET_IRQ_INFO: u16 = 7;
/// `REGION_READ`.
pub const REGION_READ: u16 = 9;
/// `REGION_WRITE`.
pub const REGION_WRITE: u16 = 10;
/// `DEVICE_RESET`.
pub const DEVICE_RESET: u16 = 13;
/// Header flag: a reply.
pub const FLAG_REPLY: u32 = 1;
/// Header flag: an error reply.
pub const FLAG_ERROR: u32 = 1 << 5;

/// A message: header (`id`, `command`, size from the body) and `body`.
pub fn message(id: u16, command: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&command.to_le_bytes());
    out.extend_from_slice(&((HEADER + body.len()) as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// `VERSION` 0.1 with the capabilities the crate's client sends.
pub fn version(id: u16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(
        br#"{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"migration":{"pgsize":4096}}}"#,
    );
    body.push(0);
    message(id, VERSION, &body)
}

/// A region access body: offset, region, count.
fn access(region: u32, offset: u64, count: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&offset.to_le_bytes());
    body.extend_from_slice(&region.to_le_bytes());
    body.extend_from_slice(&count.to_le_bytes());
    body
}

/// `REGION_READ` of `count` bytes.
pub fn region_read(id: u16, region: u32, offset: u64, count: u32) -> Vec<u8> {
    message(id, REGION_READ, &access(region, offset, count))
}

/// `REGION_WRITE` of `data`.
pub fn region_write(id: u16, region: u32, offset: u64, data: &[u8]) -> Vec<u8> {
    let mut body = access(region, offset, data.len() as u32);
    body.extend_from_slice(data);
    message(id, REGION_WRITE, &body)
}

/// `DEVICE_GET_INFO`.
pub fn device_get_info(id: u16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&16u32.to_le_bytes());
    body.extend_from_slice(&[0; 12]);
    message(id, DEVICE_GET_INFO, &body)
}

/// `DEVICE_GET_REGION_INFO` of region `index`.
pub fn region_info(id: u16, index: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&32u32.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    body.extend_from_slice(&index.to_le_bytes());
    body.extend_from_slice(&[0; 20]);
    message(id, DEVICE_GET_REGION_INFO, &body)
}

/// `GET_IRQ_INFO` of IRQ index `index`.
pub fn irq_info(id: u16, index: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&16u32.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    body.extend_from_slice(&index.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    message(id, GET_IRQ_INFO, &body)
}

/// `DEVICE_RESET`.
pub fn reset(id: u16) -> Vec<u8> {
    message(id, DEVICE_RESET, &[])
}

/// One reply as read back: header fields and body.
#[derive(Debug)]
pub struct Reply {
    /// `message_id`.
    pub id: u16,
    /// `command`.
    pub command: u16,
    /// `flags`.
    pub flags: u32,
    /// `error`.
    pub error: u32,
    /// Everything after the header.
    pub body: Vec<u8>,
}

/// Splits what a server wrote into replies; `Err` with a description when the bytes are not
/// a sequence of whole messages.
pub fn replies(mut bytes: &[u8]) -> Result<Vec<Reply>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < HEADER {
            return Err(format!("{} bytes left after {} replies: not a header", bytes.len(), out.len()));
        }
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let size = u32_at(4) as usize;
        if size < HEADER || size > bytes.len() {
            return Err(format!("reply {} says {size} bytes, {} are left", out.len(), bytes.len()));
        }
        out.push(Reply {
            id: u16_at(0),
            command: u16_at(2),
            flags: u32_at(8),
            error: u32_at(12),
            body: bytes[HEADER..size].to_vec(),
        });
        bytes = &bytes[size..];
    }
    Ok(out)
}
