//! `rollcall bench ...`: load benchmarks of the running system (as opposed to the per-stage
//! `cargo bench` micro-benchmarks), one file per job:
//!
//! - [`cameras`]: the command, its flags, the verdict and the report;
//! - [`directory`]: `bench directory`, the people directory at a university's size (load,
//!   search, memory);
//! - [`deployment`]: the recognition side under test (embedded pool or AWS) and its load probe;
//! - [`measure`]: one camera count: the simulated cameras and the samplers;
//! - [`args`], [`report`]: its flags; what it prints and writes;
//! - [`load`], [`cpu`]: what the samplers read and compute from their readings;
//! - `aws_side` (feature `aws`): provisioning, `rollcall worker` processes, the queue probe.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::settings::ConfigFile;

mod args;
#[cfg(feature = "aws")]
mod aws_side;
mod cameras;
mod cpu;
mod deployment;
mod directory;
mod load;
mod measure;
mod report;

/// `rollcall bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// N simulated cameras on one embedded service: the largest N kept in real time.
    Cameras(args::CamerasArgs),
    /// A synthetic directory of N people: gallery load time, search time per face, memory.
    Directory(directory::DirectoryArgs),
}

/// Run a `rollcall bench` job.
pub fn run(command: BenchCommand, config: &ConfigFile) -> Result<ExitCode> {
    match command {
        BenchCommand::Cameras(args) => cameras::run(args, config),
        BenchCommand::Directory(args) => directory::run(args),
    }
}
