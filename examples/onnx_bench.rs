//! In-process time of one ONNX graph on burnserve's `onnx` architecture, for
//! `benches/onnx.sh` (which runs onnxruntime on the same file and inputs beside it). The
//! inputs are the case's `test_data_set_0/input_K.pb`, their first dimension tiled or cut to
//! `BATCH` rows. Runs passes for `SECONDS`, then prints one JSON line: passes, wall µs per
//! pass (mean and median) and process CPU µs per pass.
//! `cargo run --release --example onnx_bench -- DIR BATCH SECONDS [DEVICE]`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use burnserve_models::onnx::{complete_spec, default_spec, proto::read_tensor};
use burnserve_models::{load_model, Device, Jail, NamedTensor, Symlinks, TensorData};

/// `t`'s first dimension tiled (or cut) to `rows`.
fn with_rows(t: NamedTensor, rows: usize) -> NamedTensor {
    let first = t.shape.first().copied().unwrap_or(1).max(1);
    let item = t.data.len() / first;
    let mut data = TensorData::with_capacity(t.data.datatype(), rows * item);
    let mut row = 0;
    while row < rows {
        let take = (rows - row).min(first);
        let mut part = t.data.clone();
        let _ = part.split_off(take * item);
        data.extend_from(&part);
        row += take;
    }
    let mut shape = t.shape.clone();
    if let Some(d) = shape.first_mut() {
        *d = rows;
    }
    NamedTensor::new(t.name, shape, data)
}

fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(
        args.get(1)
            .ok_or("usage: onnx_bench DIR BATCH SECONDS [DEVICE]")?,
    );
    let batch: usize = args.get(2).map_or(Ok(1), |s| s.parse())?;
    let seconds: f64 = args.get(3).map_or(Ok(3.0), |s| s.parse())?;
    let device: Device = args.get(4).map_or(Ok(Device::Cpu), |s| s.parse())?;
    let mut spec = default_spec()?;
    spec.batching.max_batch_size = 0;
    let jail = Jail::open(&dir, Symlinks::Inside)?;
    complete_spec(&mut spec, &jail, &dir)?;
    let mut model = load_model(&spec, &dir, device)?;
    let mut inputs = Vec::new();
    for (k, declared) in spec.inputs.iter().enumerate() {
        let mut t = read_tensor(&dir.join(format!("test_data_set_0/input_{k}.pb")))?;
        t.name = declared.name.clone();
        inputs.push(with_rows(t, batch));
    }
    for _ in 0..3 {
        model.forward(inputs.clone(), 1)?;
    }
    let mut times = Vec::new();
    let (started, cpu_started) = (Instant::now(), cpu_time());
    while started.elapsed().as_secs_f64() < seconds || times.len() < 5 {
        let one = Instant::now();
        model.forward(inputs.clone(), 1)?;
        times.push(one.elapsed().as_secs_f64() * 1e6);
    }
    let cpu = (cpu_time() - cpu_started).as_secs_f64() * 1e6;
    let wall = started.elapsed().as_secs_f64() * 1e6;
    let passes = times.len();
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"runtime\":\"burnserve\",\"batch\":{batch},\"passes\":{passes},\"mean_us\":{:.1},\"p50_us\":{:.1},\"cpu_us_per_pass\":{:.1}}}",
        wall / passes as f64,
        times[passes / 2],
        cpu / passes as f64
    );
    if std::env::var("BURNSERVE_ONNX_PROFILE").as_deref() == Ok("1") {
        eprintln!("{}", burnserve_models::onnx::profile::profile_report());
    }
    Ok(())
}
