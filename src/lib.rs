//! `ledger`: an exact, append-only money ledger built on event sourcing.
//!
//! The pure core — [`money`], [`event`], [`domain`] (decide/evolve) — knows
//! nothing of files; [`journal`] reads, checks and appends the file and
//! [`readmodel`] caches its state; [`follow`] hands new appends to a
//! consumer as they come; [`cmd`]
//! wires one command to both; [`output`] renders; [`error`] maps failures to
//! exit codes.

pub mod cli;
pub mod cmd;
pub mod domain;
pub mod error;
pub mod event;
pub mod follow;
pub mod input;
pub mod journal;
pub mod money;
pub mod output;
pub mod pattern;
pub mod period;
pub mod readmodel;
pub mod report;
pub mod suggest;
pub mod threads;
pub mod time;

/// Runs a parsed command line.
pub fn run(cli: cli::Cli) -> Result<(), error::Error> {
    cmd::run(cli)
}
