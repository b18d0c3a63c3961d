//! Settings shared by the subcommands: flags, then environment, then the config file, then defaults.
//!
//! The config file is TOML (`--config`, `$ROLLCALL_CONFIG`, or `$XDG_CONFIG_HOME/rollcall/config.toml`
//! when it exists):
//!
//! ```toml
//! db = "/var/lib/rollcall/people.db"   # people directory (SQLite)
//! threads = 1                          # ONNX Runtime threads per inference (at most the cores)
//! conv_layout = "auto"                 # convolution layout: auto (timed at load), blocked, plain
//! min_face = 20                        # smallest face side searched, pixels (MTCNN and YuNet)
//! max_detect_side = 1920               # photos longer than this are searched on a shrunken copy
//! max_megapixels = 150                 # larger photos are refused before decoding
//! detector = "mtcnn"                   # photo detector: mtcnn (thorough), yunet or fast
//! threshold = 0.40                     # fixed match threshold instead of the calibrated one
//!
//! # capture sessions (session, console)
//! source = "v4l2:/dev/video0"           # file:PATH, v4l2:/dev/videoN, rpicam or test
//! device = "lecture-hall-2"             # this device's id (default: the host name)
//! duration = "5m"                       # session length, or "end" (until the source ends)
//! max_workers = 2                       # embedded recognition workers
//! spool = "/var/lib/rollcall/spool"     # durable clip spool (default $ROLLCALL_HOME/spool)
//! spool_max = "1G"                      # most bytes one device's spool keeps
//! button_pin = 17                       # GPIO (BCM) start/stop push button
//! led_pin = 27                          # GPIO (BCM) "known person in view" LED
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use rollcall_models::ModelCache;
use rollcall_protocol::input_files::read_regular_text_file;
use rollcall_recognizer::clip::SamplePolicy;
use rollcall_recognizer::directory::attendance::AttendanceBook;
use rollcall_recognizer::directory::sqlite::SqliteDirectory;
use rollcall_recognizer::directory::{DirectoryError, PeopleDirectory};
use rollcall_recognizer::enrollment::load_gallery;
use rollcall_recognizer::runtime::ConvLayout;
use rollcall_recognizer::vision::image::MAX_IMAGE_SIDE;
use rollcall_recognizer::vision::{DetectorKind, FacePipeline, Gallery, PipelineOptions};

use crate::exit_codes::{usage, UsageError};

/// The people directory, the classes and attendance stored beside it, and where they are.
pub type DirectoryWithAttendance = (Arc<dyn PeopleDirectory>, Arc<dyn AttendanceBook>, String);

/// The config file's keys.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub db: Option<PathBuf>,
    pub threads: Option<usize>,
    pub conv_layout: Option<ConvLayout>,
    pub min_face: Option<f32>,
    pub max_detect_side: Option<u32>,
    pub max_megapixels: Option<f64>,
    pub threshold: Option<f32>,
    pub detector: Option<DetectorKind>,
    pub source: Option<String>,
    pub device: Option<String>,
    pub duration: Option<String>,
    /// The clips' H.264 bit rate in kbit/s (`--bitrate-kbps`).
    pub bitrate_kbps: Option<u32>,
    pub max_workers: Option<usize>,
    pub spool: Option<PathBuf>,
    pub spool_max: Option<String>,
    pub button_pin: Option<u8>,
    pub led_pin: Option<u8>,
    /// Event targets (`mqtt://...`, `https://...`) when no `--publish` is given.
    pub publish: Option<Vec<String>>,
}

impl ConfigFile {
    /// Read the config file named by `explicit`, else `$ROLLCALL_CONFIG` (via clap), else the
    /// default location if it exists.
    pub fn load(explicit: Option<&Path>) -> Result<ConfigFile> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None => match dirs_config_file() {
                Some(path) if path.exists() => path,
                _ => return Ok(ConfigFile::default()),
            },
        };
        // A config file is small; a FIFO or a device there must not hang or flood the reader.
        let text = read_regular_text_file(&path, Some(MAX_CONFIG_BYTES))
            .map_err(|e| UsageError(format!("cannot read config file {}: {e}", path.display())))?;
        toml::from_str(&text)
            .map_err(|e| UsageError(format!("invalid config file {}: {e}", path.display())).into())
    }
}

/// Largest config file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Thread counts above this are refused as mistakes rather than capped.
const MAX_THREADS_SETTING: usize = 4096;

