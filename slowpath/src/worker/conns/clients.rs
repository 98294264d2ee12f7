//! IPv6 clients' addresses, in a side slab beside the records: a connection keeps 4 bytes of
//! client address (an IPv4 client's address, or the slot of an IPv6 client's here) instead
//! of 16, so the IPv4 connections that are most of a table do not pay for IPv6's width.
//!
//! A slot is taken when an IPv6 connection is created and given back when it is removed, with
//! the record that names it (records are never copied, so no second record names a slot). A
//! freed slot is zeroed before it goes on the free list: nothing of one connection's client is
//! left for the next to read. The slab grows by pages of [`PAGE`] addresses, as the records'
//! does, never by doubling and copying.

/// Addresses per page (64 KiB).
pub(super) const PAGE: usize = 4096;

/// The IPv6 clients' addresses of a store's connections.
#[derive(Debug, Default)]
pub(super) struct V6Clients {
    /// Slot `s` is `pages[s / PAGE][s % PAGE]`.
    pages: Vec<Box<[[u8; 16]]>>,
    /// Slots handed out so far (the slab's length).
    slots: u32,
    /// Free slots (zeroed).
    free: Vec<u32>,
}

impl V6Clients {
    /// Keeps `addr` in a slot of its own; returns the slot.
    pub(super) fn put(&mut self, addr: [u8; 16]) -> u32 {
        let slot = self.free.pop().unwrap_or_else(|| {
            let s = self.slots;
            if s as usize % PAGE == 0 {
                self.pages.push(vec![[0; 16]; PAGE].into_boxed_slice());
            }
            self.slots += 1;
            s
        });
        if let Some(a) = self.at_mut(slot) {
            *a = addr;
        }
        slot
    }

    /// The address in `slot` (zeros for a slot never handed out).
    pub(super) fn get(&self, slot: u32) -> [u8; 16] {
        let (page, i) = (slot as usize / PAGE, slot as usize % PAGE);
        self.pages.get(page).and_then(|p| p.get(i)).copied().unwrap_or_default()
    }

    /// Gives `slot` back, zeroed.
    pub(super) fn release(&mut self, slot: u32) {
        if let Some(a) = self.at_mut(slot) {
            *a = [0; 16];
            self.free.push(slot);
        }
    }

    fn at_mut(&mut self, slot: u32) -> Option<&mut [u8; 16]> {
        self.pages.get_mut(slot as usize / PAGE)?.get_mut(slot as usize % PAGE)
    }

    /// Slots in use.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slots as usize - self.free.len()
    }

    /// Slots handed out so far, in use or free.
    #[cfg(test)]
    pub(super) fn slots(&self) -> u32 {
        self.slots
    }

    /// Heap bytes it holds (pages, free list).
    pub(super) fn heap_bytes(&self) -> usize {
        self.pages.len() * PAGE * 16
            + self.pages.capacity() * std::mem::size_of::<Box<[[u8; 16]]>>()
            + self.free.capacity() * 4
    }
}
