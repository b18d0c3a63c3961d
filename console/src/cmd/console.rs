//! `rollcall console` (also `rollcall` alone): the operator console.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, ValueEnum};

use crate::plan::attendance::AttendanceArgs;
use crate::plan::CaptureArgs;
use crate::settings::ConfigFile;
use crate::tui::ConsoleOptions;

/// Drive capture sessions and watch who is recognised, latency and the function's log.
#[derive(Args, Debug)]
pub struct ConsoleArgs {
    /// Start a session on the source at once (otherwise press `s`).
    #[arg(long)]
    start: bool,
    /// Write each session's JSON report to FILE (as `session --report`).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Push button + LED on the Raspberry Pi GPIO: `auto` uses them when /dev/gpiomem exists.
    #[arg(long, value_enum, env = "ROLLCALL_GPIO", default_value_t = GpioMode::Auto)]
    gpio: GpioMode,
    /// GPIO (BCM number) of the start/stop push button, wired to ground (default 17).
    #[arg(long, env = "ROLLCALL_BUTTON_PIN", value_name = "BCM")]
    button_pin: Option<u8>,
    /// GPIO (BCM number) of the "known person in view" LED (default 27).
    #[arg(long, env = "ROLLCALL_LED_PIN", value_name = "BCM")]
    led_pin: Option<u8>,
    /// AWS backend: the CloudWatch log group to tail (`lambda`, `worker` or a group name;
    /// default `lambda`).
    #[arg(long, value_name = "GROUP")]
    log_group: Option<String>,
    #[command(flatten)]
    capture: CaptureArgs,
    #[command(flatten)]
    attendance: AttendanceArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum GpioMode {
    /// Use GPIO when this machine has it.
    Auto,
    /// Use GPIO; say why when it cannot be opened.
    On,
    /// Do not touch GPIO.
    Off,
}

impl ConsoleArgs {
    /// `rollcall` with no subcommand: the console with every default (flags/env still apply
    /// through the environment and the config file).
    pub fn default_args() -> ConsoleArgs {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            args: ConsoleArgs,
        }
        Defaults::parse_from(["rollcall"]).args
    }
}

pub fn run(args: ConsoleArgs, config: &ConfigFile) -> Result<ExitCode> {
    if let Some(path) = &args.report {
        crate::plan::report::check_report_destination(path)?;
    }
    let plan = args.capture.plan(config)?;
    let attendance = args.attendance.open(&plan)?;
    #[cfg(feature = "gpio")]
    let gpio = {
        let wanted = match args.gpio {
            GpioMode::Off => false,
            GpioMode::On => true,
            GpioMode::Auto => std::path::Path::new("/dev/gpiomem").exists(),
        };
        let defaults = rollcall_edge::gpio::GpioConfig::default();
        wanted.then(|| rollcall_edge::gpio::GpioConfig {
            button_pin: args
                .button_pin
                .or(config.button_pin)
                .unwrap_or(defaults.button_pin),
            led_pin: args.led_pin.or(config.led_pin).unwrap_or(defaults.led_pin),
            ..defaults
        })
    };
    #[cfg(not(feature = "gpio"))]
    if args.gpio == GpioMode::On {
        eprintln!("note: this rollcall was built without the `gpio` feature; GPIO is off");
    }
    crate::tui::run(
        plan,
        ConsoleOptions {
            autostart: args.start,
            report: args.report,
            #[cfg(feature = "gpio")]
            gpio,
            log_group: args.log_group,
            attendance,
        },
    )
}
