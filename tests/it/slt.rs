//! sqllogictest: every `sqllogictest/**/*.slt` file against a fresh server
//! over pgwire, twice: with the simple query protocol (tokio-postgres
//! `simple_query`) and with the extended one (each record prepared and run
//! as Parse/Bind/Describe/Execute/Sync, the way psycopg with `prepare=True`
//! or pgjdbc send it). Both runners render rows the same way, so one
//! expected output serves both and a statement that behaves differently
//! over the two protocols fails a file. Errors are reported as
//! `message (SQLSTATE xxxxx)` so files can match the code.
//!
//! Event sequences: a file under `sqllogictest/kafka/`, or any file that
//! uses one of the following, gets its own Kafka broker (a tansu process,
//! [`crate::broker`]) for each protocol pass, and the runner intercepts
//! two pseudo-statements before they reach the server:
//!
//! ```text
//! statement ok
//! CREATE TOPIC 'trades_{{RUN}}' PARTITIONS 3
//!
//! statement ok
//! PRODUCE TO 'trades_{{RUN}}' PARTITION 1 VALUES '{"id":1,"ts":"2026-01-01 00:00:05"}', '{"id":2}'
//! ```
//!
//! - `CREATE TOPIC 'name' [PARTITIONS n]` creates the topic (1 partition by
//!   default);
//! - `PRODUCE TO 'name' [PARTITION n] [KEY 'key'] VALUES 'payload', …`
//!   produces each payload as one record, in order, and waits for the
//!   broker's acknowledgments (no PARTITION: the producer's partitioner
//!   picks one). It reports the number of records produced.
//!
//! In every statement and query (pseudo or not), `{{BROKER}}` becomes the
//! broker's address (for `properties.bootstrap.server = '{{BROKER}}'`) and
//! `{{RUN}}` the pass (`simple` or `extended`), so that names never collide
//! between the two passes even against one broker.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use postgres_protocol::message::{backend, frontend};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::fallible_iterator::FallibleIterator;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::broker::{Broker, Record, produce};
use crate::support::Server;

/// The broker of a file that produces events, and the pass's name.
struct KafkaContext {
    broker: Broker,
    run: &'static str,
}

/// A connection that substitutes `{{BROKER}}` and `{{RUN}}` and runs
/// `CREATE TOPIC` and `PRODUCE TO` itself (see the module doc).
struct WithKafka<D> {
    inner: D,
    kafka: Option<Arc<KafkaContext>>,
}

#[async_trait]
impl<D> AsyncDB for WithKafka<D>
where
    D: AsyncDB<Error = PgError, ColumnType = DefaultColumnType> + Send,
{
    type Error = PgError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let Some(kafka) = self.kafka.clone() else {
            return self.inner.run(sql).await;
        };
        let sql = sql
            .replace("{{BROKER}}", &kafka.broker.bootstrap())
            .replace("{{RUN}}", kafka.run);
        match event_statement(&sql)? {
            None => self.inner.run(&sql).await,
            Some(EventStatement::CreateTopic { topic, partitions }) => {
                kafka.broker.create_topic(&topic, partitions).await;
                Ok(DBOutput::StatementComplete(0))
            }
            Some(EventStatement::Produce {
                topic,
                partition,
                key,
                payloads,
            }) => {
                let records = payloads
                    .iter()
                    .map(|p| {
                        let mut r = Record::new(p.as_bytes());
                        r.partition = partition;
                        r.key = key.as_deref().map(str::as_bytes);
                        r
                    })
                    .collect();
                produce(&kafka.broker.producer(), &topic, records).await;
                Ok(DBOutput::StatementComplete(payloads.len() as u64))
            }
        }
    }

    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }

    fn engine_name(&self) -> &str {
        "streamlake"
    }
}

/// A pseudo-statement of an event sequence.
#[derive(Debug, PartialEq)]
enum EventStatement {
    CreateTopic {
        topic: String,
        partitions: i32,
    },
    Produce {
        topic: String,
        partition: Option<i32>,
        key: Option<String>,
        payloads: Vec<String>,
    },
}

