//! Answers from executor threads to requesters: a batch's answers reach each requesting actix
//! worker thread with one wake-up, not one per request.
//!
//! Each job carries a oneshot sender and, when it was queued from an actix worker (an
//! `Arbiter`), that thread's [`Home`]: a queue drained by one local task. Waking a task on
//! another thread writes the thread's eventfd and, on a busy core, lets it preempt the
//! executor; sent one by one, a batch of 16 answers cost 16 of each. Through the home, the
//! executor queues the batch's answers and wakes the drain once, which then completes the
//! oneshots on its own thread (local wake-ups, no system call). Requesters elsewhere (the gRPC
//! runtime, blocking threads, tests) get their answer sent directly.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{oneshot, Notify};

use crate::error::InferError;
use crate::messages::JobOutput;

/// What a job is answered with.
pub type Answer = Result<JobOutput, InferError>;

type Delivery = (oneshot::Sender<Answer>, Answer);

/// The sending half of a job's answer.
#[derive(Debug)]
pub struct JobReply {
    sender: oneshot::Sender<Answer>,
    home: Option<Arc<Home>>,
}

impl JobReply {
    /// A reply channel whose answers go through the calling thread's home, when it has one.
    pub fn channel() -> (Self, oneshot::Receiver<Answer>) {
        let (sender, receiver) = oneshot::channel();
        let home = current_home();
        (Self { sender, home }, receiver)
    }

    /// A reply channel answered directly, whatever thread asks.
    pub fn direct() -> (Self, oneshot::Receiver<Answer>) {
        let (sender, receiver) = oneshot::channel();
        (Self { sender, home: None }, receiver)
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
}

impl Answers {
    pub fn push(&mut self, reply: JobReply, answer: Answer) {
        let delivery = (reply.sender, answer);
        let Some(home) = reply.home else {
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
            output: vec![value],
            rows: 1,
            queue_time: Default::default(),
            inference_time: Default::default(),
            batch_size: 1,
            tokens: 0,
        })
    }

    fn value(answer: Answer) -> f32 {
        answer.map(|out| out.output[0]).unwrap_or(f32::NAN)
    }

    #[actix::test]
    async fn a_batch_reaches_an_actix_thread_through_its_home() {
        let (first, first_rx) = JobReply::channel();
        let (second, second_rx) = JobReply::channel();
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

    #[test]
    fn off_actix_threads_answers_are_sent_directly() {
        let (reply, mut rx) = JobReply::channel();
        assert!(reply.home.is_none());
        reply.send(output(4.0));
        assert_eq!(value(rx.try_recv().expect("sent at once")), 4.0);
    }

    /// The home an actix runtime gave this thread, after that runtime stopped.
    fn home_of_a_stopped_runtime() -> Arc<Home> {
        actix::System::new().block_on(async {
            let (reply, _rx) = JobReply::channel();
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
            let (reply, rx) = JobReply::channel();
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
