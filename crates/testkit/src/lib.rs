//! Test helpers for nudge: local fakes of the SMS and WhatsApp providers, fresh test
//! databases, and the path of the project's shared data folder.
//!
//! The fakes listen on `127.0.0.1` with a port the system picks, check request shapes and
//! credentials the way the real provider documents them, and record every request so a test
//! can assert on what went over the wire. They are not a full model of either provider: they
//! cover the endpoints nudge calls and nothing else.
//!
//! Failures in setup (a port that cannot be bound, a shared file that cannot be read) panic with
//! a message, because this crate only runs inside tests.

mod db;
mod graph;
mod hangup;
mod recorder;
mod shared;
mod smsleopard;

pub use db::{POSTGRES_VAR, REQUIRE_POSTGRES_VAR, TestDb, databases, fresh_postgres};
pub use graph::{FakeGraph, graph_error};
pub use hangup::HangUpServer;
pub use recorder::{CannedResponse, RecordedRequest};
pub use shared::{shared_data, shared_json};
pub use smsleopard::{FakeSmsLeopard, FakeSmsLeopardOptions};
