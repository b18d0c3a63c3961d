//! A capture session's plan: the flags shared by `session` and `console` ([`CaptureArgs`])
//! resolved with the environment and the config file into a [`CapturePlan`] (source, device,
//! backend, durations), plus what a session reports ([`report`]). `cmd/` and `tui/` both build on
//! it; it knows nothing of either.

pub mod attendance;
pub mod durations;
pub mod publish;
pub mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use rollcall_edge::session::SessionConfig;
use rollcall_edge::source::{now_ns, NetworkOptions, Pace, RtspTransport, SourceSpec};
use rollcall_protocol::ids::validate_id;
use rollcall_recognizer::pool::default_max_workers;

use crate::embedded::EmbeddedOptions;
use crate::exit_codes::{usage, UsageError};
use crate::service::RecognitionService;
use crate::settings::{ClipArgs, ConfigFile, Recognition, RecognizerArgs};
use durations::{
    parse_duration, parse_session_duration, parse_size, SessionDuration, DEFAULT_SESSION,
};

/// How a capture session runs: the flags shared by `session` and `console`.
#[derive(Args, Debug, Clone)]
pub struct CaptureArgs {
    /// Frame source: file:PATH, v4l2:/dev/videoN, rpicam, test, or a network camera URL
    /// (rtsp://, rtsps://, http(s):// MJPEG or HLS; credentials in the URL or in
    /// ROLLCALL_CAMERA_USERNAME / ROLLCALL_CAMERA_PASSWORD). Default: the first camera found
    /// (/dev/video0, then rpicam), else the demo video, else the test pattern.
    #[arg(
        long,
        env = "ROLLCALL_SOURCE",
        value_name = "SRC",
        hide_env_values = true
    )]
    // Text, parsed by the plan: clap's error would echo a camera URL with its password.
    pub source: Option<String>,
    /// Network cameras: how RTSP carries the video.
    #[arg(long, value_enum, default_value_t = RtspTransportArg::Tcp)]
    pub rtsp_transport: RtspTransportArg,
    /// Network cameras: a stream without a picture for this long counts as dropped and is
    /// reconnected (also the limit on connecting).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    pub camera_timeout: Duration,
    /// Stop capturing after this long (e.g. 300, 90s, 5m, 1h; `end` = at the end of the
    /// source). Default: 5m.
    #[arg(long, value_name = "DURATION", value_parser = parse_session_duration)]
    pub duration: Option<SessionDuration>,
    /// Most recognition workers at once, embedded backend (default: the core count).
    #[arg(long, value_name = "N")]
    pub max_workers: Option<usize>,
    /// How fast file and test sources deliver frames.
    #[arg(long, value_enum, default_value_t = PaceArg::Realtime)]
    pub pace: PaceArg,
    /// This device's id (default: the host name).
    #[arg(long, env = "ROLLCALL_DEVICE", value_name = "ID")]
    pub device: Option<String>,
    /// Clip length in milliseconds.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub clip_ms: u32,
    /// The clips' H.264 bit rate in kbit/s (default: by frame size, 1500 for 640x360 at 30 fps,
    /// 6000 for 1280x720, at most 8000).
    #[arg(long, env = "ROLLCALL_BITRATE_KBPS", value_name = "KBPS")]
    pub bitrate_kbps: Option<u32>,
    #[command(flatten)]
    pub clip: ClipArgs,
    /// After capture, how long to wait without an upload or a result before the session ends;
    /// unanswered clips then stay in the spool (reported as spooled).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    pub grace: Duration,
    /// Publish recognition events to an MQTT broker (mqtt://[user:pass@]host[:port]/prefix,
    /// mqtts:// for TLS) or a webhook (http(s)://...); repeat for several. Broker credentials
    /// may come from ROLLCALL_MQTT_USERNAME / ROLLCALL_MQTT_PASSWORD, the webhooks' HMAC key
    /// from ROLLCALL_WEBHOOK_SECRET.
    #[arg(
        long,
        env = "ROLLCALL_PUBLISH",
        value_name = "URL",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub publish: Vec<String>,
    #[command(flatten)]
    pub spool: SpoolArgs,
    /// Keep the uploaded clips in DIR (embedded backend; default: a temporary folder).
    #[arg(long, value_name = "DIR")]
    pub objects: Option<PathBuf>,
    /// AWS backend: resource names (the deployment's prefix / bucket).
    #[cfg(feature = "aws")]
    #[command(flatten)]
    pub aws: crate::settings::AwsNames,
    #[command(flatten)]
    pub recognizer: RecognizerArgs,
}

