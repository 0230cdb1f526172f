//! The bounded frame buffer between the cameras and the broker.
//!
//! Cameras never wait for the broker: [`FrameBuffer::push`] returns at once.
//! When the buffer is full the **oldest** frame is dropped (frames are
//! perishable; the newest view of a scene is worth most to the detector).

use std::collections::VecDeque;
use std::sync::Mutex;

use safecity_events::Frame;
use tokio::sync::Notify;

/// A bounded, drop-oldest queue of frames.
#[derive(Debug)]
pub struct FrameBuffer {
    frames: Mutex<VecDeque<Frame>>,
    capacity: usize,
    notify: Notify,
}

impl FrameBuffer {
    /// A buffer holding at most `capacity` frames (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        FrameBuffer {
            frames: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
            notify: Notify::new(),
        }
    }

    /// Appends a frame; returns the frame dropped to make room, if any.
    pub fn push(&self, frame: Frame) -> Option<Frame> {
        let dropped = {
            let mut frames = self.lock();
            let dropped = if frames.len() >= self.capacity {
                frames.pop_front()
            } else {
                None
            };
            frames.push_back(frame);
            dropped
        };
        self.notify.notify_one();
        dropped
    }

    /// Puts a frame back at the front (a publish that failed with the
    /// connection); drops it instead when the buffer is full again.
    pub fn push_front(&self, frame: Frame) -> Option<Frame> {
        let mut frames = self.lock();
        if frames.len() >= self.capacity {
            return Some(frame);
        }
        frames.push_front(frame);
        None
    }

    /// Takes the oldest frame, if any.
    pub fn try_pop(&self) -> Option<Frame> {
        self.lock().pop_front()
    }

    /// Waits for a frame.
    pub async fn pop(&self) -> Frame {
        loop {
            let notified = self.notify.notified();
            if let Some(frame) = self.try_pop() {
                return frame;
            }
            notified.await;
        }
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no frame is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Frame>> {
        self.frames.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safecity_events::Camera;

    fn frame(sequence: u64) -> Frame {
        Frame {
            camera: Camera {
                id: "c".into(),
                region: "seoul".into(),
                latitude: 37.0,
                longitude: 127.0,
            },
            captured_at: chrono::Utc::now(),
            sequence,
            jpeg: vec![0xFF, 0xD8],
        }
    }

    #[test]
    fn drops_oldest_first() {
        let buffer = FrameBuffer::new(2);
        assert!(buffer.push(frame(1)).is_none());
        assert!(buffer.push(frame(2)).is_none());
        assert_eq!(buffer.push(frame(3)).map(|f| f.sequence), Some(1));
        assert_eq!(buffer.try_pop().map(|f| f.sequence), Some(2));
        assert!(buffer.push_front(frame(2)).is_none());
        assert_eq!(buffer.push_front(frame(0)).map(|f| f.sequence), Some(0));
        assert_eq!(buffer.len(), 2);
    }

    #[tokio::test]
    async fn pop_waits_for_a_push() {
        let buffer = std::sync::Arc::new(FrameBuffer::new(4));
        let waiter = tokio::spawn({
            let buffer = buffer.clone();
            async move { buffer.pop().await.sequence }
        });
        tokio::task::yield_now().await;
        buffer.push(frame(9));
        assert_eq!(waiter.await.expect("join"), 9);
    }
}
