//! Answers from executor threads to requesters: a batch's answers reach each requesting actix
//! worker thread with one wake-up, not one per request.
//!
//! Each job carries a oneshot sender and, when it was queued from an actix worker (an
//! `Arbiter`), that thread's [`Home`]: a queue drained by one local task. Waking a task on
//! another thread writes the thread's eventfd and, on a busy core, lets it preempt the
//! executor; sent one by one, a batch of 16 answers cost 16 of each. Through the home, the
//! executor queues the batch's answers and wakes the drain once, which then completes the
//! oneshots on its own thread (local wake-ups, no system call). Requesters elsewhere (the gRPC
//! runtime, blocking threads, tests), and answers close to their deadline
//! ([`DIRECT_WHEN_DUE_WITHIN`]), are sent directly.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify};

use crate::error::InferError;
use crate::messages::JobOutput;

/// What a job is answered with.
pub type Answer = Result<JobOutput, InferError>;

type Delivery = (oneshot::Sender<Answer>, Answer);

/// An answer due within this is sent directly, not through its home. Through the home it waits
/// in the queue until the drain task runs, and a busy worker runs a task woken from another
/// thread only after some of those woken on its own (every 31st turn at worst) — among them the
/// requester's deadline timer, which then answers 504 for a job computed in time. Sent directly,
/// the answer is in the oneshot before the deadline, and the requester, woken by either, reads
/// it first (`tokio::time::timeout` polls the answer before the timer). `tests/overload.rs`
/// (2 ms deadlines under 32 clients) computed up to 18 answers late through the home.
pub const DIRECT_WHEN_DUE_WITHIN: Duration = Duration::from_millis(5);

/// The sending half of a job's answer.
#[derive(Debug)]
pub struct JobReply {
    sender: oneshot::Sender<Answer>,
    home: Option<Arc<Home>>,
    /// When the requester stops waiting.
    due: Option<Instant>,
}

impl JobReply {
    /// A reply channel for an answer awaited until `due`, through the calling thread's home
    /// when it has one.
    pub fn channel(due: Instant) -> (Self, oneshot::Receiver<Answer>) {
        let (sender, receiver) = oneshot::channel();
        let home = current_home();
        let reply = Self {
            sender,
            home,
            due: Some(due),
        };
        (reply, receiver)
    }

    /// A reply channel answered directly, whatever thread asks.
    pub fn direct() -> (Self, oneshot::Receiver<Answer>) {
        let (sender, receiver) = oneshot::channel();
        let reply = Self {
            sender,
            home: None,
            due: None,
        };
        (reply, receiver)
    }

    /// The requester is gone (client left, deadline passed): nobody reads the answer.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Answers now, on its own (an error, a lone job).
    pub fn send(self, answer: Answer) {
        let mut answers = Answers::default();
        answers.push(self, answer);
        answers.deliver();
    }
}

/// Answers gathered over a batch, delivered together by [`Answers::deliver`].
#[derive(Default)]
pub struct Answers {
    direct: Vec<Delivery>,
    /// Per home, in the order homes first appear (a handful: one per actix worker).
    homed: Vec<(Arc<Home>, Vec<Delivery>)>,
    /// Answers due before this go directly (read once per batch, on the first due answer).
    direct_before: Option<Instant>,
}

impl Answers {
    pub fn push(&mut self, reply: JobReply, answer: Answer) {
        let delivery = (reply.sender, answer);
        let due_soon = reply.due.is_some_and(|due| {
            let direct_before = *self
                .direct_before
                .get_or_insert_with(|| Instant::now() + DIRECT_WHEN_DUE_WITHIN);
            due < direct_before
        });
        let Some(home) = reply.home.filter(|_| !due_soon) else {
            self.direct.push(delivery);
            return;
        };
        match self.homed.iter_mut().find(|(h, _)| Arc::ptr_eq(h, &home)) {
            Some((_, deliveries)) => deliveries.push(delivery),
            None => self.homed.push((home, vec![delivery])),
        }
    }

    /// Sends every answer: each home's in one hand-over and one wake-up.
    pub fn deliver(self) {
        for (sender, answer) in self.direct {
            let _ = sender.send(answer);
        }
        for (home, deliveries) in self.homed {
            home.hand_over(deliveries);
        }
    }
}

/// One actix worker thread's answer queue, drained by a task on that thread.
#[derive(Debug, Default)]
pub struct Home {
    queue: Mutex<HomeQueue>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct HomeQueue {
    deliveries: Vec<Delivery>,
    /// The drain task is gone (its runtime stopped): answers are sent directly.
    closed: bool,
}

impl Home {
    fn hand_over(&self, mut deliveries: Vec<Delivery>) {
        {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if !queue.closed {
                if queue.deliveries.is_empty() {
                    std::mem::swap(&mut queue.deliveries, &mut deliveries);
                } else {
                    queue.deliveries.append(&mut deliveries);
                }
                drop(queue);
                self.ready.notify_one();
                return;
            }
        }
        for (sender, answer) in deliveries {
            let _ = sender.send(answer);
        }
    }

    fn take(&self) -> Vec<Delivery> {
        std::mem::take(
            &mut self
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .deliveries,
        )
    }

    fn is_open(&self) -> bool {
        !self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed
    }
}

/// Closes its home when the drain task ends or is dropped unpolled, and sends what it held.
struct CloseOnDrop(Arc<Home>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let left = {
            let mut queue = self.0.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.closed = true;
            std::mem::take(&mut queue.deliveries)
        };
        for (sender, answer) in left {
            let _ = sender.send(answer);
        }
    }
}

