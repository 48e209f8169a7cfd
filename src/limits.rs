//! Process limits set at start: the open-file limit raised to its hard limit, so connections
//! held by slow or hostile clients do not leave `/health` and predict without descriptors.

/// Raises the soft open-file limit to the hard limit; returns `(before, after)`.
pub fn raise_open_file_limit() -> std::io::Result<(u64, u64)> {
    let (before, _hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    let after = rlimit::increase_nofile_limit(u64::MAX)?;
    Ok((before, after))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_reaches_the_hard_limit() {
        let (_, after) = super::raise_open_file_limit().expect("raise");
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("read");
        assert_eq!((soft, after), (hard, hard));
    }
}
