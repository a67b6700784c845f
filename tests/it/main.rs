//! The integration tests, in one binary (as in just's `tests/`): each file is a module
//! beside the shared servers and fixtures in [`support`], which the compiler checks once
//! and CI links once. Most tests run the real binary against a real HTTP server and a
//! real SMTP server on loopback.
//!
//! Run one file's tests with `cargo test --test it render::`, one test by its name.

mod support;

mod architecture;
mod browser;
mod cadence;
mod cli;
mod daemon;
mod e2e;
mod mail;
mod meaning;
mod ranking_eval;
mod real_feeds;
mod render;
mod smoke_scale;
mod sources;
mod spam;
mod subscribers_file;
mod web;
