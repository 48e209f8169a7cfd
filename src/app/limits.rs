//! Process limits set at start: the open-file limit raised to its hard limit, and each
//! listener's connection cap fitted well below it, so connections held by slow or hostile
//! clients on one listener never leave another (`/health`, predict) without descriptors.

/// Raises the soft open-file limit to the hard limit; returns `(before, after)`.
pub fn raise_open_file_limit() -> std::io::Result<(u64, u64)> {
    let (before, _hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    let after = rlimit::increase_nofile_limit(u64::MAX)?;
    Ok((before, after))
}

/// Descriptors kept for everything but client connections (model and job store files, the
/// metrics listener, threads' event fds, the process's own pipes), at least.
pub const MIN_RESERVED_FDS: u64 = 256;

/// Each listener's connection cap under one open-file limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCaps {
    pub http_workers: usize,
    /// actix's `max_connections` (per worker).
    pub http_per_worker: usize,
    /// `grpc.max_connections` as fitted (0 when gRPC is off).
    pub grpc: usize,
    /// Descriptors left for everything else.
    pub reserved: u64,
}

impl ConnectionCaps {
    /// The configured caps, lowered where together they would not leave a quarter of
    /// `open_files` (and at least [`MIN_RESERVED_FDS`]) for the rest: HTTP may use at most half
    /// of the descriptors, gRPC a quarter.
    pub fn fit(
        open_files: u64,
        http_workers: usize,
        http_per_worker: usize,
        grpc: Option<usize>,
    ) -> Self {
        let workers = http_workers.max(1);
        let reserved = (open_files / 4).max(MIN_RESERVED_FDS);
        let usable = open_files.saturating_sub(reserved);
        let (http_share, grpc_share) = match grpc {
            Some(_) => (usable * 2 / 3, usable / 3),
            None => (usable, 0),
        };
        let per_worker = usize::try_from(http_share / workers as u64).unwrap_or(usize::MAX);
        let grpc_cap = usize::try_from(grpc_share).unwrap_or(usize::MAX);
        Self {
            http_workers: workers,
            http_per_worker: http_per_worker.min(per_worker).max(1),
            grpc: grpc.map_or(0, |configured| configured.min(grpc_cap).max(1)),
            reserved,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_leave_a_quarter_of_the_descriptors_free() {
        // This machine's limit, two workers, the defaults.
        let caps = ConnectionCaps::fit(20_000, 2, 25_000, Some(4096));
        assert_eq!(caps.reserved, 5000);
        assert_eq!(caps.http_per_worker, 5000);
        assert_eq!(caps.grpc, 4096);
        let total = (caps.http_per_worker * caps.http_workers + caps.grpc) as u64;
        assert!(total + caps.reserved <= 20_000, "{total}");
        // A small limit: both shrink, neither to nothing.
        let small = ConnectionCaps::fit(1024, 2, 25_000, Some(4096));
        assert_eq!(
            (small.http_per_worker, small.grpc, small.reserved),
            (256, 256, 256)
        );
        // Small caps are kept; no gRPC: HTTP may use the rest.
        assert_eq!(ConnectionCaps::fit(1_000_000, 4, 100, Some(10)).grpc, 10);
        assert_eq!(
            ConnectionCaps::fit(1_000_000, 4, 100, Some(10)).http_per_worker,
            100
        );
        assert_eq!(
            ConnectionCaps::fit(20_000, 2, 25_000, None).http_per_worker,
            7500
        );
    }

    #[test]
    fn the_soft_limit_reaches_the_hard_limit() {
        let (_, after) = super::raise_open_file_limit().expect("raise");
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("read");
        assert_eq!((soft, after), (hard, hard));
    }
}
