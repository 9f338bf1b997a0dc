//! Record decoding and generator micro-benchmarks, single thread, rows per
//! CPU-second of this thread.
//!
//! - `RecordDecoder` over 1M Nexmark-bid-like JSON payloads (~244 B each,
//!   as Kafka would hand them over: one payload per push), and the same
//!   bids as CSV;
//! - the `nexmark` (Bid) and `datagen` generators filling Arrow batches.
//!
//! Run: `cargo bench --bench decode` (BENCH_ROWS overrides 1,000,000).
//! Results go in docs/benchmarks.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use streamlake::connector::decode::{Encoding, RecordDecoder};
use streamlake::connector::generator;

/// Counts allocations, to check that decoding allocates nothing per row
/// (builders still grow and each batch allocates its arrays).
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// CPU time of the calling thread (Linux schedstat, ns), or wall time
/// where that is not available.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_else(|| {
            static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            START.get_or_init(Instant::now).elapsed()
        })
}

fn bid_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("auction", DataType::Int64, true),
        Field::new("bidder", DataType::Int64, true),
        Field::new("price", DataType::Int64, true),
        Field::new("channel", DataType::Utf8, true),
        Field::new("url", DataType::Utf8, true),
        Field::new(
            "date_time",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        Field::new("extra", DataType::Utf8, true),
    ]))
}

/// Payloads in one buffer, with their end offsets.
struct Payloads {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Payloads {
    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let p = &self.bytes[start..end];
            start = end;
            p
        })
    }
}

/// Nexmark bids as JSON and CSV payloads, from the nexmark crate.
fn bids(rows: usize) -> (Payloads, Payloads) {
    let config = nexmark_config();
    let events = nexmark::EventGenerator::new(config)
        .with_type_filter(nexmark::event::EventType::Bid)
        .take(rows);
    let mut json = Payloads {
        bytes: Vec::with_capacity(rows * 260),
        ends: Vec::with_capacity(rows),
    };
    let mut csv = Payloads {
        bytes: Vec::with_capacity(rows * 200),
        ends: Vec::with_capacity(rows),
    };
    let mut line = String::new();
    for event in events {
        let nexmark::event::Event::Bid(b) = event else {
            unreachable!("filtered to bids")
        };
        let ts = chrono::DateTime::from_timestamp_millis(b.date_time as i64)
            .unwrap()
            .naive_utc()
            .format("%Y-%m-%d %H:%M:%S%.3f");
        line.clear();
        let _ = write!(
            line,
            r#"{{"auction":{},"bidder":{},"price":{},"channel":"{}","url":"{}","date_time":"{ts}","extra":"{}"}}"#,
            b.auction, b.bidder, b.price, b.channel, b.url, b.extra
        );
        json.bytes.extend_from_slice(line.as_bytes());
        json.ends.push(json.bytes.len());
        line.clear();
        let _ = writeln!(
            line,
            "{},{},{},{},{},{ts},{}",
            b.auction, b.bidder, b.price, b.channel, b.url, b.extra
        );
        csv.bytes.extend_from_slice(line.as_bytes());
        csv.ends.push(csv.bytes.len());
    }
    (json, csv)
}

fn nexmark_config() -> nexmark::config::NexmarkConfig {
    nexmark::config::NexmarkConfig {
        base_time: 1_767_225_600_000,
        ..Default::default()
    }
}

fn decode(name: &str, payloads: &Payloads, encoding: Encoding) {
    let mut decoder = RecordDecoder::new(bid_schema(), encoding).unwrap();
    let rows = payloads.ends.len();
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let start = thread_cpu();
    let mut decoded = 0;
    for p in payloads.iter() {
        decoder.push(p).unwrap();
        if decoder.rows() == 8192 {
            decoded += decoder.finish().num_rows();
        }
    }
    decoded += decoder.finish().num_rows();
    let cpu = thread_cpu() - start;
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations;
    assert_eq!(decoded, rows);
    report(name, rows, payloads.bytes.len() / rows, cpu);
    println!(
        "|   allocations per row | | | | {:.4} |",
        allocations as f64 / rows as f64
    );
}

/// The notes' upper bound, for comparison on the same machine and load:
/// serde_json into a fixed struct of borrowed fields, no Arrow, no checks.
fn reference(payloads: &Payloads) {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Bid<'a> {
        auction: i64,
        bidder: i64,
        price: i64,
        channel: &'a str,
        url: &'a str,
        date_time: &'a str,
        extra: &'a str,
    }
    let rows = payloads.ends.len();
    let start = thread_cpu();
    let mut n = 0i64;
    for p in payloads.iter() {
        let b: Bid<'_> = serde_json::from_slice(p).unwrap();
        n = n.wrapping_add(b.price);
    }
    let cpu = thread_cpu() - start;
    std::hint::black_box(n);
    report(
        "reference: serde_json into a borrowed struct",
        rows,
        payloads.bytes.len() / rows,
        cpu,
    );
}

fn generate(name: &str, mut g: Box<dyn generator::Generator>) {
    let start = thread_cpu();
    let mut rows = 0;
    while let Some(b) = g.next_batch(8192) {
        rows += b.num_rows();
    }
    let cpu = thread_cpu() - start;
    report(name, rows, 0, cpu);
}

fn report(name: &str, rows: usize, bytes_per_row: usize, cpu: Duration) {
    let per_row = if bytes_per_row > 0 {
        format!("{bytes_per_row} B")
    } else {
        "-".into()
    };
    println!(
        "| {name} | {rows} | {per_row} | {:.3} s | {:.2}M rows/CPU-s |",
        cpu.as_secs_f64(),
        rows as f64 / cpu.as_secs_f64() / 1e6
    );
}

fn main() {
    let rows: usize = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let (json, csv) = bids(rows);
    println!("| benchmark | rows | payload | CPU time | rate |");
    println!("|---|---:|---:|---:|---:|");
    reference(&json);
    decode("RecordDecoder JSON (Nexmark bids)", &json, Encoding::Json);
    decode(
        "RecordDecoder CSV (Nexmark bids)",
        &csv,
        Encoding::Csv {
            delimiter: b',',
            without_header: true,
        },
    );

    // Bids only: the mix has 46 bids in every 50 events.
    let events = (rows as u64).div_ceil(46) * 50;
    let options = BTreeMap::from([
        ("nexmark.table.type".to_string(), "Bid".to_string()),
        ("nexmark.event.num".to_string(), events.to_string()),
    ]);
    generate(
        "nexmark generator (Bid)",
        generator::nexmark(&options, bid_schema()).unwrap(),
    );
    let options = BTreeMap::from([
        ("fields.id.kind".to_string(), "sequence".to_string()),
        ("fields.id.start".to_string(), "1".to_string()),
        ("fields.id.end".to_string(), rows.to_string()),
        ("fields.name.length".to_string(), "16".to_string()),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("v", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
    ]));
    generate(
        "datagen (bigint seq, double, varchar(16), timestamp)",
        generator::datagen(&options, schema).unwrap(),
    );
}
