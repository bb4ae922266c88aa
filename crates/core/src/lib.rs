//! nudge core: domain types, flows, templates and the pure recovery engine.
//!
//! Nothing here does I/O or reads the wall clock. The store, channel and server crates
//! depend on this one, never the reverse.

pub mod channel;
pub mod engine;
pub mod event;
pub mod flow;
pub mod money;
pub mod phone;
pub mod quiet;
pub mod quote;
pub mod reply;
pub mod sms;
pub mod store;
pub mod template;
pub mod time;
