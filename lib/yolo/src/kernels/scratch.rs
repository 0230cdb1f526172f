//! Per-thread scratch buffers reused across calls.
//!
//! The transform buffers of a large layer are megabytes; allocating them per
//! call costs a page fault per 4 KiB on first touch. Each calling thread keeps
//! its buffers between calls instead, up to [`MAX_KEPT_BYTES`] each (bigger
//! ones, e.g. yolov4 @608 at batch 8, are freed after the call).

use std::cell::RefCell;

/// Largest buffer a thread keeps for the next call.
pub(crate) const MAX_KEPT_BYTES: usize = 64 << 20;

thread_local! {
    static KEPT: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `N` buffers of the given lengths. Their contents are
/// unspecified (whatever the last call left): `f` must write before it reads.
pub(crate) fn with_buffers<const N: usize, R>(
    lens: [usize; N],
    f: impl FnOnce([&mut [f32]; N]) -> R,
) -> R {
    let mut buffers: [Vec<f32>; N] = std::array::from_fn(|_| {
        KEPT.with(|kept| kept.borrow_mut().pop())
            .unwrap_or_default()
    });
    // A kept buffer keeps its whole length: growing it again would zero the
    // grown part on every call (a memset of megabytes per layer), and the
    // contents are unspecified anyway. Only new capacity is zeroed, once.
    for (buffer, &len) in buffers.iter_mut().zip(&lens) {
        if buffer.len() < len {
            buffer.resize(len, 0.0);
        }
    }
    let result = {
        let mut views = buffers.iter_mut().zip(lens).map(|(b, len)| &mut b[..len]);
        f(std::array::from_fn(|_| {
            views.next().expect("one view per buffer")
        }))
    };
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        for buffer in buffers {
            if buffer.capacity() * size_of::<f32>() <= MAX_KEPT_BYTES {
                kept.push(buffer);
            }
        }
    });
    result
}
