//! Adapters against the local provider fakes over real HTTP on 127.0.0.1.

#![allow(clippy::unwrap_used)]

mod common;
mod smsleopard;
mod whatsapp;
