//! End-to-end tests of the real binary: one test binary, a module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod balance_all;
mod batch;
mod commands;
mod common;
mod concurrency;
mod dates;
mod export;
mod faults;
mod first_hour;
mod fixtures;
mod follow;
mod hardening;
mod history_index;
mod holds;
mod import;
mod journal;
mod postgres;
mod props;
mod readme;
mod readmodel;
mod recovery;
mod rejections;
mod report;
mod verify;
mod verify_ids;