/// `CREATE TOPIC …` or `PRODUCE TO …` (None for anything else), read with
/// the SQL tokenizer so payloads are ordinary string literals ('' quotes).
fn event_statement(sql: &str) -> Result<Option<EventStatement>, PgError> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let head: Vec<String> = sql
        .split_whitespace()
        .take(2)
        .map(str::to_ascii_uppercase)
        .collect();
    let produce = head == ["PRODUCE", "TO"];
    if !produce && head != ["CREATE", "TOPIC"] {
        return Ok(None);
    }
    let bad = |why: &str| PgError(format!("{why}: {sql}"));
    let toks: Vec<Token> = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .map_err(|e| bad(&e.to_string()))?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon))
        .collect();
    let word = |i: usize, w: &str| matches!(toks.get(i), Some(Token::Word(x)) if x.value.eq_ignore_ascii_case(w));
    let string = |i: usize| match toks.get(i) {
        Some(Token::SingleQuotedString(s)) => Some(s.clone()),
        _ => None,
    };
    let number = |i: usize| match toks.get(i) {
        Some(Token::Number(n, _)) => n.parse::<i32>().ok(),
        _ => None,
    };
    let topic = string(2).ok_or_else(|| bad("expected a quoted topic name"))?;
    let mut i = 3;
    if !produce {
        let partitions = if word(i, "PARTITIONS") {
            i += 2;
            number(i - 1).ok_or_else(|| bad("expected a number of partitions"))?
        } else {
            1
        };
        if i != toks.len() {
            return Err(bad("expected CREATE TOPIC 'name' [PARTITIONS n]"));
        }
        return Ok(Some(EventStatement::CreateTopic { topic, partitions }));
    }
    let mut partition = None;
    let mut key = None;
    loop {
        if word(i, "PARTITION") {
            partition = Some(number(i + 1).ok_or_else(|| bad("expected a partition number"))?);
            i += 2;
        } else if word(i, "KEY") {
            key = Some(string(i + 1).ok_or_else(|| bad("expected a quoted key"))?);
            i += 2;
        } else {
            break;
        }
    }
    if !word(i, "VALUES") {
        return Err(bad(
            "expected PRODUCE TO 'topic' [PARTITION n] [KEY 'k'] VALUES 'payload', …",
        ));
    }
    i += 1;
    let mut payloads = Vec::new();
    loop {
        payloads.push(string(i).ok_or_else(|| bad("expected a quoted payload"))?);
        i += 1;
        match toks.get(i) {
            None => break,
            Some(Token::Comma) => i += 1,
            Some(_) => return Err(bad("expected , between payloads")),
        }
    }
    Ok(Some(EventStatement::Produce {
        topic,
        partition,
        key,
        payloads,
    }))
}

/// Whether a file needs a broker: under `kafka/`, or using the extension.
fn uses_kafka(path: &Path) -> bool {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    path.components().any(|c| c.as_os_str() == "kafka")
        || text.contains("{{BROKER}}")
        || text.lines().any(|l| {
            let l = l.trim_start().to_ascii_uppercase();
            l.starts_with("PRODUCE TO") || l.starts_with("CREATE TOPIC")
        })
}

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
                    rows.push((0..r.len()).map(|i| cell(r.get(i))).collect());
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

/// How a value is shown in .slt output (both runners).
fn cell(value: Option<&str>) -> String {
    match value {
        None => "NULL".to_string(),
        Some("") => "(empty)".to_string(),
        Some(v) => v.to_string(),
    }
}

/// A connection that runs every record through the extended protocol, on
/// the unnamed statement and portal, with text-format parameters (none) and
/// results. Written against the wire messages rather than tokio-postgres,
/// which binds every result column in binary.
struct Extended {
    stream: TcpStream,
    read: BytesMut,
}

impl Extended {
    async fn connect(port: u16) -> Result<Extended, PgError> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| PgError(e.to_string()))?;
        let mut conn = Extended {
            stream,
            read: BytesMut::new(),
        };
        let mut buf = BytesMut::new();
        frontend::startup_message([("user", "tester"), ("database", "dev")], &mut buf)
            .map_err(|e| PgError(e.to_string()))?;
        conn.send(&buf).await?;
        loop {
            match conn.next().await? {
                backend::Message::ReadyForQuery(_) => return Ok(conn),
                backend::Message::ErrorResponse(e) => return Err(db_error(&e)),
                backend::Message::AuthenticationOk
                | backend::Message::ParameterStatus(_)
                | backend::Message::BackendKeyData(_)
                | backend::Message::NoticeResponse(_) => {}
                _ => return Err(PgError("unexpected message during startup".into())),
            }
        }
    }

    async fn send(&mut self, buf: &[u8]) -> Result<(), PgError> {
        self.stream
            .write_all(buf)
            .await
            .map_err(|e| PgError(e.to_string()))
    }

    async fn next(&mut self) -> Result<backend::Message, PgError> {
        loop {
            if let Some(m) =
                backend::Message::parse(&mut self.read).map_err(|e| PgError(e.to_string()))?
            {
                return Ok(m);
            }
            let n = self
                .stream
                .read_buf(&mut self.read)
                .await
                .map_err(|e| PgError(e.to_string()))?;
            if n == 0 {
                return Err(PgError("server closed the connection".into()));
            }
        }
    }
}

fn db_error(body: &backend::ErrorResponseBody) -> PgError {
    let (mut message, mut code) = (String::new(), String::new());
    let mut fields = body.fields();
    while let Ok(Some(f)) = fields.next() {
        match f.type_() {
            b'M' => message = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            b'C' => code = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            _ => {}
        }
    }
    PgError(format!("{message} (SQLSTATE {code})"))
}

