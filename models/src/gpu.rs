//! GPU memory as the CUDA driver reports it, for the `gpu_memory_*` metrics: used and total bytes
//! of every device this process can see (`cuda` feature; an empty list without it, or when no
//! driver or device answers). The first reading retains each device's primary context (the one
//! burn-cuda shares) and keeps it, so later readings are one driver call per device.

/// One device's memory, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMemory {
    /// `cuda:N`, as the `device` label and the settings write it.
    pub device: String,
    pub used: u64,
    pub total: u64,
}

#[cfg(feature = "cuda")]
mod driver {
    use std::sync::{Arc, Mutex};

    use cudarc::driver::CudaContext;

    use super::DeviceMemory;

    static CONTEXTS: Mutex<Option<Vec<Arc<CudaContext>>>> = Mutex::new(None);

    pub fn memory() -> Vec<DeviceMemory> {
        // Only a list of handles is guarded: a poisoned lock still holds a valid one.
        let mut contexts = CONTEXTS.lock().unwrap_or_else(|p| p.into_inner());
        let contexts = contexts.get_or_insert_with(|| {
            let count = CudaContext::device_count().unwrap_or(0).max(0) as usize;
            (0..count)
                .filter_map(|ordinal| CudaContext::new(ordinal).ok())
                .collect()
        });
        contexts
            .iter()
            .filter_map(|context| {
                let (free, total) = context.mem_get_info().ok()?;
                Some(DeviceMemory {
                    device: format!("cuda:{}", context.ordinal()),
                    used: total.saturating_sub(free) as u64,
                    total: total as u64,
                })
            })
            .collect()
    }
}

/// Every visible device's memory now (see the module's doc).
pub fn memory() -> Vec<DeviceMemory> {
    #[cfg(feature = "cuda")]
    return driver::memory();
    #[cfg(not(feature = "cuda"))]
    Vec::new()
}

/// How many GPUs this process can use: `None` without the `cuda` feature (no GPU can be
/// asked for then), `Some(0)` when no driver or device answers.
pub fn device_count() -> Option<usize> {
    #[cfg(feature = "cuda")]
    return Some(cudarc::driver::CudaContext::device_count().map_or(0, |n| n.max(0) as usize));
    #[cfg(not(feature = "cuda"))]
    None
}
