//! `rollcall console` (also `rollcall` alone): the operator console. Its flags are
//! [`OperatorArgs`], which `rollcall session` takes too: both run the same console.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, ValueEnum};

use crate::plan::attendance::AttendanceArgs;
use crate::plan::{CaptureArgs, CapturePlan};
use crate::settings::ConfigFile;
use crate::tui::ConsoleOptions;

/// Drive capture sessions and watch who is recognised, latency and the function's log.
#[derive(Args, Debug)]
pub struct ConsoleArgs {
    /// Start a session on the source at once (otherwise press `s`).
    #[arg(long)]
    start: bool,
    #[command(flatten)]
    operator: OperatorArgs,
}

/// The flags `console` and `session` share: what to capture and how the console runs.
#[derive(Args, Debug)]
pub struct OperatorArgs {
    /// Write the session report (JSON) to FILE (the console: each session's; the last wins).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
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
    pub capture: CaptureArgs,
    #[command(flatten)]
    pub attendance: AttendanceArgs,
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

impl OperatorArgs {
    /// The report destination checked, the capture plan, and the console's options.
    pub fn console(
        self,
        autostart: bool,
        config: &ConfigFile,
    ) -> Result<(CapturePlan, ConsoleOptions)> {
        if let Some(path) = &self.report {
            crate::plan::report::check_report_destination(path)?;
        }
        let plan = self.capture.plan(config)?;
        let attendance = self.attendance.open(&plan)?;
        #[cfg_attr(feature = "gpio", allow(unused_mut))]
        let mut warnings = Vec::new();
        #[cfg(feature = "gpio")]
        let gpio = {
            let wanted = match self.gpio {
                GpioMode::Off => false,
                GpioMode::On => true,
                GpioMode::Auto => std::path::Path::new("/dev/gpiomem").exists(),
            };
            let defaults = rollcall_edge::gpio::GpioConfig::default();
            wanted.then(|| rollcall_edge::gpio::GpioConfig {
                button_pin: self
                    .button_pin
                    .or(config.button_pin)
                    .unwrap_or(defaults.button_pin),
                led_pin: self.led_pin.or(config.led_pin).unwrap_or(defaults.led_pin),
                ..defaults
            })
        };
        #[cfg(not(feature = "gpio"))]
        if self.gpio == GpioMode::On {
            warnings.push(
                "this rollcall was built without the `gpio` feature: GPIO is off".to_string(),
            );
        }
        #[cfg(not(feature = "gpio"))]
        let _ = (self.button_pin, self.led_pin);
        let gpio_off_reason = match self.gpio {
            GpioMode::Off => "off (--gpio off)",
            GpioMode::Auto if !std::path::Path::new("/dev/gpiomem").exists() => {
                "off (no /dev/gpiomem on this machine)"
            }
            _ => "off",
        };
        Ok((
            plan,
            ConsoleOptions {
                autostart,
                report: self.report,
                #[cfg(feature = "gpio")]
                gpio,
                gpio_off_reason: gpio_off_reason.to_string(),
                log_group: self.log_group,
                warnings,
                attendance,
            },
        ))
    }
}

pub fn run(args: ConsoleArgs, config: &ConfigFile) -> Result<ExitCode> {
    let (plan, options) = args.operator.console(args.start, config)?;
    crate::tui::run(plan, options)
}
