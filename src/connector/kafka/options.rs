//! The `WITH (…)` options of a Kafka source or connector table: validated
//! at CREATE (an unknown option is refused with the valid ones listed) and
//! turned into librdkafka settings.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;

use crate::error::{Error, Result};

/// What to do with a record that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Into `streamlake.dead_letters` (the default).
    DeadLetter,
    /// Dropped, counted in the log.
    Skip,
    /// The reader stops; source_partitions shows the error.
    Fail,
}

/// Where a new source starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupMode {
    Earliest,
    Latest,
    /// The first record at or after this time (ms since the Unix epoch).
    Timestamp(i64),
}

/// Options every Kafka source understands (besides `properties.*`).
const KNOWN: &[&str] = &[
    "connector",
    "topic",
    "properties.bootstrap.server",
    "scan.startup.mode",
    "scan.startup.timestamp.millis",
    "watermark.idle_timeout",
    "on_error",
    "dlq.topic",
];

#[derive(Debug, Clone)]
pub struct KafkaOptions {
    pub topic: String,
    pub bootstrap: String,
    pub startup: StartupMode,
    pub on_error: OnError,
    pub dlq_topic: Option<String>,
    /// `watermark.idle_timeout`: how long a caught-up partition may be
    /// quiet before it stops holding the watermark back.
    pub idle_timeout: std::time::Duration,
    /// `properties.*` other than the bootstrap servers, passed through.
    pub properties: BTreeMap<String, String>,
}

impl KafkaOptions {
    pub fn parse(options: &BTreeMap<String, String>) -> Result<KafkaOptions> {
        let mut properties = BTreeMap::new();
        for (k, v) in options {
            if let Some(p) = k.strip_prefix("properties.") {
                if p != "bootstrap.server" && p != "bootstrap.servers" {
                    properties.insert(p.to_string(), v.clone());
                }
                continue;
            }
            let k = k.replace("timestamp_millis", "timestamp.millis");
            if !KNOWN.contains(&k.as_str()) {
                return Err(Error::InvalidParameter(format!(
                    "unknown option \"{k}\" for connector 'kafka'; valid options: {}, properties.<librdkafka setting>",
                    KNOWN.join(", ")
                )));
            }
        }
        let get = |k: &str| options.get(k).map(|s| s.trim().to_string());
        let topic = get("topic")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::InvalidParameter("option topic is required".into()))?;
        let bootstrap = get("properties.bootstrap.server")
            .or_else(|| get("properties.bootstrap.servers"))
            .ok_or_else(|| {
                Error::InvalidParameter("option properties.bootstrap.server is required".into())
            })?;
        let millis =
            get("scan.startup.timestamp.millis").or_else(|| get("scan.startup.timestamp_millis"));
        let startup = match get("scan.startup.mode")
            .as_deref()
            .map(str::to_lowercase)
            .as_deref()
        {
            None | Some("earliest") => StartupMode::Earliest,
            Some("latest") => StartupMode::Latest,
            Some("timestamp") => {
                let ms = millis.ok_or_else(|| {
                    Error::InvalidParameter(
                        "scan.startup.mode = 'timestamp' needs scan.startup.timestamp.millis"
                            .into(),
                    )
                })?;
                StartupMode::Timestamp(ms.parse().map_err(|_| {
                    Error::InvalidParameter(format!(
                        "scan.startup.timestamp.millis: \"{ms}\" is not a number of milliseconds"
                    ))
                })?)
            }
            Some(other) => {
                return Err(Error::InvalidParameter(format!(
                    "scan.startup.mode \"{other}\" is not one of earliest, latest, timestamp"
                )));
            }
        };
        let on_error = match get("on_error").as_deref().map(str::to_lowercase).as_deref() {
            None | Some("dead_letter") => OnError::DeadLetter,
            Some("skip") => OnError::Skip,
            Some("fail") => OnError::Fail,
            Some(other) => {
                return Err(Error::InvalidParameter(format!(
                    "on_error \"{other}\" is not one of dead_letter, skip, fail"
                )));
            }
        };
        Ok(KafkaOptions {
            topic,
            bootstrap,
            startup,
            on_error,
            dlq_topic: get("dlq.topic").filter(|t| !t.is_empty()),
            idle_timeout: crate::connector::watermark::idle_timeout(options)?,
            properties,
        })
    }

    /// Consumer settings: offsets are streamlake's (assign, no auto
    /// commit); the group id names the reader for Kafka's lag tools.
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("isolation.level", "read_committed")
            .set("allow.auto.create.topics", "false")
            // A position retention deleted: start at what is left (logged
            // by the reader as an error on the partition).
            .set("auto.offset.reset", "earliest")
            // Backpressure: a pipeline slower than the producer leaves
            // records in the broker, not in this process.
            .set("queued.max.messages.kbytes", "16384")
            // With the queue full, librdkafka postpones the next fetch by
            // this much (default 1 s). The reader drains 16 MiB in about
            // a tenth of that, so a consumer behind idled most of every
            // second: ~10x fewer records/s than it could decode.
            .set("fetch.queue.backoff.ms", "20")
            .set("fetch.wait.max.ms", "200")
            .set("socket.connection.setup.timeout.ms", "5000")
            .set("reconnect.backoff.max.ms", "2000")
            .set("topic.metadata.refresh.interval.ms", "5000");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// Producer settings for the dead-letter topic.
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("message.timeout.ms", "30000");
        for (k, v) in &self.properties {
            // Consumer-only settings would make the producer refuse to start.
            if !k.starts_with("isolation.") && !k.starts_with("group.") {
                c.set(k, v);
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unknown_options_list_the_valid_ones() {
        let e = KafkaOptions::parse(&opts(&[
            ("connector", "kafka"),
            ("topic", "t"),
            ("properties.bootstrap.server", "x:1"),
            ("scan.startup.mod", "earliest"),
        ]))
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("scan.startup.mod") && text.contains("scan.startup.mode"),
            "{text}"
        );
    }

    #[test]
    fn startup_modes_and_passthrough() {
        let o = KafkaOptions::parse(&opts(&[
            ("connector", "kafka"),
            ("topic", "t"),
            ("properties.bootstrap.server", "x:1"),
            ("properties.security.protocol", "SASL_SSL"),
            ("scan.startup.mode", "timestamp"),
            ("scan.startup.timestamp_millis", "1767225600000"),
        ]))
        .unwrap();
        assert_eq!(o.startup, StartupMode::Timestamp(1767225600000));
        assert_eq!(o.properties.get("security.protocol").unwrap(), "SASL_SSL");
        assert!(
            KafkaOptions::parse(&opts(&[
                ("topic", "t"),
                ("properties.bootstrap.server", "x:1"),
                ("scan.startup.mode", "timestamp")
            ]))
            .is_err()
        );
    }
}
