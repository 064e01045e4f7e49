//! Queries this node asked on behalf of control clients: answers collected
//! per query id until the client takes them. A handful are pending at most,
//! so a list (no hash map code in the binary).

use nuvol_control::QueryAnswer;
use smol::channel::{self, Receiver, Sender};

/// A query this node asked, collecting answers for a control client.
struct PendingQuery {
    id: u64,
    answers: Vec<QueryAnswer>,
    done: Sender<()>,
    /// Done early once this many answers arrived (0: wait for the timeout).
    expect: usize,
}

#[derive(Default)]
pub struct PendingQueries(Vec<PendingQuery>);

impl PendingQueries {
    /// Starts collecting for query `id`; the receiver gets a message when
    /// `expect` answers arrived (0: never early) or the query is done.
    pub fn add(&mut self, id: u64, expect: usize) -> Receiver<()> {
        let (done, rx) = channel::bounded(1);
        self.0.push(PendingQuery {
            id,
            answers: Vec::new(),
            done,
            expect,
        });
        rx
    }

    /// An answer to query `id` (ignored if nobody waits for it).
    pub fn answer(&mut self, id: u64, answer: QueryAnswer) {
        if let Some(q) = self.0.iter_mut().find(|q| q.id == id) {
            q.answers.push(answer);
            if q.expect > 0 && q.answers.len() >= q.expect {
                let _ = q.done.try_send(());
            }
        }
    }

    /// Query `id` timed out in the core: its waiter stops waiting.
    pub fn done(&self, id: u64) {
        if let Some(q) = self.0.iter().find(|q| q.id == id) {
            let _ = q.done.try_send(());
        }
    }

    /// The answers collected for query `id`, which is forgotten.
    pub fn finish(&mut self, id: u64) -> Vec<QueryAnswer> {
        match self.0.iter().position(|q| q.id == id) {
            Some(i) => self.0.swap_remove(i).answers,
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(node: &str) -> QueryAnswer {
        QueryAnswer {
            node: node.into(),
            payload: node.as_bytes().to_vec(),
        }
    }

    #[test]
    fn query_is_done_early_once_the_expected_answers_arrived() {
        let mut q = PendingQueries::default();
        let done = q.add(7, 2);
        q.answer(7, answer("a"));
        assert!(done.try_recv().is_err());
        q.answer(7, answer("b"));
        assert!(done.try_recv().is_ok());
        let got = q.finish(7);
        assert_eq!(got.len(), 2);
        assert!(q.finish(7).is_empty(), "a finished query is forgotten");
    }

    #[test]
    fn answers_to_unknown_queries_are_dropped_and_timeouts_wake_the_waiter() {
        let mut q = PendingQueries::default();
        let done = q.add(1, 0);
        q.answer(2, answer("x"));
        q.answer(1, answer("a"));
        assert!(done.try_recv().is_err(), "expect 0 waits for the timeout");
        q.done(1);
        assert!(done.try_recv().is_ok());
        assert_eq!(q.finish(1).len(), 1);
        assert!(q.finish(2).is_empty());
    }
}
