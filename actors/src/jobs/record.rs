//! What the job store keeps of one job (`JobRecord`), its status machine and its public id.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::messages::VersionKey;

/// Where a job is in its life. `Pending` and `Running` are live; the rest are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Still pending after `jobs.max_pending_age_s`.
    Expired,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::Expired,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::Running => "RUNNING",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelled => "CANCELLED",
            JobStatus::Expired => "EXPIRED",
        }
    }

    /// The `outcome` label of `jobs_total` (final statuses only).
    pub const fn outcome(self) -> Option<&'static str> {
        match self {
            JobStatus::Succeeded => Some("succeeded"),
            JobStatus::Failed => Some("failed"),
            JobStatus::Cancelled => Some("cancelled"),
            JobStatus::Expired => Some("expired"),
            JobStatus::Pending | JobStatus::Running => None,
        }
    }

    pub const fn is_final(self) -> bool {
        self.outcome().is_some()
    }

    /// Parses a status as the API writes it (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(text))
    }
}

/// The `outcome` label values of `jobs_total`.
pub const JOB_OUTCOMES: [&str; 4] = ["succeeded", "failed", "cancelled", "expired"];

/// Which API the job's body belongs to (and its result's shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// The simple predict body (`POST /v1/models/{m}/predict`).
    Predict,
    /// The embeddings body (`POST /v1/embeddings`).
    Embeddings,
}

/// Why a job failed, as the API answers it: the words of the error contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    pub error: String,
    pub error_type: String,
}

/// One job's metadata (its body and result are stored beside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    pub tenant: String,
    pub model: String,
    /// Resolved at submit: a job runs on the version that was the default (or named) then.
    pub version: String,
    pub kind: JobKind,
    /// How the HTTP layer encoded the stored body: its own tag, which the store keeps and never
    /// reads. 0 (records written before the tag existed): canonical JSON.
    #[serde(default)]
    pub body_format: u8,
    pub status: JobStatus,
    /// Unix milliseconds.
    pub created_ms: u64,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    /// Times a worker took it; above 1 after a retry or a restart (at-least-once).
    pub attempts: u32,
    pub idempotency_key: Option<String>,
    /// SHA-256 of the stored body, hex: what an `Idempotency-Key` replay must match.
    pub body_sha256: String,
    pub error: Option<JobFailure>,
    /// Bytes this job is counted for in the store (its record, and its body or result as redb
    /// allocates them: `store::value_cost`), for `jobs.max_store_bytes`.
    pub stored_bytes: u64,
    /// The most its result may take (as the caller estimated it at submit): held against
    /// `jobs.max_store_bytes` while the job is live, so results fit under the cap too.
    #[serde(default)]
    pub result_reserve: u64,
}

impl JobRecord {
    pub fn key(&self) -> VersionKey {
        VersionKey::new(self.model.clone(), self.version.clone())
    }

    /// Milliseconds from submit to finish, once final.
    pub fn duration_ms(&self) -> Option<u64> {
        self.finished_ms
            .map(|finished| finished.saturating_sub(self.created_ms))
    }
}

/// A job's public id: its place in submit order and a random token, so ids cannot be guessed
/// from one another. Written as 28 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId {
    pub seq: u64,
    pub token: u64,
}

/// `seq` digits in an id (and in a list cursor).
const SEQ_DIGITS: usize = 12;
const TOKEN_DIGITS: usize = 16;

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012x}{:016x}", self.seq, self.token)
    }
}

impl FromStr for JobId {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let lower_hex = |part: &str| part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if text.len() != SEQ_DIGITS + TOKEN_DIGITS || !lower_hex(text) {
            return Err(());
        }
        let (seq, token) = text.split_at(SEQ_DIGITS);
        Ok(JobId {
            seq: u64::from_str_radix(seq, 16).map_err(|_| ())?,
            token: u64::from_str_radix(token, 16).map_err(|_| ())?,
        })
    }
}

impl Serialize for JobId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|()| serde::de::Error::custom(format!("'{text}' is not a job id")))
    }
}

/// A list cursor: the last `seq` a page returned, as hex.
pub fn cursor_of(seq: u64) -> String {
    format!("{seq:0SEQ_DIGITS$x}")
}

/// Reads a cursor [`cursor_of`] wrote.
pub fn parse_cursor(text: &str) -> Option<u64> {
    (text.len() == SEQ_DIGITS && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
}

/// Now, as Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_anything_else() {
        let id = JobId {
            seq: 42,
            token: 0xdead_beef_0123_4567,
        };
        let text = id.to_string();
        assert_eq!(text, "00000000002adeadbeef01234567");
        assert_eq!(text.parse::<JobId>(), Ok(id));
        for bad in [
            "",
            "00000000002a",
            "00000000002ADEADBEEF01234567",
            "00000000002adeadbeef0123456g",
            "00000000002adeadbeef012345670",
            "../../etc/passwd",
            "+0000000002adeadbeef01234567",
        ] {
            assert!(bad.parse::<JobId>().is_err(), "{bad}");
        }
        assert_eq!(parse_cursor(&cursor_of(7)), Some(7));
        assert_eq!(parse_cursor("7"), None);
        assert_eq!(parse_cursor("-00000000007"), None);
    }

    #[test]
    fn records_written_before_the_body_format_read_as_format_0() {
        let old = r#"{"id":"00000000002adeadbeef01234567","tenant":"t","model":"m","version":"1",
            "kind":"predict","status":"PENDING","created_ms":5,"started_ms":null,
            "finished_ms":null,"attempts":0,"idempotency_key":"k","body_sha256":"ab",
            "error":null,"stored_bytes":519}"#;
        let record: JobRecord = serde_json::from_str(old).unwrap();
        assert_eq!(
            (record.body_format, record.id.seq, record.stored_bytes),
            (0, 42, 519)
        );
        let again: JobRecord =
            serde_json::from_slice(&serde_json::to_vec(&record).unwrap()).unwrap();
        assert_eq!(again, record);
    }

    #[test]
    fn statuses_parse_and_only_final_ones_have_an_outcome() {
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                JobStatus::parse(&status.as_str().to_lowercase()),
                Some(status)
            );
        }
        assert_eq!(JobStatus::parse("DONE"), None);
        let finals: Vec<_> = JobStatus::ALL
            .into_iter()
            .filter_map(JobStatus::outcome)
            .collect();
        assert_eq!(finals, JOB_OUTCOMES);
        assert!(!JobStatus::Running.is_final());
    }
}
