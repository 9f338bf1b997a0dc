//! Server configuration: command-line flags, `STREAMLAKE_*` environment
//! variables and an optional TOML file, in that order of precedence.
//!
//! The TOML file mirrors the flags (`listen`, `data_dir`, `warehouse`,
//! `[s3]`, `user`, `password`, the cadences `barrier_interval` and
//! `checkpoint_interval`, and the history kept per table:
//! `snapshot_retain_last`, `snapshot_min_age`,
//! `metadata_previous_versions_max`); unknown keys are reported as warnings
//! rather than silently ignored. Durations are written `200ms`, `2s`,
//! `10m`, `1h` or `1d`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The flags shared by `serve` and `playground`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Address for the PostgreSQL wire protocol (default 127.0.0.1:4566).
    #[arg(long, env = "STREAMLAKE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the catalog database and, by default, the warehouse.
    #[arg(long, env = "STREAMLAKE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where Iceberg tables live: a local directory or `s3://bucket/prefix`.
    #[arg(long, env = "STREAMLAKE_WAREHOUSE")]
    pub warehouse: Option<String>,
    /// S3 endpoint URL for an S3-compatible server (e.g. http://127.0.0.1:9000).
    #[arg(long, env = "STREAMLAKE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region (default: AWS_REGION, else us-east-1).
    #[arg(long, env = "STREAMLAKE_S3_REGION")]
    pub s3_region: Option<String>,
    /// Use path-style S3 addressing (default true when an endpoint is given).
    #[arg(long, env = "STREAMLAKE_S3_PATH_STYLE")]
    pub s3_path_style: Option<bool>,
    /// User name required from clients; with --password enables SCRAM-SHA-256.
    #[arg(long, env = "STREAMLAKE_USER")]
    pub user: Option<String>,
    /// Password required from clients (SCRAM-SHA-256).
    #[arg(long, env = "STREAMLAKE_PASSWORD")]
    pub password: Option<String>,
    /// How often a barrier ends an epoch (default 1s): how stale a view
    /// read may be. Lower it for fresher reads, raise it to spend less on
    /// barriers.
    #[arg(long, env = "STREAMLAKE_BARRIER_INTERVAL", value_parser = parse_duration)]
    pub barrier_interval: Option<Duration>,
    /// How often views commit to Iceberg (default 10s; FLUSH commits too):
    /// how stale other engines' reads of a view may be. Each checkpoint
    /// adds one snapshot per changed view.
    #[arg(long, env = "STREAMLAKE_CHECKPOINT_INTERVAL", value_parser = parse_duration)]
    pub checkpoint_interval: Option<Duration>,
    /// Snapshots every table and view keeps whatever their age (default 10).
    #[arg(long, env = "STREAMLAKE_SNAPSHOT_RETAIN_LAST")]
    pub snapshot_retain_last: Option<usize>,
    /// A snapshot that was current less than this long ago is never
    /// expired (default 1h): raise it for longer time travel or longer
    /// reads by other engines, lower it for tables written many times a
    /// second (each commit rewrites the list of kept snapshots).
    #[arg(long, env = "STREAMLAKE_SNAPSHOT_MIN_AGE", value_parser = parse_duration)]
    pub snapshot_min_age: Option<Duration>,
    /// Previous metadata.json files kept per table (default 20); older
    /// ones are deleted (Iceberg's `write.metadata.previous-versions-max`).
    #[arg(long, env = "STREAMLAKE_METADATA_PREVIOUS_VERSIONS_MAX")]
    pub metadata_previous_versions_max: Option<usize>,
    /// Optional TOML configuration file.
    #[arg(long, env = "STREAMLAKE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The TOML file's shape. Every field is optional; flags win.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    warehouse: Option<String>,
    user: Option<String>,
    password: Option<String>,
    barrier_interval: Option<String>,
    checkpoint_interval: Option<String>,
    snapshot_retain_last: Option<usize>,
    snapshot_min_age: Option<String>,
    metadata_previous_versions_max: Option<usize>,
    s3: FileS3,
    #[serde(flatten)]
    unknown: std::collections::BTreeMap<String, toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileS3 {
    endpoint: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
}

/// S3 connection settings; credentials come from the usual AWS_* variables.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Endpoint of an S3-compatible server; `None` means AWS itself.
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

/// The resolved configuration of one server.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `file:///abs/dir` or `s3://bucket/prefix`.
    pub warehouse: String,
    pub s3: S3Config,
    /// Name of the Iceberg catalog (pyiceberg must open it by this name).
    pub catalog_name: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// How often a barrier ends an epoch.
    pub barrier_interval: Duration,
    /// How often views commit to Iceberg (a checkpoint barrier).
    pub checkpoint_interval: Duration,
    /// How much history every table and view keeps.
    pub retention: Retention,
}

