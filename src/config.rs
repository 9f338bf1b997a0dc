//! Server configuration: command-line flags, `STREAMLAKE_*` environment
//! variables and an optional TOML file, in that order of precedence.
//!
//! The TOML file mirrors the flags (`listen`, `data_dir`, `warehouse`,
//! `[s3]`, `user`, `password`); unknown keys are reported as warnings rather
//! than silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
}

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
        Ok(Config {
            listen,
            data_dir,
            warehouse,
            s3,
            catalog_name: "streamlake".to_string(),
            user,
            password,
        })
    }

    /// The catalog database: a SQLite file in the data directory.
    pub fn catalog_path(&self) -> PathBuf {
        self.data_dir.join("catalog.db")
    }
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
}
