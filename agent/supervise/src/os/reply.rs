//! One answer to one request: how the supervisor thread answers the calls of
//! its [`Supervisor`](super::Supervisor) handle.
//!
//! A mutex and a condvar rather than a `std::sync::mpsc` channel: each
//! channel type instantiates all of std's channel code (three flavours),
//! about 5 kB of the binary per type on a router, and one answer needs none
//! of it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// A new slot: the loop answers through the [`Answer`], the caller waits on
/// the [`Pending`].
pub fn slot<T>() -> (Answer<T>, Pending<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State::Waiting),
        ready: Condvar::new(),
    });
    (Answer(Arc::clone(&slot)), Pending(slot))
}

enum State<T> {
    Waiting,
    Answered(T),
    /// The [`Answer`] was dropped unanswered (the loop ended first).
    Dropped,
}

struct Slot<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The answering half. Dropped without [`send`](Answer::send), it wakes the
/// caller with nothing.
pub struct Answer<T>(Arc<Slot<T>>);

impl<T> Answer<T> {
    pub fn send(self, value: T) {
        *self.0.lock() = State::Answered(value);
        // Dropping `self` wakes the caller.
    }
}

impl<T> Drop for Answer<T> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        if matches!(*state, State::Waiting) {
            *state = State::Dropped;
        }
        self.0.ready.notify_one();
    }
}

/// The waiting half.
pub struct Pending<T>(Arc<Slot<T>>);

impl<T> Pending<T> {
    /// Blocks until the answer comes; `None` when the request was dropped
    /// unanswered. Bounded by the [`Answer`]'s life: it is answered or
    /// dropped when the loop takes the request or ends.
    pub fn wait(self) -> Option<T> {
        let mut state = self.0.lock();
        loop {
            match std::mem::replace(&mut *state, State::Waiting) {
                State::Waiting => {
                    state = self
                        .0
                        .ready
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                State::Answered(value) => return Some(value),
                State::Dropped => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_sent_from_another_thread_arrives() {
        let (answer, pending) = slot();
        let t = std::thread::spawn(move || answer.send(42));
        assert_eq!(pending.wait(), Some(42));
        t.join().unwrap();
    }

    #[test]
    fn a_request_dropped_unanswered_wakes_the_caller_with_nothing() {
        let (answer, pending) = slot::<u32>();
        let t = std::thread::spawn(move || drop(answer));
        assert_eq!(pending.wait(), None);
        t.join().unwrap();
    }
}
