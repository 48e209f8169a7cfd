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
    let (reply, rx) = crate::reply::JobReply::direct();
    let now = Instant::now();
    let job = Job {
        outputs: Vec::new(),
        inputs: vec![NamedTensor::new(
            "x",
            vec![rows, 2],
            TensorData::F32(vec![first; rows * 2]),
        )],
        rows,
        deadline: now + deadline_in,
        enqueued_at: now,
        reply,
        probe: false,
        estimate: None,
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
        batch.joined_inputs(),
        Ok(vec![NamedTensor::new(
            "x",
            vec![4, 2],
            TensorData::F32(vec![1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
        )])
    );
    // An oversized job still runs alone.
    let (big, _rbig) = job(9, 0.0, Duration::from_secs(1));
    assert!(Batch::new(4).fits(&big));
}

#[test]
fn gathering_stops_the_delay_after_the_first_arrival_or_the_last_pass() {
    let t0 = Instant::now();
    let delay = Duration::from_millis(5);
    // No pass yet, or an executor idle since before the job came: from its arrival.
    assert_eq!(gather_until(t0, None, delay), t0 + delay);
    let earlier = t0 - Duration::from_millis(20);
    assert_eq!(gather_until(t0, Some(earlier), delay), t0 + delay);
    // A job that queued during the last pass: from that pass's end.
    let end = t0 + Duration::from_millis(30);
    assert_eq!(gather_until(t0, Some(end), delay), end + delay);
}

fn policy(adaptive: bool) -> BatchPolicy {
    BatchPolicy {
        max_rows: 8,
        preferred: Vec::new(),
        max_delay: Duration::from_millis(2),
        adaptive,
    }
}

#[test]
fn governor_stops_waiting_for_a_lone_client_and_probes() {
    let policy = policy(true);
    let mut governor = DelayGovernor::new();
    let mut delays = Vec::new();
    for _ in 0..70 {
        delays.push(governor.delay(&policy));
        governor.record(1);
    }
    // 1.0 * 0.8^n falls below 0.5 after 4 solitary batches: those 4 waited.
    assert!(delays[..4].iter().all(|d| *d == policy.max_delay));
    assert!(!governor.waiting());
    // Then no wait, except one probe every PROBE_EVERY batches.
    let waited: Vec<usize> = (4..70).filter(|&i| delays[i] == policy.max_delay).collect();
    assert_eq!(waited, vec![4 + 31, 4 + 63]);
}

#[test]
fn governor_resumes_waiting_when_batches_find_company() {
    let policy = policy(true);
    let mut governor = DelayGovernor::new();
    for _ in 0..10 {
        governor.delay(&policy);
        governor.record(1);
    }
    assert_eq!(governor.delay(&policy), Duration::ZERO);
    // A probe (or a queue that formed by itself) gathers 4 jobs: 3 extra lifts the average
    // well above the threshold.
    governor.record(4);
    assert!(governor.waiting());
    assert_eq!(governor.delay(&policy), policy.max_delay);
    // Pairs (one extra job each) keep it waiting.
    for _ in 0..20 {
        governor.record(2);
        assert_eq!(governor.delay(&policy), policy.max_delay);
    }
}

#[test]
fn governor_waits_no_longer_than_eight_forward_passes() {
    let policy = policy(true);
    let mut governor = DelayGovernor::new();
    governor.record(3);
    governor.record_forward(Duration::from_micros(40));
    assert_eq!(governor.delay(&policy), Duration::from_micros(320));
    // A moving average: 0.8 * 40 µs + 0.2 * 140 µs = 60 µs; eight of them.
    governor.record_forward(Duration::from_micros(140));
    assert_eq!(governor.delay(&policy), Duration::from_micros(480));
    // Slow passes: the configured maximum.
    for _ in 0..40 {
        governor.record_forward(Duration::from_millis(15));
    }
    assert_eq!(governor.delay(&policy), policy.max_delay);
}

#[test]
fn governor_always_waits_when_not_adaptive() {
    let policy = policy(false);
    let mut governor = DelayGovernor::new();
    for _ in 0..50 {
        assert_eq!(governor.delay(&policy), policy.max_delay);
        governor.record(1);
        governor.record_forward(Duration::from_micros(10));
    }
}

#[test]
fn jobs_of_other_item_shapes_start_another_batch() {
    let mut batch = Batch::new(8);
    let (a, _ra) = job(1, 1.0, Duration::from_secs(1));
    let (mut b, _rb) = job(1, 2.0, Duration::from_secs(1));
    batch.push(a);
    b.inputs[0].shape = vec![1, 1, 2];
    assert!(!batch.fits(&b), "another rank");
    b.inputs[0].shape = vec![2, 1];
    b.rows = 2;
    assert!(!batch.fits(&b), "another item shape");
    b.inputs[0].shape = vec![1, 2];
    b.rows = 1;
    b.inputs[0].name = "other".into();
    assert!(!batch.fits(&b), "another input");
    b.inputs[0].name = "x".into();
    assert!(batch.fits(&b));
}

#[test]
fn split_outputs_returns_each_jobs_rows_of_every_output() {
    let a = NamedTensor::new("a", vec![5, 2], TensorData::I64((0..10).collect()));
    let b = NamedTensor::new(
        "b",
        vec![5],
        TensorData::Bytes((0..5u8).map(|i| vec![i]).collect()),
    );
    let parts = split_outputs(vec![a, b], &[1, 3, 1], true).unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[1][0].shape, vec![3, 2]);
    assert_eq!(parts[1][0].data, TensorData::I64(vec![2, 3, 4, 5, 6, 7]));
    assert_eq!(parts[2][1].data, TensorData::Bytes(vec![vec![4]]));
    assert_eq!(parts[0][1].name, "b");
    let short = NamedTensor::new("a", vec![2, 2], TensorData::F32(vec![0.0; 3]));
    assert!(split_outputs(vec![short], &[2], true).is_err());
    let rows = NamedTensor::new("a", vec![3], TensorData::F32(vec![0.0; 3]));
    assert!(split_outputs(vec![rows.clone()], &[1, 1], true).is_err());
    // No batch dimension: passed through whole.
    assert_eq!(
        split_outputs(vec![rows.clone()], &[1], false).unwrap()[0][0],
        rows
    );
}

#[test]
fn a_batch_wants_the_union_of_its_jobs_outputs_or_all() {
    let (mut a, _ra) = job(1, 1.0, Duration::from_secs(1));
    let (mut b, _rb) = job(1, 2.0, Duration::from_secs(1));
    a.outputs = vec!["y".into(), "z".into()];
    b.outputs = vec!["z".into(), "w".into()];
    let mut batch = Batch::new(8);
    batch.push(a);
    batch.push(b);
    assert_eq!(
        batch.wanted_outputs(),
        Some(vec!["y".to_string(), "z".into(), "w".into()])
    );
    let (all, _rall) = job(1, 3.0, Duration::from_secs(1));
    batch.push(all);
    assert_eq!(batch.wanted_outputs(), None, "one job wants every output");
}
