//! `rollcall`: enrol people, identify faces, evaluate accuracy, manage models.

mod cmd;
mod embedded;
mod settings;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Recognise people on live video from small edge devices.
#[derive(Parser)]
#[command(name = "rollcall", version, about, long_about = None)]
struct Cli {
    /// Log filter (tracing-subscriber syntax), e.g. `info`, `debug`, `rollcall_recognizer=trace`.
    #[arg(long, global = true, env = "ROLLCALL_LOG", default_value = "warn")]
    log: String,

    /// Config file (TOML). Default: $XDG_CONFIG_HOME/rollcall/config.toml if it exists.
    #[arg(long, global = true, env = "ROLLCALL_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch and list the models and the ONNX Runtime library.
    #[command(subcommand)]
    Models(cmd::models::ModelsCommand),
    /// Fetch everything and run the demo: enrol from one photo, recognise others, strangers unknown.
    Demo(cmd::demo::DemoArgs),
    /// Enrol people from DIR/<person>/<images> into the people directory.
    Enroll(cmd::enroll::EnrollArgs),
    /// Name every face in one or more images.
    Identify(cmd::identify::IdentifyArgs),
    /// Measure identification accuracy on VALDIR/<person>/<images>.
    Eval(cmd::eval::EvalArgs),
    /// Cut a video into 0.5 s clips and recognise the people in each, as fast as possible.
    Scan(cmd::scan::ScanArgs),
    /// Capture, upload and recognise live: the edge and the embedded recognition service in one
    /// process (headless for now: the console UI is a later step).
    Session(cmd::session::SessionArgs),
    /// The AWS deployment: provision the bucket, queues, table and notification.
    #[cfg(feature = "aws")]
    #[command(subcommand)]
    Aws(cmd::aws::AwsCommand),
    /// Recognise clips from the S3 -> SQS clip-events queue (AWS deployment).
    #[cfg(feature = "aws")]
    Worker(cmd::aws::WorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    let outcome =
        settings::ConfigFile::load(cli.config.as_deref()).and_then(|config| match cli.command {
            Command::Models(command) => cmd::models::run(command),
            Command::Demo(args) => cmd::demo::run(args, &config),
            Command::Enroll(args) => cmd::enroll::run(args, &config),
            Command::Identify(args) => cmd::identify::run(args, &config),
            Command::Eval(args) => cmd::eval::run(args, &config),
            Command::Scan(args) => cmd::scan::run(args, &config),
            Command::Session(args) => cmd::session::run(args, &config),
            #[cfg(feature = "aws")]
            Command::Aws(command) => cmd::aws::run(command),
            #[cfg(feature = "aws")]
            Command::Worker(args) => cmd::aws::worker(args, &config),
        });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
