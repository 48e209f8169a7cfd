//! Pure batching state: which queued jobs still deserve compute (triage), how jobs gather into
//! a batch bounded by rows, when gathering stops, and how inputs and outputs are joined and split.

use std::time::{Duration, Instant};

use burnserve_models::InputData;

use crate::messages::Job;

/// A version's batching rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchPolicy {
    /// Most rows (items) in one forward pass.
    pub max_rows: usize,
    /// Longest the first job of a batch waits for others to join.
    pub max_delay: Duration,
}

/// What to do with a job taken from the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triage {
    Run,
    /// Its deadline passed while queued: answer `timeout`, do not compute.
    Expired,
    /// Its requester is gone (client left or already timed out): do not compute.
    Abandoned,
}

/// Expiry is checked first: a requester that timed out also closed its reply channel, and it
/// must count as a timeout, not as a client that left.
pub fn triage(job: &Job, now: Instant) -> Triage {
    if now >= job.deadline {
        Triage::Expired
    } else if job.reply.is_closed() {
        Triage::Abandoned
    } else {
        Triage::Run
    }
}

/// When gathering for a batch whose first job was enqueued at `first_enqueued` stops: the
/// delay counts from that job's arrival, not from when the executor got free, so a job that
/// already waited behind a busy executor is not held back again.
pub fn gather_until(first_enqueued: Instant, policy: &BatchPolicy) -> Instant {
    first_enqueued + policy.max_delay
}

/// Jobs gathered for one forward pass.
#[derive(Debug)]
pub struct Batch {
    jobs: Vec<Job>,
    rows: usize,
    max_rows: usize,
}

impl Batch {
    pub fn new(max_rows: usize) -> Self {
        Self {
            jobs: Vec::new(),
            rows: 0,
            max_rows,
        }
    }

    /// Whether `job` can join without passing `max_rows` (an empty batch takes any job).
    pub fn fits(&self, job: &Job) -> bool {
        self.jobs.is_empty() || self.rows + job.rows <= self.max_rows
    }

    pub fn push(&mut self, job: Job) {
        self.rows += job.rows;
        self.jobs.push(job);
    }

    pub fn is_full(&self) -> bool {
        self.rows >= self.max_rows
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Moves every job's input into one buffer, rows in job order (no copy for one job).
    pub fn take_input(&mut self) -> Result<InputData, String> {
        let Some(first) = self.jobs.first() else {
            return Ok(InputData::default());
        };
        if self.jobs.len() == 1 {
            return Ok(std::mem::take(&mut self.jobs[0].input));
        }
        let total = self.jobs.iter().map(|j| j.input.len()).sum();
        let mut joined = first.input.empty_like(total);
        for job in &mut self.jobs {
            joined.append(&mut job.input).map_err(|e| e.to_string())?;
        }
        Ok(joined)
    }

    pub fn into_jobs(self) -> Vec<Job> {
        self.jobs
    }

    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }
}

/// Splits a row-major batch output back into one buffer per job.
pub fn split_rows(
    mut output: Vec<f32>,
    rows_per_job: &[usize],
    item_len: usize,
) -> Result<Vec<Vec<f32>>, String> {
    let total_rows: usize = rows_per_job.iter().sum();
    if output.len() != total_rows * item_len {
        return Err(format!(
            "model returned {} values for {total_rows} rows of {item_len}",
            output.len()
        ));
    }
    if rows_per_job.len() == 1 {
        return Ok(vec![output]);
    }
    let mut parts = Vec::with_capacity(rows_per_job.len());
    // Split from the back so each split_off is O(part).
    for rows in rows_per_job.iter().rev() {
        let at = output.len() - rows * item_len;
        parts.push(output.split_off(at));
    }
    parts.reverse();
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn job(
        rows: usize,
        first: f32,
        deadline_in: Duration,
    ) -> (
        Job,
        oneshot::Receiver<Result<crate::JobOutput, crate::InferError>>,
    ) {
        let (reply, rx) = oneshot::channel();
        let now = Instant::now();
        let job = Job {
            input: InputData::Fp32(vec![first; rows * 2]),
            rows,
            deadline: now + deadline_in,
            enqueued_at: now,
            reply,
        };
        (job, rx)
    }

    #[test]
    fn triage_skips_abandoned_and_expired_jobs() {
        let (live, _rx_live) = job(1, 0.0, Duration::from_secs(5));
        assert_eq!(triage(&live, Instant::now()), Triage::Run);
        assert_eq!(triage(&live, live.deadline), Triage::Expired);
        let (left, rx_left) = job(1, 0.0, Duration::from_secs(5));
        drop(rx_left);
        assert_eq!(triage(&left, Instant::now()), Triage::Abandoned);
        assert_eq!(triage(&left, left.deadline), Triage::Expired);
    }

    #[test]
    fn batch_respects_max_rows_and_joins_inputs_in_order() {
        let mut batch = Batch::new(4);
        let (a, _ra) = job(1, 1.0, Duration::from_secs(1));
        let (b, _rb) = job(3, 2.0, Duration::from_secs(1));
        let (c, _rc) = job(1, 3.0, Duration::from_secs(1));
        assert!(batch.fits(&a));
        batch.push(a);
        assert!(batch.fits(&b));
        batch.push(b);
        assert!(batch.is_full());
        assert!(!batch.fits(&c));
        assert_eq!((batch.len(), batch.rows()), (2, 4));
        assert_eq!(
            batch.take_input(),
            Ok(InputData::Fp32(vec![
                1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0
            ]))
        );
        // An oversized job still runs alone.
        let (big, _rbig) = job(9, 0.0, Duration::from_secs(1));
        assert!(Batch::new(4).fits(&big));
    }

    #[test]
    fn gathering_stops_max_delay_after_the_first_arrival() {
        let policy = BatchPolicy {
            max_rows: 8,
            max_delay: Duration::from_millis(5),
        };
        let t0 = Instant::now();
        assert_eq!(gather_until(t0, &policy), t0 + Duration::from_millis(5));
    }

    #[test]
    fn split_rows_returns_each_jobs_rows() {
        let out: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let parts = split_rows(out, &[1, 3, 1], 2).unwrap();
        assert_eq!(
            parts,
            vec![
                vec![0.0, 1.0],
                vec![2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                vec![8.0, 9.0]
            ]
        );
        assert!(split_rows(vec![0.0; 3], &[1], 2).is_err());
    }
}
