//! `gpu_memory_used_bytes` and `gpu_memory_total_bytes{device}`: a Prometheus collector that
//! reads every visible device's memory at each scrape (`burnserve_models::gpu::memory`).
//! Registered only in `cuda` builds, so a CPU-only build has no such series (absent, not 0).

use burnserve_models::gpu::DeviceMemory;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts, Registry};

/// Where the readings come from (the driver; a fake in tests).
type Source = fn() -> Vec<DeviceMemory>;

pub struct GpuMemoryCollector {
    used: IntGaugeVec,
    total: IntGaugeVec,
    source: Source,
}

impl GpuMemoryCollector {
    pub fn with_source(source: Source) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["device"]);
        Ok(Self {
            used: gauge(
                "gpu_memory_used_bytes",
                "GPU memory in use on the device, read at scrape",
            )?,
            total: gauge("gpu_memory_total_bytes", "GPU memory of the device")?,
            source,
        })
    }
}

impl Collector for GpuMemoryCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.used
            .desc()
            .into_iter()
            .chain(self.total.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // Devices come and go with the readings: no stale series.
        self.used.reset();
        self.total.reset();
        for device in (self.source)() {
            let label = [device.device.as_str()];
            let bytes = |b: u64| i64::try_from(b).unwrap_or(i64::MAX);
            self.used.with_label_values(&label).set(bytes(device.used));
            self.total
                .with_label_values(&label)
                .set(bytes(device.total));
        }
        let mut families = self.used.collect();
        families.extend(self.total.collect());
        families
    }
}

/// Registers the collector on `registry` in `cuda` builds; nothing otherwise.
pub fn register(registry: &Registry) -> prometheus::Result<()> {
    if cfg!(feature = "cuda") {
        let collector = GpuMemoryCollector::with_source(burnserve_models::gpu::memory)?;
        registry.register(Box::new(collector))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prometheus::{Encoder, TextEncoder};

    use super::*;

    fn two_devices() -> Vec<DeviceMemory> {
        vec![
            DeviceMemory {
                device: "cuda:0".into(),
                used: 3 << 30,
                total: 80 << 30,
            },
            DeviceMemory {
                device: "cuda:1".into(),
                used: 0,
                total: 80 << 30,
            },
        ]
    }

    fn text(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .expect("encode");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn readings_become_series_per_device() {
        let registry = Registry::new();
        let collector = GpuMemoryCollector::with_source(two_devices).expect("collector");
        registry.register(Box::new(collector)).expect("register");
        let text = text(&registry);
        assert!(text.contains("gpu_memory_used_bytes{device=\"cuda:0\"} 3221225472"));
        assert!(text.contains("gpu_memory_used_bytes{device=\"cuda:1\"} 0"));
        assert!(text.contains("gpu_memory_total_bytes{device=\"cuda:1\"} 85899345920"));
        assert!(text.contains("# HELP gpu_memory_used_bytes "));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_cpu_build_has_no_gpu_series() {
        let registry = Registry::new();
        register(&registry).expect("register");
        assert!(!text(&registry).contains("gpu_memory"));
        assert!(burnserve_models::gpu::memory().is_empty());
    }
}
