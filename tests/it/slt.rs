//! sqllogictest: every `sqllogictest/**/*.slt` file against a fresh server
//! over pgwire (tokio-postgres, simple query protocol). Errors are reported
//! as `message (SQLSTATE xxxxx)` so files can match the code.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::support::Server;

struct Pg {
    client: Client,
}

#[derive(Debug)]
struct PgError(String);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PgError {}

#[async_trait]
impl AsyncDB for Pg {
    type Error = PgError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let msgs = self
            .client
            .simple_query(sql)
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) => PgError(format!("{} (SQLSTATE {})", db.message(), db.code().code())),
                None => PgError(e.to_string()),
            })?;
        let mut rows = Vec::new();
        let mut ncols = 0;
        let mut is_query = false;
        let mut count = 0;
        for m in msgs {
            match m {
                SimpleQueryMessage::RowDescription(cols) => {
                    is_query = true;
                    ncols = cols.len();
                }
                SimpleQueryMessage::Row(r) => {
                    is_query = true;
                    ncols = r.len();
                    rows.push(
                        (0..r.len())
                            .map(|i| match r.get(i) {
                                None => "NULL".to_string(),
                                Some("") => "(empty)".to_string(),
                                Some(v) => v.to_string(),
                            })
                            .collect(),
                    );
                }
                SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        if is_query {
            Ok(DBOutput::Rows {
                types: vec![DefaultColumnType::Any; ncols],
                rows,
            })
        } else {
            Ok(DBOutput::StatementComplete(count))
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "streamlake"
    }
}

fn slt_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            slt_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "slt") {
            out.push(p);
        }
    }
}

async fn run_file(path: &Path) -> Result<(), String> {
    let server = Server::start();
    let conn = server.conn_string();
    let mut runner = sqllogictest::Runner::new(move || {
        let conn = conn.clone();
        async move {
            let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
                .await
                .map_err(|e| PgError(e.to_string()))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(Pg { client })
        }
    });
    runner.with_column_validator(|_, _| true);
    runner
        .run_file_async(path)
        .await
        .map_err(|e| format!("{}\n--- server log ---\n{}", e.display(true), server.log()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sqllogictest");
    let mut files = Vec::new();
    slt_files(&root, &mut files);
    assert!(!files.is_empty(), "no .slt files under {}", root.display());
    let filter = std::env::var("SLT_FILTER").ok();
    let mut failures = Vec::new();
    let mut ran = 0;
    for f in &files {
        if let Some(flt) = &filter
            && !f.to_string_lossy().contains(flt.as_str())
        {
            continue;
        }
        ran += 1;
        if let Err(e) = run_file(f).await {
            failures.push(format!("{}: {e}", f.display()));
        }
    }
    assert!(ran > 0, "filter matched no file");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
