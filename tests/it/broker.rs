//! A real Kafka-protocol broker for the tests: a tansu process (built and
//! cached by scripts/setup.sh, found through STREAMLAKE_TANSU) on a free
//! port with its SQLite storage in a temporary directory, plus a producer
//! and topic administration through rdkafka.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::support::free_port;

pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn tansu() -> PathBuf {
    PathBuf::from(std::env::var("STREAMLAKE_TANSU").expect(
        "STREAMLAKE_TANSU is not set: run the tests with scripts/test.sh, which builds the tansu broker",
    ))
}

impl Broker {
    pub fn start() -> Broker {
        let mut b = Broker {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::File::create(self.dir.path().join("tansu.log")).unwrap();
        let child = Command::new(tansu())
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker (SIGKILL); its data stays for [`Broker::restart`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        self.spawn();
    }

    pub async fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .unwrap();
        let res = admin
            .create_topics(
                &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .unwrap();
        for r in res {
            r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
        }
    }

    pub fn producer(&self) -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("linger.ms", "5")
            .set("message.timeout.ms", "60000")
            .create()
            .unwrap()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- tansu log (last 30 lines) ---\n{}",
                lines[lines.len().saturating_sub(30)..].join("\n")
            );
        }
        self.stop();
    }
}

/// One record to produce.
pub struct Record<'a> {
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    pub timestamp_ms: Option<i64>,
    pub headers: &'a [(&'a str, &'a [u8])],
}

impl<'a> Record<'a> {
    pub fn new(payload: &'a [u8]) -> Record<'a> {
        Record {
            partition: None,
            key: None,
            payload,
            timestamp_ms: None,
            headers: &[],
        }
    }
}

/// Produces every record and waits for all acknowledgments, in order per
/// partition.
pub async fn produce(producer: &FutureProducer, topic: &str, records: Vec<Record<'_>>) {
    let mut pending = Vec::with_capacity(records.len());
    for r in &records {
        let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).payload(r.payload);
        if let Some(k) = r.key {
            fr = fr.key(k);
        }
        if let Some(p) = r.partition {
            fr = fr.partition(p);
        }
        if let Some(ts) = r.timestamp_ms {
            fr = fr.timestamp(ts);
        }
        if !r.headers.is_empty() {
            let mut h = OwnedHeaders::new();
            for (k, v) in r.headers {
                h = h.insert(Header {
                    key: k,
                    value: Some(*v),
                });
            }
            fr = fr.headers(h);
        }
        loop {
            match producer.send_result(fr) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err((e, back)) => {
                    // Queue full: let deliveries drain.
                    assert!(
                        matches!(
                            e,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ),
                        "produce: {e}"
                    );
                    producer.poll(Duration::from_millis(10));
                    fr = back;
                }
            }
        }
    }
    for f in pending {
        f.await
            .expect("delivery canceled")
            .unwrap_or_else(|(e, _)| panic!("delivery failed: {e}"));
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

impl Broker {
    /// Grows a topic to `total` partitions.
    pub async fn add_partitions(&self, topic: &str, total: usize) -> Result<(), String> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .unwrap();
        let res = admin
            .create_partitions(
                &[rdkafka::admin::NewPartitions::new(topic, total)],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .map_err(|e| e.to_string())?;
        for r in res {
            r.map_err(|(t, e)| format!("{t}: {e}"))?;
        }
        Ok(())
    }
}
