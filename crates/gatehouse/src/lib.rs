//! Gatehouse as a program: the command line ([`cli`]), the server ([`serve`]), the standalone
//! outpost ([`outpost`]) and their settings ([`config`]), and the admin commands that talk to a
//! running server ([`client`], [`commands`]).
//!
//! The binary in `main.rs` only parses and reports; everything runs from [`run`], and tests start
//! the real server in-process through [`serve::run`] on a listener they bound themselves.

pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod outpost;
pub mod serve;

use anyhow::Context;

/// Runs one command line to completion.
pub fn run(cli: cli::Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(commands::dispatch(cli))
}
