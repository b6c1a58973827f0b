//! Turns in arrival order: the push lock.
//!
//! A store's writes must be applied one at a time (the head may not move between the check and
//! the append) and in the order their requests arrived, whatever the storage engine awaits on.
//! A mutex gives the first but not the second: `futures`' mutex wakes waiters in no particular
//! order, and with D1, whose every call yields, pushes pipelined on one WebSocket were applied
//! out of order (a valid push then failed with `ServerAheadError`). Here a request takes a
//! numbered [`Ticket`] synchronously when it arrives — before its first await — and its turn
//! comes when every earlier ticket is done.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A queue of turns, served in ticket order.
#[derive(Debug, Default)]
pub struct Turns {
    state: RefCell<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The number the next ticket gets.
    next: u64,
    /// The ticket whose turn it is (it may not have been polled yet).
    serving: u64,
    /// Tickets dropped before their turn came; skipped when it does.
    abandoned: BTreeSet<u64>,
    /// Wakers of tickets waiting for their turn.
    waiting: BTreeMap<u64, Waker>,
}

impl State {
    /// Ends the current turn and wakes the holder of the next live ticket.
    fn advance(&mut self) {
        self.serving += 1;
        while self.abandoned.remove(&self.serving) {
            self.serving += 1;
        }
        if let Some(waker) = self.waiting.remove(&self.serving) {
            waker.wake();
        }
    }
}

impl Turns {
    /// A queue with no tickets out.
    pub fn new() -> Turns {
        Turns::default()
    }

    /// Takes the next ticket, now. Await it for the turn; drop it to give the place up.
    pub fn ticket(&self) -> Ticket<'_> {
        let mut state = self.state.borrow_mut();
        let number = state.next;
        state.next += 1;
        Ticket {
            turns: self,
            number,
            settled: false,
        }
    }

    /// Whether no ticket is out (nothing holds or waits for a turn).
    pub fn is_idle(&self) -> bool {
        let state = self.state.borrow();
        state.serving == state.next
    }
}

/// A place in the queue. Resolves to the [`Turn`] once every earlier ticket is done.
#[derive(Debug)]
#[must_use = "a ticket does nothing unless awaited, and holds up later tickets until dropped"]
pub struct Ticket<'a> {
    turns: &'a Turns,
    number: u64,
    /// Turned into a [`Turn`], which now owns the place.
    settled: bool,
}

impl<'a> Future for Ticket<'a> {
    type Output = Turn<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Turn<'a>> {
        let mut state = self.turns.state.borrow_mut();
        if state.serving == self.number {
            state.waiting.remove(&self.number);
            drop(state);
            self.settled = true;
            Poll::Ready(Turn { turns: self.turns })
        } else {
            state.waiting.insert(self.number, cx.waker().clone());
            Poll::Pending
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut state = self.turns.state.borrow_mut();
        state.waiting.remove(&self.number);
        if state.serving == self.number {
            state.advance();
        } else {
            state.abandoned.insert(self.number);
        }
    }
}

/// The current turn; the next ticket's turn comes when this is dropped.
#[derive(Debug)]
#[must_use = "the turn ends as soon as this is dropped"]
pub struct Turn<'a> {
    turns: &'a Turns,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.turns.state.borrow_mut().advance();
    }
}

// The executor these tests drive turns with is a native dev-dependency.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use futures::executor::LocalPool;
    use futures::task::LocalSpawnExt;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Yields to the executor `n` times, as a remote storage call would.
    async fn yield_times(n: usize) {
        for _ in 0..n {
            let mut yielded = false;
            futures::future::poll_fn(|cx| {
                if yielded {
                    Poll::Ready(())
                } else {
                    yielded = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
            .await;
        }
    }

    #[test]
    fn turns_follow_ticket_order_whatever_the_waits() {
        let turns = Rc::new(Turns::new());
        let order = Rc::new(RefCell::new(Vec::new()));
        let mut pool = LocalPool::new();
        // Tickets are taken in order 0..8 before anything runs; each holder waits a different
        // number of yields before and during its turn.
        let tickets: Vec<_> = (0..8)
            .map(|i| {
                let turns = turns.clone();
                let order = order.clone();
                async move {
                    let ticket = turns.ticket();
                    yield_times((7 - i) * 3).await;
                    let _turn = ticket.await;
                    order.borrow_mut().push(i);
                    yield_times(i % 3).await;
                }
            })
            .collect();
        for t in tickets {
            pool.spawner().spawn_local(t).unwrap();
        }
        pool.run();
        assert_eq!(*order.borrow(), (0..8).collect::<Vec<_>>());
        assert!(turns.is_idle());
    }

    #[test]
    fn dropped_tickets_give_their_place_up() {
        let turns = Turns::new();
        let first = turns.ticket();
        let second = turns.ticket();
        let third = turns.ticket();
        drop(second);
        let turn = futures::executor::block_on(first);
        drop(turn);
        // The second was abandoned, so the third's turn comes at once.
        let turn = futures::executor::block_on(third);
        drop(turn);
        assert!(turns.is_idle());
        // A ticket dropped while it is its turn passes it on.
        let a = turns.ticket();
        let b = turns.ticket();
        drop(a);
        drop(futures::executor::block_on(b));
        assert!(turns.is_idle());
    }
}
