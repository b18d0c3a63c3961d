//! `rollcall`: the operator console (no subcommand), capture sessions, enrolment,
//! identification, evaluation, models and the AWS deployment.

mod cmd;
mod demo_video;
mod embedded;
mod errors;
mod exit_codes;
mod headless;
mod logs;
mod plan;
mod service;
mod settings;
mod signals;
mod tui;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Recognise people on live video from small edge devices.
#[derive(Parser)]
#[command(name = "rollcall", version, about, long_about = None)]
struct Cli {
    /// Log filter (tracing-subscriber syntax), e.g. `info`, `debug`, `rollcall_recognizer=trace`.
    /// ffmpeg's own messages (`moov atom not found`) only from `ffmpeg=warn` or `debug` on: the
    /// error they lead to already says what is wrong with the input.
    #[arg(
        long,
        global = true,
        env = "ROLLCALL_LOG",
        default_value = "warn,ort=error,ffmpeg=error"
    )]
    log: String,

    /// Config file (TOML). Default: $XDG_CONFIG_HOME/rollcall/config.toml if it exists.
    #[arg(long, global = true, env = "ROLLCALL_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,

    /// Without a subcommand: the operator console (`rollcall console`).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The operator console (TUI): start/stop sessions, see who is recognised, latency, logs.
    Console(cmd::console::ConsoleArgs),
    /// Fetch and list the models and the ONNX Runtime library.
    #[command(subcommand)]
    Models(cmd::models::ModelsCommand),
    /// Fetch everything and run the demo: enrol from one photo, recognise others, strangers unknown.
    Demo(cmd::demo::DemoArgs),
    /// Enrol people from DIR/<person>/<images> into the people directory.
    Enroll(cmd::enroll::EnrollArgs),
    /// The people directory: import academic records (CSV), list, show, remove people.
    #[command(subcommand)]
    People(cmd::people::PeopleCommand),
    /// Class rosters: add, remove, list, import people of a class.
    #[command(subcommand)]
    Class(cmd::class::ClassCommand),
    /// Attendance history of sessions taken with --class: list, show (table, JSON, CSV),
    /// mark (operator corrections), prune (retention).
    #[command(subcommand)]
    Attendance(cmd::attendance::AttendanceCommand),
    /// Name every face in one or more images.
    Identify(cmd::identify::IdentifyArgs),
    /// Measure identification accuracy on VALDIR/<person>/<images>.
    Eval(cmd::eval::EvalArgs),
    /// Cut a video into 0.5 s clips and recognise the people in each, as fast as possible.
    Scan(cmd::scan::ScanArgs),
    /// Capture, upload and recognise live: a session in the console, or --headless for scripts.
    Session(cmd::session::SessionArgs),
    /// The durable clip spool: what waits there (`status`), send it and wait for the answers
    /// (`drain`).
    #[command(subcommand)]
    Spool(cmd::spool::SpoolCommand),
    /// Load benchmarks of the running system, e.g. `bench cameras`: the most simulated cameras
    /// one embedded service keeps in real time.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// The AWS deployment: provision the bucket, queues, table and notification; tail the logs.
    #[cfg(feature = "aws")]
    #[command(subcommand)]
    Aws(cmd::aws::AwsCommand),
    /// Recognise clips from the S3 -> SQS clip-events queue (AWS deployment).
    #[cfg(feature = "aws")]
    Worker(cmd::worker::WorkerArgs),
}

/// `--log` lines go to stderr (silenced while the console owns the screen); the console's log
/// panel gets this process's own info lines through the log ring, whatever `--log` says.
fn init_logging(filter: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};

    // Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org).
    let colour = plan::report::stderr_has_colour();
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(colour)
        .with_writer(logs::ring::StderrUnlessMuted)
        .with_filter(EnvFilter::new(filter));
    let ring = logs::ring::RingLayer::new(std::sync::Arc::clone(logs::ring::global())).with_filter(
        EnvFilter::new("warn,ort=error,rollcall=info,rollcall_recognizer=info,rollcall_edge=info"),
    );
    let registry = tracing_subscriber::registry().with(stderr).with(ring);
    // `rollcall worker` ships its lines to CloudWatch Logs through this layer (dormant otherwise).
    #[cfg(feature = "aws")]
    let registry = registry.with(logs::shipping::cloudwatch_log_layer());
    registry.init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let command = cli
        .command
        .unwrap_or_else(|| Command::Console(cmd::console::ConsoleArgs::default_args()));
    let outcome =
        settings::ConfigFile::load(cli.config.as_deref()).and_then(|config| match command {
            Command::Console(args) => cmd::console::run(args, &config),
            Command::Models(command) => cmd::models::run(command),
            Command::Demo(args) => cmd::demo::run(args, &config),
            Command::Enroll(args) => cmd::enroll::run(args, &config),
            Command::People(command) => cmd::people::run(command, &config),
            Command::Class(command) => cmd::class::run(command, &config),
            Command::Attendance(command) => cmd::attendance::run(command, &config),
            Command::Identify(args) => cmd::identify::run(args, &config),
            Command::Eval(args) => cmd::eval::run(args, &config),
            Command::Scan(args) => cmd::scan::run(args, &config),
            Command::Session(args) => cmd::session::run(args, &config),
            Command::Spool(command) => cmd::spool::run(command, &config),
            Command::Bench(command) => cmd::bench::run(command, &config),
            #[cfg(feature = "aws")]
            Command::Aws(command) => cmd::aws::run(command),
            #[cfg(feature = "aws")]
            Command::Worker(args) => cmd::worker::run(args, &config),
        });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", errors::one_line(&error));
            exit_codes::exit_code_of(&error)
        }
    }
}
