//! A one-frame mailbox between a capture thread and the classifier: the newest frame wins.
//!
//! A camera delivers frames at its own pace; if classification is slower, queueing them would
//! grow memory and latency without bound. [`Latest::put`] replaces an unread frame and counts it
//! as dropped. A recording has no pace of its own: [`Latest::put_waiting`] waits until the frame
//! before has been taken, so every frame is decided, in order.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// What [`Latest::take`] found.
#[derive(Debug)]
pub(crate) enum Taken<T> {
    /// The newest value.
    Value(T),
    /// Nothing arrived within the timeout.
    Timeout,
    /// The producer finished and everything was taken.
    Closed,
}

#[derive(Debug)]
struct Slot<T> {
    value: Option<T>,
    closed: bool,
    dropped: u64,
    delivered: u64,
}

/// The mailbox.
#[derive(Debug)]
pub(crate) struct Latest<T> {
    slot: Mutex<Slot<T>>,
    ready: Condvar,
    /// Signalled when a value is taken or the mailbox closes (for [`Latest::put_waiting`]).
    taken: Condvar,
}

impl<T> Default for Latest<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Latest<T> {
    /// An empty, open mailbox.
    pub(crate) fn new() -> Self {
        Self {
            slot: Mutex::new(Slot {
                value: None,
                closed: false,
                dropped: 0,
                delivered: 0,
            }),
            ready: Condvar::new(),
            taken: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers a value, replacing (and counting as dropped) one not yet taken.
    pub(crate) fn put(&self, value: T) {
        let mut s = self.lock();
        if s.value.replace(value).is_some() {
            s.dropped += 1;
        }
        drop(s);
        self.ready.notify_one();
    }

    /// Offers a value once the one before has been taken: nothing is dropped. Gives the value
    /// back if `give_up` turns true first (checked every 100 ms) or the mailbox was closed.
    pub(crate) fn put_waiting(&self, value: T, give_up: impl Fn() -> bool) -> Option<T> {
        let mut s = self.lock();
        while s.value.is_some() && !s.closed {
            if give_up() {
                return Some(value);
            }
            s = self
                .taken
                .wait_timeout(s, Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        if s.closed {
            return Some(value);
        }
        s.value = Some(value);
        drop(s);
        self.ready.notify_one();
        None
    }

    /// Marks the end of the stream; a value not yet taken can still be taken.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
        self.taken.notify_all();
    }

    /// Waits up to `timeout` for a value.
    pub(crate) fn take(&self, timeout: Duration) -> Taken<T> {
        let mut s = self.lock();
        loop {
            if let Some(v) = s.value.take() {
                s.delivered += 1;
                drop(s);
                self.taken.notify_all();
                return Taken::Value(v);
            }
            if s.closed {
                return Taken::Closed;
            }
            let (guard, result) = self
                .ready
                .wait_timeout(s, timeout)
                .unwrap_or_else(|e| e.into_inner());
            s = guard;
            if result.timed_out() && s.value.is_none() {
                return if s.closed {
                    Taken::Closed
                } else {
                    Taken::Timeout
                };
            }
        }
    }

    /// Values replaced before anyone took them.
    pub(crate) fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Values taken (the tests check the count; the run loop needs only the drops).
    #[cfg(test)]
    pub(crate) fn delivered(&self) -> u64 {
        self.lock().delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn newest_wins_and_drops_are_counted() {
        let l = Latest::new();
        l.put(1);
        l.put(2);
        l.put(3);
        assert!(matches!(l.take(Duration::from_millis(1)), Taken::Value(3)));
        assert!(matches!(l.take(Duration::from_millis(1)), Taken::Timeout));
        assert_eq!(l.dropped(), 2);
        l.put(4);
        l.close();
        assert!(matches!(l.take(Duration::from_millis(1)), Taken::Value(4)));
        assert!(matches!(l.take(Duration::from_millis(1)), Taken::Closed));
        assert_eq!(l.delivered(), 2);
    }

    #[test]
    fn a_waiting_put_drops_nothing_and_keeps_the_order() {
        let l = Arc::new(Latest::new());
        let p = Arc::clone(&l);
        let producer = std::thread::spawn(move || {
            for i in 0..200u32 {
                assert!(p.put_waiting(i, || false).is_none());
            }
            p.close();
        });
        let mut got = Vec::new();
        loop {
            match l.take(Duration::from_secs(10)) {
                Taken::Value(v) => got.push(v),
                Taken::Closed => break,
                Taken::Timeout => panic!("stalled after {got:?}"),
            }
        }
        producer.join().unwrap();
        assert_eq!(got, (0..200).collect::<Vec<_>>());
        assert_eq!(l.dropped(), 0);
        // Given up (or closed): the value comes back.
        let l = Latest::new();
        l.put(1);
        assert_eq!(l.put_waiting(2, || true), Some(2));
        l.close();
        assert_eq!(l.put_waiting(3, || false), Some(3));
    }

    #[test]
    fn a_waiting_taker_wakes_on_put() {
        let l = Arc::new(Latest::new());
        let p = Arc::clone(&l);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            p.put(7u8);
        });
        assert!(matches!(l.take(Duration::from_secs(10)), Taken::Value(7)));
        t.join().unwrap();
    }
}
