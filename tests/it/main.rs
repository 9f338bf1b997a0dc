//! Integration tests: the real server binary, real clients (tokio-postgres,
//! psql, psycopg), a real S3-compatible server (moto) and an independent
//! Iceberg reader (pyiceberg). One test binary keeps link time down.

mod support;

mod adversarial;
mod broker;
mod checkpoints;
mod clients;
mod concurrency;
mod faults;
mod kafka;
mod kafka_views;
mod kafka_windows;
mod oracle;
mod persistence;
mod pipelines;
mod protocol;
mod psql;
mod python;
mod s3;
mod slt;
mod view_failures;
mod views;
mod watermarks;