#[async_trait]
impl AsyncDB for Extended {
    type Error = PgError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let io = |e: std::io::Error| PgError(e.to_string());
        let mut buf = BytesMut::new();
        frontend::parse("", sql, [], &mut buf).map_err(io)?;
        frontend::describe(b'S', "", &mut buf).map_err(io)?;
        frontend::bind(
            "",
            "",
            std::iter::empty::<i16>(),
            std::iter::empty::<Option<&[u8]>>(),
            |_, _| Ok(postgres_protocol::IsNull::Yes),
            [0i16],
            &mut buf,
        )
        .map_err(|_| PgError("bind".into()))?;
        frontend::describe(b'P', "", &mut buf).map_err(io)?;
        frontend::execute("", 0, &mut buf).map_err(io)?;
        frontend::sync(&mut buf);
        self.send(&buf).await?;

        let mut error = None;
        let mut rows = Vec::new();
        let mut ncols = None;
        let mut count = 0;
        loop {
            match self.next().await? {
                backend::Message::ReadyForQuery(_) => break,
                backend::Message::ErrorResponse(e) => error = Some(db_error(&e)),
                // Describe of the statement, then of the portal: the
                // portal's answer is the one that counts.
                backend::Message::RowDescription(d) => {
                    ncols = Some(d.fields().count().map_err(io)?);
                }
                backend::Message::NoData => ncols = None,
                backend::Message::DataRow(r) => {
                    let data = r.buffer();
                    let mut row = Vec::new();
                    let mut ranges = r.ranges();
                    while let Some(range) = ranges.next().map_err(io)? {
                        row.push(cell(
                            range.map(|r| std::str::from_utf8(&data[r]).unwrap_or("<not UTF-8>")),
                        ));
                    }
                    rows.push(row);
                }
                backend::Message::CommandComplete(c) => {
                    let tag = c.tag().map_err(io)?;
                    count = tag
                        .rsplit(' ')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                }
                backend::Message::CopyInResponse(_) => {
                    // No COPY data in .slt files: end it, as psql does on EOF.
                    let mut done = BytesMut::new();
                    frontend::copy_done(&mut done);
                    frontend::sync(&mut done);
                    self.send(&done).await?;
                }
                _ => {}
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        Ok(match ncols {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(count),
        })
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

/// Which protocol a runner speaks.
#[derive(Clone, Copy, Debug)]
enum Protocol {
    Simple,
    Extended,
}

async fn run_file(path: &Path, protocol: Protocol) -> Result<(), String> {
    let server = Server::start();
    let log = |e: String| format!("{e}\n--- server log ---\n{}", server.log());
    let kafka = uses_kafka(path).then(|| {
        Arc::new(KafkaContext {
            broker: Broker::start(),
            run: match protocol {
                Protocol::Simple => "simple",
                Protocol::Extended => "extended",
            },
        })
    });
    match protocol {
        Protocol::Simple => {
            let conn = server.conn_string();
            let mut runner = sqllogictest::Runner::new(move || {
                let conn = conn.clone();
                let kafka = kafka.clone();
                async move {
                    let (client, connection) =
                        tokio_postgres::connect(&conn, tokio_postgres::NoTls)
                            .await
                            .map_err(|e| PgError(e.to_string()))?;
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    Ok(WithKafka {
                        inner: Pg { client },
                        kafka,
                    })
                }
            });
            runner.with_column_validator(|_, _| true);
            runner
                .run_file_async(path)
                .await
                .map_err(|e| log(e.display(true).to_string()))
        }
        Protocol::Extended => {
            let port = server.port;
            let mut runner = sqllogictest::Runner::new(move || {
                let kafka = kafka.clone();
                async move {
                    Ok(WithKafka {
                        inner: Extended::connect(port).await?,
                        kafka,
                    })
                }
            });
            runner.with_column_validator(|_, _| true);
            runner
                .run_file_async(path)
                .await
                .map_err(|e| log(e.display(true).to_string()))
        }
    }
}

async fn run_all(protocol: Protocol) {
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
        if let Err(e) = run_file(f, protocol).await {
            failures.push(format!("{} ({protocol:?} protocol): {e}", f.display()));
        }
    }
    assert!(ran > 0, "filter matched no file");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    run_all(Protocol::Simple).await;
}

/// The same files, every record prepared: a statement streamlake handles
/// itself must do the same over both protocols.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files_extended_protocol() {
    run_all(Protocol::Extended).await;
}

#[test]
fn event_statements_parse() {
    assert_eq!(event_statement("SELECT 1").unwrap(), None);
    assert_eq!(
        event_statement("create topic 't_x' partitions 3").unwrap(),
        Some(EventStatement::CreateTopic {
            topic: "t_x".into(),
            partitions: 3
        })
    );
    assert_eq!(
        event_statement(r#"PRODUCE TO 't' PARTITION 2 KEY 'k' VALUES '{"a":1}', 'it''s'"#).unwrap(),
        Some(EventStatement::Produce {
            topic: "t".into(),
            partition: Some(2),
            key: Some("k".into()),
            payloads: vec![r#"{"a":1}"#.into(), "it's".into()],
        })
    );
    assert!(event_statement("PRODUCE TO 't' '{}'").is_err());
}
