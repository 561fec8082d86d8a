//! End-to-end tests of the real binary: one test binary, a module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod batch;
mod checkpoint;
mod commands;
mod common;
mod concurrency;
mod faults;
mod fixtures;
mod follow;
mod hardening;
mod journal;
mod props;
mod recovery;
mod rejections;
mod verify;