thread_local! {
    static HOME: RefCell<Option<Arc<Home>>> = const { RefCell::new(None) };
}

/// This thread's home, started on first use; `None` off actix's threads.
fn current_home() -> Option<Arc<Home>> {
    actix::Arbiter::try_current()?;
    HOME.with(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some(home) = cell.as_ref().filter(|home| home.is_open()) {
            return Some(home.clone());
        }
        let home = Arc::new(Home::default());
        let guard = CloseOnDrop(home.clone());
        actix::spawn(async move {
            let home = &guard.0;
            loop {
                home.ready.notified().await;
                for (sender, answer) in home.take() {
                    let _ = sender.send(answer);
                }
            }
        });
        *cell = Some(home.clone());
        Some(home)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(value: f32) -> Answer {
        Ok(JobOutput {
            outputs: vec![burnserve_models::NamedTensor::new(
                "y",
                vec![1],
                burnserve_models::TensorData::F32(vec![value]),
            )],
            rows: 1,
            queue_time: Default::default(),
            inference_time: Default::default(),
            batch_size: 1,
            tokens: 0,
        })
    }

    fn not_due_soon() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn value(answer: Answer) -> f32 {
        answer
            .ok()
            .and_then(|out| out.values().map(|v| v[0]))
            .unwrap_or(f32::NAN)
    }

    #[actix::test]
    async fn a_batch_reaches_an_actix_thread_through_its_home() {
        let (first, first_rx) = JobReply::channel(not_due_soon());
        let (second, second_rx) = JobReply::channel(not_due_soon());
        let (a, b) = (first.home.clone(), second.home.clone());
        let (Some(a), Some(b)) = (a, b) else {
            panic!("an actix thread has a home");
        };
        assert!(Arc::ptr_eq(&a, &b), "one home per thread");
        let (lone, lone_rx) = JobReply::direct();
        // Answered from another thread, as an executor does.
        std::thread::spawn(move || {
            let mut answers = Answers::default();
            answers.push(second, output(2.0));
            answers.push(lone, output(3.0));
            answers.push(first, output(1.0));
            assert_eq!(answers.homed.len(), 1);
            assert_eq!(answers.homed[0].1.len(), 2);
            assert_eq!(answers.direct.len(), 1);
            answers.deliver();
        })
        .join()
        .expect("the answering thread");
        assert_eq!(value(first_rx.await.expect("first")), 1.0);
        assert_eq!(value(second_rx.await.expect("second")), 2.0);
        assert_eq!(value(lone_rx.await.expect("lone")), 3.0);
    }

    #[actix::test]
    async fn an_answer_close_to_its_deadline_skips_the_home() {
        let (urgent, urgent_rx) = JobReply::channel(Instant::now() + DIRECT_WHEN_DUE_WITHIN / 2);
        let (relaxed, relaxed_rx) = JobReply::channel(not_due_soon());
        assert!(urgent.home.is_some() && relaxed.home.is_some());
        let mut urgent_rx = std::thread::spawn(move || {
            let mut answers = Answers::default();
            answers.push(urgent, output(7.0));
            answers.push(relaxed, output(8.0));
            assert_eq!(answers.direct.len(), 1, "the urgent answer goes directly");
            assert_eq!(answers.homed.len(), 1);
            answers.deliver();
            urgent_rx
        })
        .join()
        .expect("the answering thread");
        // In its oneshot before this thread's drain task ran.
        assert_eq!(value(urgent_rx.try_recv().expect("sent directly")), 7.0);
        assert_eq!(value(relaxed_rx.await.expect("through the home")), 8.0);
    }

    #[test]
    fn off_actix_threads_answers_are_sent_directly() {
        let (reply, mut rx) = JobReply::channel(not_due_soon());
        assert!(reply.home.is_none());
        reply.send(output(4.0));
        assert_eq!(value(rx.try_recv().expect("sent at once")), 4.0);
    }

    /// The home an actix runtime gave this thread, after that runtime stopped.
    fn home_of_a_stopped_runtime() -> Arc<Home> {
        actix::System::new().block_on(async {
            let (reply, _rx) = JobReply::channel(not_due_soon());
            reply.home.expect("an actix thread has a home")
        })
    }

    #[test]
    fn a_stopped_runtime_closes_its_home_and_answers_still_arrive() {
        let home = home_of_a_stopped_runtime();
        // The runtime (and the drain task with it) is gone: the home closed.
        assert!(!home.is_open());
        let (sender, mut rx) = oneshot::channel();
        home.hand_over(vec![(sender, output(5.0))]);
        assert_eq!(value(rx.try_recv().expect("sent directly")), 5.0);
    }

    #[test]
    fn a_new_runtime_on_the_same_thread_gets_a_new_home() {
        let first = home_of_a_stopped_runtime();
        let answered = actix::System::new().block_on(async {
            let (reply, rx) = JobReply::channel(not_due_soon());
            let home = reply.home.clone().expect("home");
            assert!(!Arc::ptr_eq(&home, &first), "the closed home is not reused");
            std::thread::spawn(move || reply.send(output(6.0)))
                .join()
                .expect("sender");
            rx.await.map(value)
        });
        assert_eq!(answered.ok(), Some(6.0));
    }
}
