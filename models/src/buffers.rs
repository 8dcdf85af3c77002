//! Buffers reused across calls (passes, attention tasks, training steps):
//! resized to what a call needs, so that once warm a call allocates nothing.

/// `buf` as `len` elements whose values the caller overwrites (kept from the
/// last use, never read before written).
pub(crate) fn sized<T: Copy + Default>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    buf.resize(len, T::default());
    &mut buf[..len]
}

/// `buf` as `len` zeros (default values).
pub(crate) fn zeroed<T: Copy + Default>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    buf.clear();
    buf.resize(len, T::default());
    &mut buf[..len]
}