/// How much history a table keeps: applied at each commit, under the
/// table's writer lock (see `storage::expire`). A table's own Iceberg
/// properties `history.expire.min-snapshots-to-keep`,
/// `history.expire.max-snapshot-age-ms` and
/// `write.metadata.previous-versions-max` win over these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// The newest snapshots kept whatever their age (at least 1).
    pub snapshot_retain_last: usize,
    /// Snapshots that stopped being current less than this long ago stay.
    pub snapshot_min_age: Duration,
    /// Previous metadata files kept and listed in the metadata log (at
    /// least 1); older ones are deleted.
    pub metadata_previous_versions_max: usize,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            snapshot_retain_last: 10,
            snapshot_min_age: Duration::from_secs(3600),
            metadata_previous_versions_max: 20,
        }
    }
}

/// Default of `barrier_interval`.
pub const DEFAULT_BARRIER_INTERVAL: Duration = Duration::from_secs(1);
/// Default of `checkpoint_interval`.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

/// Configuration errors are reported before the server starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing trust authentication on non-loopback address {0}: set --user and --password")]
    TrustOnPublicAddress(SocketAddr),
    #[error("--user and --password must be given together")]
    HalfCredentials,
    #[error("invalid {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Resolves flags, environment and the optional file into a config.
    pub fn resolve(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        for key in file.unknown.keys() {
            tracing::warn!(key = %key, "unknown configuration key ignored");
        }
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:4566".parse().expect("valid default address"));
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./streamlake-data"));
        std::fs::create_dir_all(&data_dir).map_err(|source| ConfigError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(|source| ConfigError::DataDir {
                path: data_dir.clone(),
                source,
            })?;
        let warehouse = match args.warehouse.clone().or(file.warehouse) {
            Some(w) if w.starts_with("s3://") || w.starts_with("s3a://") => {
                w.trim_end_matches('/').replacen("s3a://", "s3://", 1)
            }
            Some(w) => local_warehouse(Path::new(w.trim_start_matches("file://")))?,
            None => local_warehouse(&data_dir.join("warehouse"))?,
        };
        let endpoint = args.s3_endpoint.clone().or(file.s3.endpoint);
        let s3 = S3Config {
            path_style: args
                .s3_path_style
                .or(file.s3.path_style)
                .unwrap_or(endpoint.is_some()),
            endpoint,
            region: args
                .s3_region
                .clone()
                .or(file.s3.region)
                .or_else(|| std::env::var("AWS_REGION").ok())
                .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                .unwrap_or_else(|| "us-east-1".to_string()),
            access_key_id: std::env::var("AWS_ACCESS_KEY_ID").ok(),
            secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY").ok(),
            session_token: std::env::var("AWS_SESSION_TOKEN").ok(),
        };
        let user = args.user.clone().or(file.user);
        let password = args.password.clone().or(file.password);
        if user.is_some() != password.is_some() {
            return Err(ConfigError::HalfCredentials);
        }
        if password.is_none() && !listen.ip().is_loopback() {
            return Err(ConfigError::TrustOnPublicAddress(listen));
        }
        let duration = |flag: Option<Duration>,
                        file: Option<String>,
                        key: &'static str|
         -> Result<Option<Duration>, ConfigError> {
            match (flag, file) {
                (Some(d), _) => Ok(Some(d)),
                (None, Some(s)) => parse_duration(&s)
                    .map(Some)
                    .map_err(|message| ConfigError::Invalid { key, message }),
                (None, None) => Ok(None),
            }
        };
        let positive = |d: Duration, key: &'static str| {
            if d.is_zero() {
                Err(ConfigError::Invalid {
                    key,
                    message: "must be more than zero".into(),
                })
            } else {
                Ok(d)
            }
        };
        let barrier_interval = positive(
            duration(
                args.barrier_interval,
                file.barrier_interval,
                "barrier_interval",
            )?
            .unwrap_or(DEFAULT_BARRIER_INTERVAL),
            "barrier_interval",
        )?;
        let checkpoint_interval = positive(
            duration(
                args.checkpoint_interval,
                file.checkpoint_interval,
                "checkpoint_interval",
            )?
            .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL),
            "checkpoint_interval",
        )?;
        let defaults = Retention::default();
        let at_least_one = |n: usize, key: &'static str| {
            if n == 0 {
                Err(ConfigError::Invalid {
                    key,
                    message: "must be at least 1".into(),
                })
            } else {
                Ok(n)
            }
        };
        let retention = Retention {
            snapshot_retain_last: at_least_one(
                args.snapshot_retain_last
                    .or(file.snapshot_retain_last)
                    .unwrap_or(defaults.snapshot_retain_last),
                "snapshot_retain_last",
            )?,
            snapshot_min_age: duration(
                args.snapshot_min_age,
                file.snapshot_min_age,
                "snapshot_min_age",
            )?
            .unwrap_or(defaults.snapshot_min_age),
            metadata_previous_versions_max: at_least_one(
                args.metadata_previous_versions_max
                    .or(file.metadata_previous_versions_max)
                    .unwrap_or(defaults.metadata_previous_versions_max),
                "metadata_previous_versions_max",
            )?,
        };
        Ok(Config {
            listen,
            data_dir,
            warehouse,
            s3,
            catalog_name: "streamlake".to_string(),
            user,
            password,
            barrier_interval,
            checkpoint_interval,
            retention,
        })
    }

    /// The catalog database: a SQLite file in the data directory.
    pub fn catalog_path(&self) -> PathBuf {
        self.data_dir.join("catalog.db")
    }
}

