//! `streamlake playground`: an embedded Kafka-compatible broker
//! (librdkafka's mock cluster, in memory, so every run starts clean), a
//! generator producing trades to its `trades` topic — with duplicates,
//! out-of-order event times and some malformed records — and the demo
//! pipeline of sql/playground.sql reading it.
//!
//! The broker's address is printed so that external clients can produce
//! too (`kcat -b <address> -t trades -P`, any Kafka client).

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};

use crate::error::{Error, Result};

/// Trades per second the generator produces.
const RATE: u64 = 20;
const SYMBOLS: &[&str] = &["AAPL", "MSFT", "SAP", "BMW", "NESN"];
const ACCOUNTS: &[&str] = &["A-17", "B-02", "C-99", "D-41", "E-08", "F-23"];
const STATUSES: &[&str] = &["filled", "filled", "filled", "pending", "cancelled"];

/// The running broker; dropping it stops the broker.
pub struct Playground {
    _cluster: MockCluster<'static, DefaultProducerContext>,
    pub bootstrap: String,
}

/// Starts the broker and the trade generator.
pub fn start() -> Result<Playground> {
    let cluster = MockCluster::new(1).map_err(|e| Error::Kafka(e.to_string()))?;
    cluster
        .create_topic("trades", 3, 1)
        .map_err(|e| Error::Kafka(e.to_string()))?;
    let bootstrap = cluster.bootstrap_servers();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "20")
        .create()
        .map_err(|e| Error::Kafka(e.to_string()))?;
    std::thread::Builder::new()
        .name("playground-trades".into())
        .spawn(move || generate(producer))
        .map_err(Error::Io)?;
    Ok(Playground {
        _cluster: cluster,
        bootstrap,
    })
}

/// A small deterministic generator (xorshift), so runs look alike.
fn generate(producer: ThreadedProducer<DefaultProducerContext>) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut n: u64 = 0;
    let mut last: Option<(String, String)> = None;
    loop {
        n += 1;
        let r = next();
        let (key, payload) = if r % 50 == 0 {
            // Malformed: lands in streamlake.dead_letters.
            let bad = [
                "{\"trade_id\": ",
                "not json",
                "{\"amount\": \"lots\"}",
                "[]",
            ];
            (
                "bad".to_string(),
                bad[(r / 50 % bad.len() as u64) as usize].to_string(),
            )
        } else if r % 20 == 1 && last.is_some() {
            // A duplicate delivery of the previous trade.
            last.clone().expect("checked")
        } else {
            let account = ACCOUNTS[(next() % ACCOUNTS.len() as u64) as usize];
            let symbol = SYMBOLS[(next() % SYMBOLS.len() as u64) as usize];
            let status = STATUSES[(next() % STATUSES.len() as u64) as usize];
            let cents = (next() % 100_000) as i64 - 2_000;
            // Up to 30 s late: event times arrive out of order.
            let ts = chrono::Utc::now() - chrono::Duration::milliseconds((next() % 30_000) as i64);
            let payload = format!(
                r#"{{"trade_id": "t-{n}", "account": "{account}", "symbol": "{symbol}", "amount": {}.{:02}, "status": "{status}", "ts": "{}"}}"#,
                cents / 100,
                (cents % 100).abs(),
                ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            );
            let t = (account.to_string(), payload);
            last = Some(t.clone());
            t
        };
        let record: BaseRecord<'_, str, str> = BaseRecord::to("trades")
            .key(key.as_str())
            .payload(payload.as_str());
        if let Err((e, _)) = producer.send(record) {
            tracing::warn!(error = %e, "playground generator could not produce");
        }
        std::thread::sleep(Duration::from_millis(1000 / RATE));
    }
}