/// ONNX Runtime threads per inference: at least 1, at most the cores this process may use (more
/// only makes threads wait for each other: 16 threads took 8 s for one photo on 2 cores), and
/// absurd values refused. `setting` names where the value came from.
fn threads_setting(requested: usize, setting: &str) -> Result<usize> {
    if requested == 0 {
        return usage(format!("{setting} must be at least 1"));
    }
    if requested > MAX_THREADS_SETTING {
        return usage(format!(
            "{setting} = {requested} is not a usable thread count (at most {MAX_THREADS_SETTING}; \
             more than the cores gains nothing)"
        ));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if requested > cores {
        tracing::warn!(
            "{setting} = {requested} is more than the {cores} core(s) available; using {cores}"
        );
        return Ok(cores);
    }
    Ok(requested)
}

fn dirs_config_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("rollcall").join("config.toml"))
}

/// How the function treats a clip: the flags of every command that analyses clips (scan,
/// session, console, worker).
#[derive(Args, Debug, Clone)]
pub struct ClipArgs {
    /// Frames analysed per clip: `auto` (at least 4 per second), `auto:N`, `all`, `every:K`.
    #[arg(long, default_value = "auto", value_name = "POLICY")]
    pub sample: SamplePolicy,
    /// Largest clip the function accepts, in bytes.
    #[arg(long, default_value_t = 8 * 1024 * 1024, value_name = "BYTES")]
    pub max_clip_bytes: usize,
}

/// Flags of every command that recognises faces.
#[derive(Args, Debug, Clone, Default)]
pub struct RecognizerArgs {
    /// People directory (SQLite file). Default: $ROLLCALL_HOME/people.db.
    #[arg(long, env = "ROLLCALL_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// ONNX Runtime threads per inference call.
    #[arg(long, env = "ROLLCALL_THREADS", value_name = "N")]
    pub threads: Option<usize>,
    /// Smallest face side to look for, in pixels (default 20).
    #[arg(long, env = "ROLLCALL_MIN_FACE", value_name = "PX")]
    pub min_face: Option<f32>,
    /// Photos and frames whose long side exceeds PX are searched for faces on a shrunken copy
    /// (default 1920; 0: never shrink). Bounds memory; faces smaller than min-face x (long side
    /// / PX) pixels are then not found.
    #[arg(long, env = "ROLLCALL_MAX_DETECT_SIDE", value_name = "PX")]
    pub max_detect_side: Option<u32>,
    /// Convolution layout of ONNX Runtime: `auto` (the embedder is timed both ways when it
    /// loads and the faster kept; detectors blocked), `blocked` (NCHWc) or `plain`. Which is
    /// faster depends on the CPU (see docs/benchmarks.md).
    #[arg(long, env = "ROLLCALL_CONV_LAYOUT", value_name = "auto|blocked|plain")]
    pub conv_layout: Option<ConvLayout>,
    /// Photos with more megapixels are refused before decoding (default 150).
    #[arg(long, env = "ROLLCALL_MAX_MEGAPIXELS", value_name = "MP")]
    pub max_megapixels: Option<f64>,
    /// Face detector for photos: `mtcnn` (thorough, default), `yunet` (YuNet + O-Net) or `fast`
    /// (UltraFace + O-Net). Video clips: `yunet` for frames over 640x480 when its model is present, else `fast`.
    #[arg(long, env = "ROLLCALL_DETECTOR", value_name = "KIND")]
    pub detector: Option<DetectorKind>,
    /// Fixed cosine match threshold instead of the one calibrated at enrolment.
    #[arg(long, env = "ROLLCALL_THRESHOLD", value_name = "COSINE")]
    pub threshold: Option<f32>,
    /// Where the people directory lives: `local` (SQLite, --db) or `aws` (the DynamoDB table
    /// `<ROLLCALL_AWS_PREFIX>-people`, default prefix `rollcall`). For `session` and `console`, `aws`
    /// sends clips to S3 and reads results from the device's SQS queue.
    #[arg(
        long,
        env = "ROLLCALL_BACKEND",
        default_value = "local",
        value_name = "local|aws"
    )]
    pub backend: String,
}

/// Resolved settings for one run.
pub struct Recognition {
    pub backend: String,
    pub cache: ModelCache,
    pub db: PathBuf,
    pub options: PipelineOptions,
    pub threshold: Option<f32>,
}