/// Where the durable clip spool is: the flags of `session`, `console` and `spool`.
#[derive(Args, Debug, Clone, Default)]
pub struct SpoolArgs {
    /// The durable clip spool: every clip waits there, on disk, until its result arrives;
    /// clips left by a crash or an outage are sent by the next run of the device or by
    /// `rollcall spool drain`. Default: $ROLLCALL_HOME/spool.
    #[arg(long, env = "ROLLCALL_SPOOL", value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Most bytes one device's spool keeps (e.g. 200M, 2G; default 1G). When it is full the
    /// oldest clips are dropped and reported lost by id.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub spool_max: Option<u64>,
}

impl SpoolArgs {
    /// The spool root: the flag or `$ROLLCALL_SPOOL`, else the config file's `spool`, else
    /// `spool` in the rollcall data directory.
    pub fn root(&self, config: &ConfigFile) -> Result<PathBuf> {
        if let Some(dir) = self.spool.clone().or_else(|| config.spool.clone()) {
            return Ok(dir);
        }
        let cache = rollcall_models::ModelCache::from_env()
            .context("cannot locate the rollcall data directory")?;
        Ok(cache.root().join("spool"))
    }

    /// A device spool's byte limit: the flag, else the config file's `spool_max`, else 1 GiB.
    pub fn max_bytes(&self, config: &ConfigFile) -> Result<u64> {
        match (self.spool_max, &config.spool_max) {
            (Some(bytes), _) => Ok(bytes),
            (None, Some(text)) => {
                parse_size(text).map_err(|e| anyhow::anyhow!("config file `spool_max`: {e}"))
            }
            (None, None) => Ok(rollcall_edge::spool::DEFAULT_SPOOL_MAX_BYTES),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
/// `--rtsp-transport`.
pub enum RtspTransportArg {
    /// RTP inside the RTSP TCP connection: passes firewalls, loses nothing.
    Tcp,
    /// RTP over UDP: lower latency on a clean LAN, drops packets under load.
    Udp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
/// `--pace`: how fast file and test sources deliver frames.
pub enum PaceArg {
    /// As a camera would: the stream's own frame rate.
    Realtime,
    /// As fast as frames can be produced.
    Fast,
}

fn default_device() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cleaned: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if validate_id("device id", &cleaned).is_ok() {
        cleaned
    } else {
        "edge".to_string()
    }
}

/// Most embedded recognition workers: `--max-workers`, else the config file's `max_workers`,
/// else the core count; 1 to 256.
pub fn resolve_max_workers(flag: Option<usize>, config: &ConfigFile) -> Result<usize> {
    let max_workers = flag
        .or(config.max_workers)
        .unwrap_or_else(default_max_workers);
    anyhow::ensure!(
        (1..=256).contains(&max_workers),
        "--max-workers must be between 1 and 256"
    );
    Ok(max_workers)
}

/// `2026-11-26T21-00-00Z-1a2b`: the start time (UTC) plus a little entropy.
fn new_session_id() -> String {
    let now = std::time::SystemTime::now();
    let stamp = rollcall_recognizer::directory::rfc3339_utc(now).replace(':', "-");
    format!("{stamp}-{:04x}", (now_ns() / 1000) & 0xffff)
}

/// Capture settings resolved from flags, environment and config: what to start and how.
pub struct CapturePlan {
    pub source: SourceSpec,
    pub device: String,
    pub pace: Pace,
    pub clip_ms: u32,
    /// `None`: by frame size.
    pub bitrate_bps: Option<u32>,
    pub duration: Option<Duration>,
    pub grace: Duration,
    /// The durable spool's root and a device spool's byte limit.
    pub spool_root: PathBuf,
    pub spool_max: u64,
    pub recognition: Recognition,
    pub embedded: EmbeddedOptions,
    /// Timeouts and reconnection of network cameras.
    pub network: NetworkOptions,
    /// Where recognition events go.
    pub publish: publish::PublishPlan,
    /// ROLLCALL_CAMERA_USERNAME / ROLLCALL_CAMERA_PASSWORD, for camera URLs without their own.
    camera_credentials: Option<(String, Option<String>)>,
    #[cfg(feature = "aws")]
    pub names: rollcall_protocol::aws::Names,
    /// Holds the embedded object store by default; removed when the plan is dropped.
    _scratch: tempfile::TempDir,
}

impl CaptureArgs {
    /// Check and resolve the flags.
    pub fn plan(&self, config: &ConfigFile) -> Result<CapturePlan> {
        if !(100..=10_000).contains(&self.clip_ms) {
            return usage("--clip-ms must be between 100 and 10000");
        }
        let bitrate_kbps = match (self.bitrate_kbps, config.bitrate_kbps) {
            (Some(kbps), _) => Some((kbps, "--bitrate-kbps")),
            (None, Some(kbps)) => Some((kbps, "config file `bitrate_kbps`")),
            (None, None) => None,
        };
        if let Some((kbps, setting)) =
            bitrate_kbps.filter(|(kbps, _)| !(50..=50_000).contains(kbps))
        {
            return usage(format!(
                "{setting} must be between 50 and 50000 (got {kbps})"
            ));
        }
        let max_workers = resolve_max_workers(self.max_workers, config)?;
        let device = self
            .device
            .clone()
            .or_else(|| config.device.clone())
            .unwrap_or_else(default_device);
        validate_id("device id", &device).map_err(|e| UsageError(format!("--device: {e}")))?;
        let recognition = self.recognizer.resolve(config)?;
        let source = match (&self.source, &config.source) {
            (Some(text), _) => {
                SourceSpec::parse(text).map_err(|e| UsageError(format!("--source: {e}")))?
            }
            (None, Some(text)) => SourceSpec::parse(text)
                .map_err(|e| UsageError(format!("config file `source`: {e}")))?,
            (None, None) => default_source(&recognition.cache),
        };
        let duration = match (self.duration, &config.duration) {
            (Some(duration), _) => duration,
            (None, Some(text)) => parse_session_duration(text)
                .map_err(|e| UsageError(format!("config file `duration`: {e}")))?,
            (None, None) => SessionDuration::Limit(DEFAULT_SESSION),
        };
        if self.camera_timeout < Duration::from_millis(100) {
            return Err(UsageError("--camera-timeout must be at least 100ms".to_string()).into());
        }
        let camera_credentials = std::env::var("ROLLCALL_CAMERA_USERNAME")
            .ok()
            .filter(|user| !user.is_empty())
            .map(|user| (user, std::env::var("ROLLCALL_CAMERA_PASSWORD").ok()));
        let scratch = tempfile::Builder::new()
            .prefix("rollcall-session-")
            .tempdir()
            .context("cannot create a temporary folder")?;
        let objects = self
            .objects
            .clone()
            .unwrap_or_else(|| scratch.path().join("objects"));
        Ok(CapturePlan {
            source,
            device,
            pace: match self.pace {
                PaceArg::Realtime => Pace::RealTime,
                PaceArg::Fast => Pace::Fast,
            },
            clip_ms: self.clip_ms,
            bitrate_bps: bitrate_kbps.map(|(kbps, _)| kbps * 1000),
            duration: duration.limit(),
            grace: self.grace,
            spool_root: self.spool.root(config)?,
            spool_max: self.spool.max_bytes(config)?,
            embedded: EmbeddedOptions {
                max_workers,
                sample: self.clip.sample,
                max_clip_bytes: self.clip.max_clip_bytes,
                objects,
            },
            recognition,
            network: NetworkOptions {
                rtsp_transport: match self.rtsp_transport {
                    RtspTransportArg::Tcp => RtspTransport::Tcp,
                    RtspTransportArg::Udp => RtspTransport::Udp,
                },
                read_timeout: self.camera_timeout,
                ..NetworkOptions::default()
            },
            camera_credentials,
            publish: publish::PublishPlan::resolve(&self.publish, config.publish.as_deref())?,
            #[cfg(feature = "aws")]
            names: self.aws.names(),
            _scratch: scratch,
        })
    }
}

impl CapturePlan {
    /// Start the recognition service of the configured backend (loads the models when
    /// embedded).
    pub fn start_service(&self) -> Result<RecognitionService> {
        match self.recognition.backend.as_str() {
            #[cfg(feature = "aws")]
            "aws" => RecognitionService::aws(self.names.clone(), &self.device),
            #[cfg(not(feature = "aws"))]
            "aws" => anyhow::bail!("this rollcall was built without the `aws` feature"),
            _ => RecognitionService::embedded(&self.recognition, &self.embedded),
        }
    }

    /// A new session's configuration on `source` (a camera URL without credentials gets those
    /// of the environment).
    pub fn session_config(&self, source: &SourceSpec) -> SessionConfig {
        let session_id = new_session_id();
        let source = match (source, &self.camera_credentials) {
            (SourceSpec::Network(url), Some((user, password))) => {
                SourceSpec::Network(url.with_credentials(user, password.as_deref()))
            }
            _ => source.clone(),
        };
        let mut session = SessionConfig::new(source, &self.device, &session_id, &self.spool_root);
        session.spool_max_bytes = self.spool_max;
        session.source_options.pace = self.pace;
        session.source_options.network = self.network.clone();
        session.clip_ms = self.clip_ms;
        session.bitrate_bps = self.bitrate_bps;
        session.duration = self.duration;
        session.grace = self.grace;
        session.receive_wait = Duration::from_millis(100);
        session
    }
}

/// A camera if there is one, else the demo video if it was built, else the test pattern.
fn default_source(cache: &rollcall_models::ModelCache) -> SourceSpec {
    if std::path::Path::new("/dev/video0").exists() {
        return SourceSpec::V4l2("/dev/video0".into());
    }
    let on_path = |program: &str| {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())
        })
    };
    if on_path("rpicam-vid") || on_path("libcamera-vid") {
        return SourceSpec::Rpicam;
    }
    let demo = crate::demo_video::demo_video_path(cache);
    if demo.is_file() {
        return SourceSpec::File(demo);
    }
    SourceSpec::TestPattern
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture_args(argv: &[&str]) -> CaptureArgs {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            capture: CaptureArgs,
        }
        <Wrapper as clap::Parser>::try_parse_from(
            std::iter::once("rollcall").chain(argv.iter().copied()),
        )
        .expect("valid flags")
        .capture
    }

    #[test]
    fn flags_beat_the_config_file_which_beats_defaults() {
        let config: ConfigFile = toml::from_str(
            "source = \"test\"\ndevice = \"cfg-dev\"\nduration = \"end\"\nmax_workers = 3\n",
        )
        .unwrap();
        let plan = capture_args(&[]).plan(&config).unwrap();
        assert_eq!(plan.source, SourceSpec::TestPattern);
        assert_eq!(plan.device, "cfg-dev");
        assert_eq!(plan.duration, None);
        assert_eq!(plan.embedded.max_workers, 3);

        let plan = capture_args(&["--device", "flag-dev", "--duration", "90s"])
            .plan(&config)
            .unwrap();
        assert_eq!(plan.device, "flag-dev");
        assert_eq!(plan.duration, Some(Duration::from_secs(90)));

        let plan = capture_args(&["--source", "test"])
            .plan(&ConfigFile::default())
            .unwrap();
        assert_eq!(plan.duration, Some(DEFAULT_SESSION));

        let bad: ConfigFile = toml::from_str("source = \"webcam\"").unwrap();
        let err = capture_args(&[]).plan(&bad).err().expect("bad source");
        assert!(
            format!("{err:#}").contains("config file `source`"),
            "{err:#}"
        );
    }

    #[test]
    fn camera_urls_get_the_environment_credentials_unless_they_have_their_own() {
        let mut plan = capture_args(&["--camera-timeout", "3s", "--rtsp-transport", "udp"])
            .plan(&ConfigFile::default())
            .unwrap();
        assert_eq!(plan.network.read_timeout, Duration::from_secs(3));
        assert_eq!(plan.network.rtsp_transport, RtspTransport::Udp);
        plan.camera_credentials = Some(("op".into(), Some("pw:1".into())));
        let bare = SourceSpec::parse("rtsp://cam/live").unwrap();
        let config = plan.session_config(&bare);
        let SourceSpec::Network(url) = &config.source else {
            panic!("{:?}", config.source)
        };
        assert!(url.has_credentials());
        assert_eq!(url.to_string(), "rtsp://op:***@cam/live");
        assert_eq!(config.source_options.network, plan.network);
        let own = SourceSpec::parse("rtsp://me:mine@cam/live").unwrap();
        assert_eq!(plan.session_config(&own).source, own);
        let file = SourceSpec::parse("file:x.mp4").unwrap();
        assert_eq!(plan.session_config(&file).source, file);
        assert!(capture_args(&["--camera-timeout", "1ms"])
            .plan(&ConfigFile::default())
            .is_err());
    }

    #[test]
    fn the_spool_comes_from_the_flag_the_config_file_or_the_data_directory() {
        let config: ConfigFile =
            toml::from_str("source = \"test\"\nspool = \"/cfg/spool\"\nspool_max = \"200M\"\n")
                .unwrap();
        let plan = capture_args(&[]).plan(&config).unwrap();
        assert_eq!(plan.spool_root, PathBuf::from("/cfg/spool"));
        assert_eq!(plan.spool_max, 200 << 20);
        let plan = capture_args(&["--spool", "/flag/spool", "--spool-max", "1G"])
            .plan(&config)
            .unwrap();
        assert_eq!(plan.spool_root, PathBuf::from("/flag/spool"));
        assert_eq!(plan.spool_max, 1 << 30);
        let session = plan.session_config(&SourceSpec::TestPattern);
        assert_eq!(session.spool_root, PathBuf::from("/flag/spool"));
        assert_eq!(session.spool_max_bytes, 1 << 30);
        let plan = capture_args(&["--source", "test"])
            .plan(&ConfigFile::default())
            .unwrap();
        assert!(plan.spool_root.ends_with("spool"), "{:?}", plan.spool_root);
        assert_eq!(
            plan.spool_max,
            rollcall_edge::spool::DEFAULT_SPOOL_MAX_BYTES
        );
        let bad: ConfigFile = toml::from_str("spool_max = \"lots\"").unwrap();
        let err = capture_args(&["--source", "test"])
            .plan(&bad)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("spool_max"), "{err:#}");
    }

    #[test]
    fn the_bit_rate_comes_from_the_flag_the_config_file_or_the_frame_size() {
        let config: ConfigFile =
            toml::from_str("source = \"test\"\nbitrate_kbps = 3000\n").unwrap();
        let plan = capture_args(&[]).plan(&config).unwrap();
        assert_eq!(plan.bitrate_bps, Some(3_000_000));
        let plan = capture_args(&["--bitrate-kbps", "800"])
            .plan(&config)
            .unwrap();
        assert_eq!(
            plan.session_config(&SourceSpec::TestPattern).bitrate_bps,
            Some(800_000)
        );
        let plan = capture_args(&["--source", "test"])
            .plan(&ConfigFile::default())
            .unwrap();
        assert_eq!(
            plan.session_config(&SourceSpec::TestPattern).bitrate_bps,
            None
        );
        let err = capture_args(&["--bitrate-kbps", "10"])
            .plan(&config)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("--bitrate-kbps"), "{err:#}");
        let bad: ConfigFile = toml::from_str("bitrate_kbps = 99999").unwrap();
        let err = capture_args(&["--source", "test"])
            .plan(&bad)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("bitrate_kbps"), "{err:#}");
    }

    #[test]
    fn session_ids_are_valid_ids() {
        let id = new_session_id();
        assert!(validate_id("session id", &id).is_ok(), "{id}");
        assert!(validate_id("device id", &default_device()).is_ok());
    }
}
