//! What both listeners (HTTP and gRPC) enforce on whoever connects: who may call what, how
//! wrong credentials are counted, and how many body bytes strangers may have in flight.
//!
//! - [`access`] — the admin token, tenant keys and per-tenant quotas.
//! - [`guesses`] — failed credentials counted, admin-token guessers slowed.
//! - [`budget`] — request body bytes in flight, server-wide and per gRPC connection.

pub mod access;
pub mod budget;
pub mod guesses;