impl RecognizerArgs {
    /// Merge flags/env with the config file and defaults.
    pub fn resolve(&self, config: &ConfigFile) -> Result<Recognition> {
        let cache = ModelCache::from_env().context("cannot locate the rollcall data directory")?;
        let db = self
            .db
            .clone()
            .or_else(|| config.db.clone())
            .unwrap_or_else(|| cache.root().join("people.db"));
        let mut options = PipelineOptions::default();
        let threads = match (self.threads, config.threads) {
            (Some(n), _) => Some(threads_setting(n, "--threads (ROLLCALL_THREADS)")?),
            (None, Some(n)) => Some(threads_setting(n, "config file `threads`")?),
            (None, None) => None,
        };
        if let Some(threads) = threads {
            options.runtime.intra_threads = threads;
        }
        if let Some(layout) = self.conv_layout.or(config.conv_layout) {
            options.runtime.conv_layout = layout;
        }
        if let Some(min_face) = self.min_face.or(config.min_face) {
            if !(4.0..=4096.0).contains(&min_face) {
                return usage(format!(
                    "--min-face must be between 4 and 4096 pixels, got {min_face}"
                ));
            }
            options.detector.min_face_size = min_face;
            options.yunet.min_face_size = min_face;
        }
        if let Some(side) = self.max_detect_side.or(config.max_detect_side) {
            if side != 0 && !(64..=MAX_IMAGE_SIDE).contains(&side) {
                return usage(format!(
                    "--max-detect-side must be 0 (never shrink) or between 64 and \
                     {MAX_IMAGE_SIDE} pixels, got {side}"
                ));
            }
            options.max_detect_side = side;
        }
        if let Some(megapixels) = self.max_megapixels.or(config.max_megapixels) {
            let most = f64::from(MAX_IMAGE_SIDE) * f64::from(MAX_IMAGE_SIDE) / 1e6;
            if !(0.01..=most).contains(&megapixels) {
                return usage(format!(
                    "--max-megapixels must be between 0.01 and {most:.1}, got {megapixels}"
                ));
            }
            options.decode.max_pixels = (megapixels * 1e6).round() as u64;
        }
        if let Some(kind) = self.detector.or(config.detector) {
            options.detector_kind = kind;
        }
        let threshold = self.threshold.or(config.threshold);
        if let Some(t) = threshold {
            if !(-1.0..=1.0).contains(&t) {
                return usage(format!(
                    "--threshold is a cosine similarity between -1 and 1, got {t}"
                ));
            }
        }
        if !matches!(self.backend.as_str(), "local" | "aws") {
            return usage(format!(
                "--backend must be local or aws, got {:?}",
                self.backend
            ));
        }
        Ok(Recognition {
            backend: self.backend.clone(),
            cache,
            db,
            options,
            threshold,
        })
    }
}

impl Recognition {
    /// Load the models (ONNX Runtime included).
    pub fn pipeline(&self) -> Result<FacePipeline> {
        FacePipeline::load(&self.cache, self.options.clone())
            .context("cannot load the face models (run `rollcall models fetch` first)")
    }

    /// The people directory of the configured backend, and where it is (for messages).
    pub fn people_directory(
        &self,
        access: DirectoryAccess,
    ) -> Result<(Arc<dyn PeopleDirectory>, String)> {
        let (directory, _, location) = self.people_and_attendance(access)?;
        Ok((directory, location))
    }

    /// The people directory of the configured backend and, stored beside it, its classes and
    /// attendance; and where they are (for messages).
    pub fn people_and_attendance(
        &self,
        access: DirectoryAccess,
    ) -> Result<DirectoryWithAttendance> {
        self.people_and_attendance_in(access, None)
    }

