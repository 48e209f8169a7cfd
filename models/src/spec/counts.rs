//! `batching.instances` and `batching.threads_per_instance`: a count within bounds or
//! `"auto"`, read and written as `model.toml` spells them.

use serde::Deserialize;

use super::{MAX_INSTANCES, MAX_THREADS_PER_INSTANCE};

/// `batching.threads_per_instance`: the threads each executor instance's forward passes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Threads {
    Count(usize),
    /// One instance: the shared pool; `n` instances: the cores divided among them.
    #[default]
    Auto,
}

impl Threads {
    /// The size of each instance's own thread pool, for `instances` instances on `cores` cores;
    /// `None` when the instance uses the process's shared pool.
    pub fn pool_size(self, instances: usize, cores: usize) -> Option<usize> {
        match self {
            Threads::Count(n) => Some(n.clamp(1, MAX_THREADS_PER_INSTANCE)),
            Threads::Auto if instances <= 1 => None,
            Threads::Auto => Some((cores / instances).max(1)),
        }
    }
}

impl<'de> Deserialize<'de> for Threads {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        count_or_auto(
            deserializer,
            MAX_THREADS_PER_INSTANCE,
            "threads_per_instance",
        )
        .map(|count| count.map_or(Threads::Auto, Threads::Count))
    }
}

impl serde::Serialize for Threads {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let count = match self {
            Threads::Count(n) => Some(*n),
            Threads::Auto => None,
        };
        serialize_count_or_auto(count, serializer)
    }
}

/// A setting given as a number or a word (`"auto"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum CountOrWord {
    Count(i64),
    Word(String),
}

/// `batching.<key>`: a count in `1..=max`, or `"auto"` (`None`); anything else is refused
/// naming the key and its bounds.
fn count_or_auto<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    max: usize,
    key: &str,
) -> Result<Option<usize>, D::Error> {
    match CountOrWord::deserialize(deserializer)? {
        CountOrWord::Count(n) if (1..=max as i64).contains(&n) => Ok(Some(n as usize)),
        CountOrWord::Word(word) if word == "auto" => Ok(None),
        _ => Err(serde::de::Error::custom(format!(
            "batching.{key} must be 1..={max} or \"auto\""
        ))),
    }
}

/// Writes what [`count_or_auto`] reads.
fn serialize_count_or_auto<S: serde::Serializer>(
    count: Option<usize>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match count {
        Some(n) => serializer.serialize_u64(n as u64),
        None => serializer.serialize_str("auto"),
    }
}

/// `batching.instances`: how many executor threads serve a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instances {
    Count(usize),
    /// One per core the process may use.
    Auto,
}

impl Default for Instances {
    fn default() -> Self {
        Instances::Count(1)
    }
}

impl Instances {
    /// The number of executor threads, at least 1 and at most [`MAX_INSTANCES`].
    pub fn resolve(self) -> usize {
        match self {
            Instances::Count(n) => n.clamp(1, MAX_INSTANCES),
            Instances::Auto => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, MAX_INSTANCES),
        }
    }
}

impl<'de> Deserialize<'de> for Instances {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        count_or_auto(deserializer, MAX_INSTANCES, "instances")
            .map(|count| count.map_or(Instances::Auto, Instances::Count))
    }
}

impl serde::Serialize for Instances {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let count = match self {
            Instances::Count(n) => Some(*n),
            Instances::Auto => None,
        };
        serialize_count_or_auto(count, serializer)
    }
}
