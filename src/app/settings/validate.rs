//! `Settings::validate`: every key's bounds and the relations between keys, each refusal naming
//! its key (`SettingsError::Invalid`).

use super::*;

pub(super) fn invalid(key: impl Into<String>, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl Settings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.server.host.trim().is_empty() {
            return Err(invalid("server.host", "must not be empty"));
        }
        if self
            .admin
            .token
            .as_ref()
            .is_some_and(|t| t.0.len() < MIN_SECRET_LEN)
        {
            return Err(invalid(
                "admin.token",
                format!("must be at least {MIN_SECRET_LEN} characters"),
            ));
        }
        if !(1..=1_000_000).contains(&self.admin.wrong_tokens_before_penalty) {
            return Err(invalid(
                "admin.wrong_tokens_before_penalty",
                "must be within 1..=1000000",
            ));
        }
        self.validate_server()?;
        self.validate_grpc()?;
        self.validate_tenants()?;
        self.validate_metrics()?;
        self.validate_jobs()?;
        self.repository.limits()?;
        if !super::POLL_INTERVAL_MS.contains(&self.repository.poll_interval_ms) {
            return Err(invalid(
                "repository.poll_interval_ms",
                format!(
                    "must be within {}..={}",
                    super::POLL_INTERVAL_MS.start(),
                    super::POLL_INTERVAL_MS.end()
                ),
            ));
        }
        if let Some(bad) = self
            .repository
            .load_models
            .iter()
            .find(|m| *m != "*" && !is_valid_name(m))
        {
            return Err(invalid(
                "repository.load_models",
                format!("'{bad}' is not a model directory name (or \"*\")"),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, model) in self.models.iter().enumerate() {
            let key = |field: &str| format!("models[{i}].{field}");
            if !is_valid_name(&model.name) {
                return Err(invalid(
                    key("name"),
                    format!(
                        "'{}' is not a model directory name ([A-Za-z0-9][A-Za-z0-9._-]{{0,127}})",
                        model.name
                    ),
                ));
            }
            if let Some(bad) = model.versions.iter().find(|v| !is_valid_name(v)) {
                return Err(invalid(
                    key("versions"),
                    format!("'{bad}' is not a version directory name"),
                ));
            }
            if !names.insert(&model.name) {
                return Err(invalid(
                    key("name"),
                    format!("model '{}' is listed twice", model.name),
                ));
            }
            if model.versions.is_empty() {
                return Err(invalid(key("versions"), "list at least one version"));
            }
            if let Some(default) = &model.default_version {
                if !model.versions.contains(default) {
                    return Err(invalid(
                        key("default_version"),
                        format!("'{default}' is not in versions"),
                    ));
                }
            }
            if !model.device.is_supported() {
                return Err(invalid(
                    key("device"),
                    format!(
                        "{} needs burnserve built with --features cuda",
                        model.device
                    ),
                ));
            }
            let triton = self
                .repository
                .path
                .join(&model.name)
                .join(burnserve_models::triton::CONFIG_FILE)
                .is_file();
            for version in &model.versions {
                let dir = self.repository.path.join(&model.name).join(version);
                let found = if triton {
                    dir.is_dir()
                } else {
                    dir.join("model.toml").is_file() || dir.join("model.onnx").is_file()
                };
                if !found {
                    return Err(invalid(
                        key("versions"),
                        format!(
                            "no {}/model.toml (or model.onnx) in the repository",
                            dir.display()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_jobs(&self) -> Result<(), SettingsError> {
        let jobs = &self.jobs;
        if jobs.path.as_os_str().is_empty() {
            return Err(invalid("jobs.path", "must not be empty"));
        }
        if !(1..=1024).contains(&jobs.max_running_per_version) {
            return Err(invalid("jobs.max_running_per_version", "must be 1 to 1024"));
        }
        if !(0.0..=0.95).contains(&jobs.interactive_reserve) {
            return Err(invalid("jobs.interactive_reserve", "must be 0 to 0.95"));
        }
        for (key, value) in [
            ("jobs.retention_s", jobs.retention_s),
            ("jobs.max_pending_age_s", jobs.max_pending_age_s),
        ] {
            if !(1..=MAX_JOB_AGE_S).contains(&value) {
                return Err(invalid(
                    key,
                    format!("must be 1 to {MAX_JOB_AGE_S} seconds"),
                ));
            }
        }
        if !(1..=10_000_000).contains(&jobs.max_pending) {
            return Err(invalid("jobs.max_pending", "must be 1 to 10000000"));
        }
        if let Some(share) = jobs.max_pending_per_tenant {
            if !(1..=jobs.max_pending).contains(&share) {
                return Err(invalid(
                    "jobs.max_pending_per_tenant",
                    format!("must be 1 to jobs.max_pending ({})", jobs.max_pending),
                ));
            }
        }
        if jobs.max_store_bytes < 1 << 20 {
            return Err(invalid(
                "jobs.max_store_bytes",
                "must be at least 1048576 (1 MiB)",
            ));
        }
        if !(1..=100).contains(&jobs.max_attempts) {
            return Err(invalid("jobs.max_attempts", "must be 1 to 100"));
        }
        Ok(())
    }

    fn validate_metrics(&self) -> Result<(), SettingsError> {
        let buckets = &self.metrics.latency_buckets;
        if buckets.is_empty() || buckets.len() > MAX_LATENCY_BUCKETS {
            return Err(invalid(
                "metrics.latency_buckets",
                format!("list 1 to {MAX_LATENCY_BUCKETS} bucket bounds (seconds)"),
            ));
        }
        if buckets.iter().any(|b| !b.is_finite() || *b <= 0.0)
            || buckets.windows(2).any(|pair| pair[0] >= pair[1])
        {
            return Err(invalid(
                "metrics.latency_buckets",
                "bounds must be finite, above 0 and increasing",
            ));
        }
        if self.grpc.enabled
            && self.grpc.port != 0
            && (self.grpc.port == self.server.port || self.metrics.port == Some(self.grpc.port))
        {
            return Err(invalid(
                "grpc.port",
                "must differ from server.port and metrics.port",
            ));
        }
        if self.metrics.port == Some(self.server.port) && self.server.port != 0 {
            return Err(invalid(
                "metrics.port",
                "must differ from server.port (leave it out to serve /metrics there only)",
            ));
        }
        Ok(())
    }

    fn validate_server(&self) -> Result<(), SettingsError> {
        let server = &self.server;
        // Each is an OS thread with its own runtime: a typo must not start a hundred thousand.
        if server.workers > MAX_WORKERS {
            return Err(invalid(
                "server.workers",
                format!("must be 0 (one per core) to {MAX_WORKERS}"),
            ));
        }
        if server.max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes", "must be at least 1024"));
        }
        if server.max_text_body_bytes < 1024 {
            return Err(invalid(
                "server.max_text_body_bytes",
                "must be at least 1024",
            ));
        }
        // An hour bounds every timeout: a typo such as an extra zero must not hold connections
        // for days.
        const HOUR_MS: u64 = 3_600_000;
        // actix-http computes the header deadline from a clock it refreshes every 500 ms, so it
        // fires up to 500 ms early: below 1000 ms a connection could be refused (408) before its
        // client had any chance to send its headers (CI saw it at 500 ms).
        for (key, value, min) in [
            ("server.header_timeout_ms", server.header_timeout_ms, 1000),
            ("server.body_timeout_ms", server.body_timeout_ms, 1),
            ("server.keep_alive_ms", server.keep_alive_ms, 0),
        ] {
            if !(min..=HOUR_MS).contains(&value) {
                return Err(invalid(key, format!("must be within {min}..={HOUR_MS}")));
            }
        }
        // actix-http computes the linger deadline from a clock it refreshes every 500 ms: a
        // shorter timeout can lie in the past and leave the connection open (measured: 200 ms
        // kept connections open for seconds). 0 closes at once.
        if server.disconnect_timeout_ms != 0
            && !(1000..=HOUR_MS).contains(&server.disconnect_timeout_ms)
        {
            return Err(invalid(
                "server.disconnect_timeout_ms",
                format!("must be 0 (close at once) or within 1000..={HOUR_MS}"),
            ));
        }
        if server.drain_grace_ms > 600_000 {
            return Err(invalid(
                "server.drain_grace_ms",
                "must be within 0..=600000",
            ));
        }
        if !(1000..=HOUR_MS).contains(&server.shutdown_timeout_ms)
            || server.shutdown_timeout_ms <= server.drain_grace_ms
        {
            return Err(invalid(
                "server.shutdown_timeout_ms",
                format!("must be within 1000..={HOUR_MS} and longer than server.drain_grace_ms"),
            ));
        }
        if !(1..=1_000_000).contains(&server.max_connections_per_worker) {
            return Err(invalid(
                "server.max_connections_per_worker",
                "must be within 1..=1000000",
            ));
        }
        if !(1..=65_535).contains(&server.backlog) {
            return Err(invalid("server.backlog", "must be within 1..=65535"));
        }
        if server.max_inflight_body_bytes < server.max_body_bytes {
            return Err(invalid(
                "server.max_inflight_body_bytes",
                "must be at least server.max_body_bytes (else no body of that size is ever taken)",
            ));
        }
        Ok(())
    }

    fn validate_grpc(&self) -> Result<(), SettingsError> {
        let grpc = &self.grpc;
        const HOUR_MS: u64 = 3_600_000;
        for (key, value, min, max) in [
            (
                "grpc.max_connections",
                grpc.max_connections as u64,
                1,
                1_000_000,
            ),
            (
                "grpc.max_concurrent_streams",
                u64::from(grpc.max_concurrent_streams),
                1,
                10_000,
            ),
            (
                "grpc.max_concurrent_calls",
                grpc.max_concurrent_calls as u64,
                1,
                1_000_000,
            ),
            (
                "grpc.max_header_list_bytes",
                u64::from(grpc.max_header_list_bytes),
                1024,
                1 << 20,
            ),
            (
                "grpc.handshake_timeout_ms",
                grpc.handshake_timeout_ms,
                100,
                HOUR_MS,
            ),
            (
                "grpc.idle_timeout_ms",
                grpc.idle_timeout_ms,
                0,
                24 * HOUR_MS,
            ),
            (
                "grpc.keepalive_interval_ms",
                grpc.keepalive_interval_ms,
                1000,
                HOUR_MS,
            ),
            (
                "grpc.keepalive_timeout_ms",
                grpc.keepalive_timeout_ms,
                1000,
                HOUR_MS,
            ),
        ] {
            if !(min..=max).contains(&value) {
                return Err(invalid(key, format!("must be within {min}..={max}")));
            }
        }
        if grpc.max_connection_body_bytes < self.server.max_body_bytes
            || grpc.max_connection_body_bytes > self.server.max_inflight_body_bytes
        {
            return Err(invalid(
                "grpc.max_connection_body_bytes",
                "must be within server.max_body_bytes..=server.max_inflight_body_bytes",
            ));
        }
        Ok(())
    }

    fn validate_tenants(&self) -> Result<(), SettingsError> {
        let mut names = std::collections::HashSet::new();
        let mut keys = Vec::new();
        for (i, tenant) in self.tenants.iter().enumerate() {
            let key = |field: &str| format!("tenants[{i}].{field}");
            if !is_valid_name(&tenant.name) {
                return Err(invalid(
                    key("name"),
                    "must match [A-Za-z0-9][A-Za-z0-9._-]{0,127} (it becomes a metric label)",
                ));
            }
            if !names.insert(tenant.name.as_str()) {
                return Err(invalid(
                    key("name"),
                    format!("tenant '{}' is listed twice", tenant.name),
                ));
            }
            let secret = tenant
                .key()
                .map_err(|message| invalid(key("api_key"), message))?;
            if keys.contains(&secret) || self.admin.token.as_ref() == Some(&secret) {
                return Err(invalid(
                    key("api_key"),
                    "every tenant needs its own key, different from admin.token",
                ));
            }
            keys.push(secret);
            if let Some(rps) = tenant.requests_per_second {
                if !(rps.is_finite() && (0.001..=1_000_000.0).contains(&rps)) {
                    return Err(invalid(
                        key("requests_per_second"),
                        "must be within 0.001..=1000000",
                    ));
                }
            }
            if tenant.burst.is_some() && tenant.requests_per_second.is_none() {
                return Err(invalid(key("burst"), "needs requests_per_second"));
            }
            if tenant.burst == Some(0) || tenant.max_inflight == Some(0) {
                return Err(invalid(
                    key("quota"),
                    "burst and max_inflight must be at least 1",
                ));
            }
        }
        Ok(())
    }
}