    /// [`people_and_attendance`](Self::people_and_attendance); on AWS in the table and bucket
    /// of `names` when given (a session's `--prefix` / `--bucket`), else of
    /// `ROLLCALL_AWS_PREFIX` / `ROLLCALL_BUCKET`.
    pub fn people_and_attendance_in(
        &self,
        access: DirectoryAccess,
        names: Option<&rollcall_protocol::aws::Names>,
    ) -> Result<DirectoryWithAttendance> {
        if self.backend == "aws" {
            #[cfg(feature = "aws")]
            {
                let names = match names {
                    Some(names) => names.clone(),
                    None => {
                        let prefix = std::env::var("ROLLCALL_AWS_PREFIX")
                            .ok()
                            .filter(|p| !p.is_empty())
                            .unwrap_or_else(|| "rollcall".to_string());
                        let mut names = rollcall_protocol::aws::Names::new(&prefix);
                        if let Some(bucket) = std::env::var("ROLLCALL_BUCKET")
                            .ok()
                            .filter(|b| !b.is_empty())
                        {
                            names.bucket = bucket;
                        }
                        names
                    }
                };
                let table = names.table();
                // The gallery snapshot sits in the clips bucket (see directory/dynamodb.rs).
                let directory = Arc::new(
                    rollcall_recognizer::directory::dynamodb::DynamoDirectory::connect_with(
                        &table,
                        Some(&names.bucket),
                    )
                    .with_context(|| format!("cannot open the DynamoDB table {table}"))?,
                );
                return Ok((directory.clone(), directory, format!("dynamodb:{table}")));
            }
            #[cfg(not(feature = "aws"))]
            {
                let _ = names;
                anyhow::bail!("this rollcall was built without the `aws` feature");
            }
        }
        let directory = Arc::new(self.directory(access)?);
        Ok((directory.clone(), directory, self.db.display().to_string()))
    }

    /// Everyone enrolled in `directory`, at the configured or calibrated threshold; warns when
    /// nobody is enrolled (every face will then be unknown). Stored settings that cannot be used
    /// (a threshold that is not a number, embeddings of another model) are errors naming them.
    pub fn gallery(&self, directory: &dyn PeopleDirectory) -> Result<Gallery> {
        let gallery = load_gallery(directory, self.threshold)
            .with_context(|| format!("cannot use the people directory {}", self.db.display()))?;
        if gallery.is_empty() {
            // Through tracing: on stderr, and in the console's status bar.
            tracing::warn!(
                "nobody is enrolled in {}; every face will be unknown",
                self.db.display()
            );
        }
        Ok(gallery)
    }

    /// Open the SQLite people directory (`--db`): created only with [`DirectoryAccess::Create`]
    /// (and then said so on stderr); a path that does not exist is a usage error otherwise.
    pub fn directory(&self, access: DirectoryAccess) -> Result<SqliteDirectory> {
        let db = &self.db;
        let opened = match access {
            DirectoryAccess::Create => {
                if !db.exists() {
                    eprintln!("creating a new people directory at {}", db.display());
                }
                SqliteDirectory::open(db)
            }
            DirectoryAccess::Existing => SqliteDirectory::open_existing(db),
            DirectoryAccess::ReadOnly => SqliteDirectory::open_read_only(db),
        };
        opened.map_err(|e| match e {
            DirectoryError::Missing { .. } => UsageError(format!(
                "people directory {} does not exist (check --db, ROLLCALL_DB or the config \
                 file's `db`; `rollcall enroll` and `rollcall people import` create one)",
                db.display()
            ))
            .into(),
            other => anyhow::Error::new(other)
                .context(format!("cannot open people directory {}", db.display())),
        })
    }
}

/// How a command uses the people directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectoryAccess {
    /// Create it when missing, saying so (`enroll`, `people import`, the demo).
    Create,
    /// It must exist; read and write (`people remove`).
    Existing,
    /// It must exist; opened read-only (identify, eval, scan, sessions, `people list/show`).
    ReadOnly,
}

#[cfg(feature = "aws")]
/// Resource naming shared by the AWS commands.
#[derive(Args, Debug, Clone)]
pub struct AwsNames {
    /// Prefix of every resource name (`<prefix>-clips`, `<prefix>-clip-events`, `-people`, ...).
    #[arg(
        long,
        env = "ROLLCALL_AWS_PREFIX",
        default_value = "rollcall",
        value_name = "PREFIX"
    )]
    pub prefix: String,
    /// Clips bucket (default `<prefix>-clips`; bucket names are global on AWS).
    #[arg(long, env = "ROLLCALL_BUCKET", value_name = "NAME")]
    pub bucket: Option<String>,
}

impl AwsNames {
    /// The resource names these flags give.
    pub fn names(&self) -> rollcall_protocol::aws::Names {
        let mut names = rollcall_protocol::aws::Names::new(&self.prefix);
        if let Some(bucket) = &self.bucket {
            names.bucket = bucket.clone();
        }
        names
    }
}
