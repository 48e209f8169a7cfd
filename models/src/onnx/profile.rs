//! Per-operator time of ONNX passes, for tools and benches (`BURNSERVE_ONNX_PROFILE=1`; on an
//! asynchronous backend the times are of launches, not of the work).

/// Whether passes time each operator (`BURNSERVE_ONNX_PROFILE=1`; tools and benches: on an
/// asynchronous backend the times are of launches, not of the work).
pub fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("BURNSERVE_ONNX_PROFILE").as_deref() == Ok("1"))
}

type Profile = std::collections::BTreeMap<String, (u64, std::time::Duration)>;

fn profile() -> &'static std::sync::Mutex<Profile> {
    static TIMES: std::sync::OnceLock<std::sync::Mutex<Profile>> = std::sync::OnceLock::new();
    TIMES.get_or_init(Default::default)
}

pub fn record(op_type: &str, took: std::time::Duration) {
    if let Ok(mut times) = profile().lock() {
        let entry = times.entry(op_type.to_string()).or_default();
        entry.0 += 1;
        entry.1 += took;
    }
}

/// The time each operator type took over every profiled pass, longest first.
pub fn profile_report() -> String {
    let Ok(times) = profile().lock() else {
        return String::new();
    };
    let total: f64 = times.values().map(|(_, t)| t.as_secs_f64()).sum();
    let mut rows: Vec<_> = times.iter().collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.1 .1));
    let mut out = String::from("operator             calls      ms   share\n");
    for (op, (calls, took)) in rows {
        let ms = took.as_secs_f64() * 1e3;
        out += &format!(
            "{op:<20} {calls:>6} {ms:>8.1} {:>6.1}%\n",
            100.0 * took.as_secs_f64() / total.max(1e-12)
        );
    }
    out
}