/// Parses a duration: a number and a unit, `ms`, `s`, `m`, `h` or `d`
/// (`200ms`, `2s`, `1.5m`, `1h`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("\"{text}\" has no unit (ms, s, m, h or d)"))?;
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" is not a number and a unit"))?;
    let seconds = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        other => return Err(format!("unknown unit \"{other}\" (ms, s, m, h or d)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("\"{text}\": {e}"))
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

fn local_warehouse(dir: &Path) -> Result<String, ConfigError> {
    std::fs::create_dir_all(dir).map_err(|source| ConfigError::DataDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let abs = dir.canonicalize().map_err(|source| ConfigError::DataDir {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(format!("file://{}", abs.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_trust_is_refused_off_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:7000\"\nwarehouse = \"s3://bucket/wh/\"\n[s3]\nendpoint = \"http://127.0.0.1:1\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            data_dir: Some(dir.path().join("data")),
            config: Some(file),
            ..Default::default()
        };
        let cfg = Config::resolve(&args).unwrap();
        assert_eq!(cfg.listen.port(), 7000);
        assert_eq!(cfg.warehouse, "s3://bucket/wh");
        assert!(cfg.s3.path_style);

        let args = ServeArgs {
            data_dir: Some(dir.path().join("data")),
            listen: Some("0.0.0.0:7001".parse().unwrap()),
            ..Default::default()
        };
        assert!(matches!(
            Config::resolve(&args),
            Err(ConfigError::TrustOnPublicAddress(_))
        ));
    }

    #[test]
    fn cadences_and_retention_come_from_flags_file_or_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(
            &file,
            "checkpoint_interval = \"2s\"\nbarrier_interval = \"200ms\"\nsnapshot_min_age = \"0s\"\nsnapshot_retain_last = 3\n",
        )
        .unwrap();
        let args = ServeArgs {
            data_dir: Some(dir.path().join("data")),
            config: Some(file.clone()),
            metadata_previous_versions_max: Some(4),
            barrier_interval: Some(Duration::from_millis(100)),
            ..Default::default()
        };
        let cfg = Config::resolve(&args).unwrap();
        assert_eq!(cfg.barrier_interval, Duration::from_millis(100));
        assert_eq!(cfg.checkpoint_interval, Duration::from_secs(2));
        assert_eq!(
            cfg.retention,
            Retention {
                snapshot_retain_last: 3,
                snapshot_min_age: Duration::ZERO,
                metadata_previous_versions_max: 4,
            }
        );
        let args = ServeArgs {
            data_dir: Some(dir.path().join("data")),
            ..Default::default()
        };
        let cfg = Config::resolve(&args).unwrap();
        assert_eq!(cfg.barrier_interval, DEFAULT_BARRIER_INTERVAL);
        assert_eq!(cfg.checkpoint_interval, DEFAULT_CHECKPOINT_INTERVAL);
        assert_eq!(cfg.retention, Retention::default());

        std::fs::write(&file, "checkpoint_interval = \"0s\"\n").unwrap();
        let args = ServeArgs {
            data_dir: Some(dir.path().join("data")),
            config: Some(file),
            ..Default::default()
        };
        assert!(matches!(
            Config::resolve(&args),
            Err(ConfigError::Invalid {
                key: "checkpoint_interval",
                ..
            })
        ));
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 1h "), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }
}
