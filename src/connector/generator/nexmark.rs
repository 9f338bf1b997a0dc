//! `connector = 'nexmark'`: Nexmark Person, Auction or Bid rows from the
//! `nexmark` crate (the generator RisingWave uses), with RisingWave's
//! option and column names so published Nexmark SQL for RisingWave runs
//! unchanged.
//!
//! | option | meaning |
//! |---|---|
//! | `nexmark.table.type` | `Person`, `Auction` or `Bid` (any case); required |
//! | `nexmark.event.num` | total events of the whole 1:3:46 mix, as RisingWave counts (a Bid source of 1,000 events yields 920 bids); default unbounded |
//! | `nexmark.split.num` | accepted; one split generates everything |
//! | `nexmark.max.chunk.size` | cap on rows per batch |
//! | `nexmark.min.event.gap.in.ns` | pacing: one event of the mix per gap (0 = flat out) |
//! | `nexmark.events.per.sec` | pacing in events of the mix per second (0 = flat out); also spaces the event times to match |
//! | `nexmark.use.real.time` | `true`: pace at the event-time rate (`nexmark.first.event.rate`, default 10,000/s) |
//! | `nexmark.base.time` | event time of the first event, epoch ms; default 2026-01-01T00:00:00Z (fixed, so runs repeat) |
//! | `nexmark.first.event.rate`, `nexmark.active.people`, `nexmark.in.flight.auctions`, `nexmark.out.of.order.group.size`, `nexmark.avg.{person,auction,bid}.byte.size`, `nexmark.hot.{seller,auction,bidder,channel}.ratio`, `nexmark.num.categories` | the generator's model, as in RisingWave |
//!
//! Without a pacing option, a source with `nexmark.event.num` runs flat
//! out; an unbounded one paces at RisingWave's default 10,000 events/s.
//!
//! Each event seeds its own RNG from its number, so the rows are a pure
//! function of the position: [`seek`](Generator::seek) is
//! `EventGenerator::with_offset`. (`EventGenerator::default()` would repeat
//! event 0 and take the wall clock as its base time: never used.)

use std::collections::BTreeMap;
use std::sync::Arc;

use ::nexmark::EventGenerator;
use ::nexmark::config::NexmarkConfig;
use ::nexmark::event::{Event, EventType};
use datafusion::arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, RecordBatchOptions, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};

use super::{
    COMMON_OPTIONS, DEFAULT_BASE_TIME_MS, Generator, parse_option, parse_rate, unknown_option,
};
use crate::error::{Error, Result};

/// A Nexmark table's column: what it reads from an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    // Bid
    BidAuction,
    BidBidder,
    BidPrice,
    BidChannel,
    BidUrl,
    BidDateTime,
    BidExtra,
    // Person
    PersonId,
    PersonName,
    PersonEmail,
    PersonCreditCard,
    PersonCity,
    PersonState,
    PersonDateTime,
    PersonExtra,
    // Auction
    AuctionId,
    AuctionItemName,
    AuctionDescription,
    AuctionInitialBid,
    AuctionReserve,
    AuctionDateTime,
    AuctionExpires,
    AuctionSeller,
    AuctionCategory,
    AuctionExtra,
}

/// The SQL type of a column, as RisingWave declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SqlType {
    Bigint,
    Varchar,
    Timestamp,
}

impl SqlType {
    fn name(self) -> &'static str {
        match self {
            SqlType::Bigint => "BIGINT",
            SqlType::Varchar => "VARCHAR",
            SqlType::Timestamp => "TIMESTAMP",
        }
    }

    fn accepts(self, t: &DataType) -> bool {
        match self {
            SqlType::Bigint => *t == DataType::Int64,
            SqlType::Varchar => *t == DataType::Utf8,
            SqlType::Timestamp => matches!(t, DataType::Timestamp(TimeUnit::Microsecond, _)),
        }
    }
}

/// RisingWave's columns of each table type.
fn table_columns(table: EventType) -> &'static [(&'static str, Column, SqlType)] {
    use Column::*;
    use SqlType::*;
    match table {
        EventType::Bid => &[
            ("auction", BidAuction, Bigint),
            ("bidder", BidBidder, Bigint),
            ("price", BidPrice, Bigint),
            ("channel", BidChannel, Varchar),
            ("url", BidUrl, Varchar),
            ("date_time", BidDateTime, Timestamp),
            ("extra", BidExtra, Varchar),
        ],
        EventType::Person => &[
            ("id", PersonId, Bigint),
            ("name", PersonName, Varchar),
            ("email_address", PersonEmail, Varchar),
            ("credit_card", PersonCreditCard, Varchar),
            ("city", PersonCity, Varchar),
            ("state", PersonState, Varchar),
            ("date_time", PersonDateTime, Timestamp),
            ("extra", PersonExtra, Varchar),
        ],
        EventType::Auction => &[
            ("id", AuctionId, Bigint),
            ("item_name", AuctionItemName, Varchar),
            ("description", AuctionDescription, Varchar),
            ("initial_bid", AuctionInitialBid, Bigint),
            ("reserve", AuctionReserve, Bigint),
            ("date_time", AuctionDateTime, Timestamp),
            ("expires", AuctionExpires, Timestamp),
            ("seller", AuctionSeller, Bigint),
            ("category", AuctionCategory, Bigint),
            ("extra", AuctionExtra, Varchar),
        ],
    }
}

const OPTIONS: &[&str] = &[
    "nexmark.table.type",
    "nexmark.event.num",
    "nexmark.split.num",
    "nexmark.max.chunk.size",
    "nexmark.min.event.gap.in.ns",
    "nexmark.events.per.sec",
    "nexmark.use.real.time",
    "nexmark.base.time",
    "nexmark.first.event.rate",
    "nexmark.active.people",
    "nexmark.in.flight.auctions",
    "nexmark.out.of.order.group.size",
    "nexmark.avg.person.byte.size",
    "nexmark.avg.auction.byte.size",
    "nexmark.avg.bid.byte.size",
    "nexmark.hot.seller.ratio",
    "nexmark.hot.auction.ratio",
    "nexmark.hot.bidder.ratio",
    "nexmark.hot.channel.ratio",
    "nexmark.num.categories",
];

/// One output column's builder.
enum Builder {
    Int(Int64Builder),
    Str(StringBuilder),
    Ts(TimestampMicrosecondBuilder),
}

pub(super) struct NexmarkGenerator {
    schema: SchemaRef,
    table: EventType,
    columns: Vec<Column>,
    config: NexmarkConfig,
    events: EventGenerator,
    /// Stop before the event whose global offset reaches this.
    event_num: u64,
    max_chunk_size: usize,
    rate: Option<f64>,
}

impl NexmarkGenerator {
    pub(super) fn new(
        options: &BTreeMap<String, String>,
        schema: SchemaRef,
    ) -> Result<NexmarkGenerator> {
        for key in options.keys() {
            if !OPTIONS.contains(&key.as_str()) && !COMMON_OPTIONS.contains(&key.as_str()) {
                return Err(unknown_option("nexmark", key, OPTIONS));
            }
        }
        let get = |k: &str| options.get(k).map(String::as_str);
        let table = match get("nexmark.table.type")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("bid") => EventType::Bid,
            Some("person") => EventType::Person,
            Some("auction") => EventType::Auction,
            Some(other) => {
                return Err(Error::InvalidParameter(format!(
                    "invalid nexmark.table.type '{other}': expected Person, Auction or Bid"
                )));
            }
            None => {
                return Err(Error::InvalidParameter(
                    "connector 'nexmark' needs nexmark.table.type = 'Person', 'Auction' or 'Bid'"
                        .into(),
                ));
            }
        };

        let valid = table_columns(table);
        let valid_list = || {
            valid
                .iter()
                .map(|(n, _, t)| format!("{n} {}", t.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let Some((_, column, sql_type)) = valid.iter().find(|(n, _, _)| n == field.name())
            else {
                return Err(Error::InvalidParameter(format!(
                    "nexmark table type {table:?} has no column \"{}\"; its columns are: {}",
                    field.name(),
                    valid_list()
                )));
            };
            if !sql_type.accepts(field.data_type()) {
                return Err(Error::InvalidParameter(format!(
                    "nexmark column \"{}\" is {}, not {}; the columns of {table:?} are: {}",
                    field.name(),
                    sql_type.name(),
                    field.data_type(),
                    valid_list()
                )));
            }
            columns.push(*column);
        }

        let mut config = NexmarkConfig {
            base_time: DEFAULT_BASE_TIME_MS as u64,
            ..Default::default()
        };
        let positive = |key: &str| -> Result<Option<usize>> {
            match get(key) {
                None => Ok(None),
                Some(v) => {
                    let n: usize = parse_option(key, v)?;
                    if n == 0 {
                        return Err(Error::InvalidParameter(format!(
                            "invalid value for option {key}: \"{v}\" (expected a positive integer)"
                        )));
                    }
                    Ok(Some(n))
                }
            }
        };
        macro_rules! set {
            ($key:literal, $field:ident) => {
                if let Some(v) = positive($key)? {
                    config.$field = v;
                }
            };
        }
        set!("nexmark.active.people", active_people);
        set!("nexmark.in.flight.auctions", in_flight_auctions);
        set!("nexmark.out.of.order.group.size", out_of_order_group_size);
        set!("nexmark.avg.person.byte.size", avg_person_byte_size);
        set!("nexmark.avg.auction.byte.size", avg_auction_byte_size);
        set!("nexmark.avg.bid.byte.size", avg_bid_byte_size);
        set!("nexmark.hot.seller.ratio", hot_seller_ratio);
        set!("nexmark.hot.auction.ratio", hot_auction_ratio);
        set!("nexmark.hot.bidder.ratio", hot_bidder_ratio);
        set!("nexmark.hot.channel.ratio", hot_channel_ratio);
        set!("nexmark.num.categories", num_categories);
        if let Some(r) = positive("nexmark.first.event.rate")? {
            config.first_rate = r;
            config.next_rate = r;
        }
        if let Some(v) = get("nexmark.base.time") {
            config.base_time = parse_option("nexmark.base.time", v)?;
        }
        if let Some(v) = get("nexmark.split.num") {
            let _: std::num::NonZeroU32 = parse_option("nexmark.split.num", v)?;
        }
        let event_num = match get("nexmark.event.num") {
            Some(v) => parse_option("nexmark.event.num", v)?,
            None => u64::MAX,
        };
        let max_chunk_size = positive("nexmark.max.chunk.size")?.unwrap_or(usize::MAX);

        // Pacing, in events of the whole mix per second.
        let gap = get("nexmark.min.event.gap.in.ns");
        let per_sec = get("nexmark.events.per.sec");
        let real_time = match get("nexmark.use.real.time") {
            Some(v) => crate::connector::decode::parse_bool(v).ok_or_else(|| {
                Error::InvalidParameter(format!(
                    "invalid value for option nexmark.use.real.time: \"{v}\""
                ))
            })?,
            None => false,
        };
        let events_per_sec = match (gap, per_sec) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidParameter(
                    "give either nexmark.min.event.gap.in.ns or nexmark.events.per.sec, not both"
                        .into(),
                ));
            }
            (Some(g), None) => {
                let g: u64 = parse_option("nexmark.min.event.gap.in.ns", g)?;
                (g > 0).then(|| 1e9 / g as f64)
            }
            (None, Some(r)) => {
                let r = parse_rate("nexmark.events.per.sec", r)?;
                if let Some(r) = r {
                    // Event times spaced as the events are paced.
                    config.first_rate = (r.round() as usize).max(1);
                    config.next_rate = config.first_rate;
                }
                r
            }
            (None, None) if real_time => Some(config.first_rate as f64),
            (None, None) if event_num == u64::MAX => Some(10_000.0),
            (None, None) => None,
        };
        let share = match table {
            EventType::Person => config.person_proportion,
            EventType::Auction => config.auction_proportion,
            EventType::Bid => config.bid_proportion,
        } as f64
            / (config.person_proportion + config.auction_proportion + config.bid_proportion) as f64;
        let rate = events_per_sec.map(|e| e * share);

        let events = Self::events_at(&config, table, 0);
        Ok(NexmarkGenerator {
            schema,
            table,
            columns,
            config,
            events,
            event_num,
            max_chunk_size,
            rate,
        })
    }

    fn events_at(config: &NexmarkConfig, table: EventType, position: u64) -> EventGenerator {
        EventGenerator::new(config.clone())
            .with_type_filter(table)
            .with_offset(position)
    }

    fn builders(&self, rows: usize) -> Vec<Builder> {
        self.schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Int64 => Builder::Int(Int64Builder::with_capacity(rows)),
                DataType::Utf8 => Builder::Str(StringBuilder::with_capacity(rows, rows * 16)),
                DataType::Timestamp(_, tz) => Builder::Ts(
                    TimestampMicrosecondBuilder::with_capacity(rows).with_timezone_opt(tz.clone()),
                ),
                other => unreachable!("checked in new: {other}"),
            })
            .collect()
    }
}

fn ms_to_us(ms: u64) -> i64 {
    (ms as i64).saturating_mul(1000)
}

/// Appends one event's value for `column`.
fn append(builder: &mut Builder, column: Column, event: &Event) {
    use Column::*;
    match (builder, event) {
        (Builder::Int(b), Event::Bid(e)) => b.append_value(match column {
            BidAuction => e.auction as i64,
            BidBidder => e.bidder as i64,
            _ => e.price as i64,
        }),
        (Builder::Str(b), Event::Bid(e)) => b.append_value(match column {
            BidChannel => &e.channel,
            BidUrl => &e.url,
            _ => &e.extra,
        }),
        (Builder::Ts(b), Event::Bid(e)) => b.append_value(ms_to_us(e.date_time)),
        (Builder::Int(b), Event::Person(e)) => b.append_value(e.id as i64),
        (Builder::Str(b), Event::Person(e)) => b.append_value(match column {
            PersonName => &e.name,
            PersonEmail => &e.email_address,
            PersonCreditCard => &e.credit_card,
            PersonCity => &e.city,
            PersonState => &e.state,
            _ => &e.extra,
        }),
        (Builder::Ts(b), Event::Person(e)) => b.append_value(ms_to_us(e.date_time)),
        (Builder::Int(b), Event::Auction(e)) => b.append_value(match column {
            AuctionId => e.id as i64,
            AuctionInitialBid => e.initial_bid as i64,
            AuctionReserve => e.reserve as i64,
            AuctionSeller => e.seller as i64,
            _ => e.category as i64,
        }),
        (Builder::Str(b), Event::Auction(e)) => b.append_value(match column {
            AuctionItemName => &e.item_name,
            AuctionDescription => &e.description,
            _ => &e.extra,
        }),
        (Builder::Ts(b), Event::Auction(e)) => b.append_value(ms_to_us(match column {
            AuctionExpires => e.expires,
            _ => e.date_time,
        })),
    }
}

impl Generator for NexmarkGenerator {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self, max_rows: usize) -> Option<RecordBatch> {
        let want = max_rows.min(self.max_chunk_size).max(1);
        let mut builders = self.builders(want.min(1 << 16));
        let mut rows = 0;
        while rows < want && self.events.global_offset() < self.event_num {
            let Some(event) = self.events.next() else {
                break;
            };
            for (b, c) in builders.iter_mut().zip(&self.columns) {
                append(b, *c, &event);
            }
            rows += 1;
        }
        if rows == 0 {
            return None;
        }
        let arrays: Vec<ArrayRef> = builders
            .into_iter()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::Int(mut b) => Arc::new(b.finish()),
                    Builder::Str(mut b) => Arc::new(b.finish()),
                    Builder::Ts(mut b) => Arc::new(b.finish()),
                }
            })
            .collect();
        Some(
            RecordBatch::try_new_with_options(
                self.schema.clone(),
                arrays,
                &RecordBatchOptions::new().with_row_count(Some(rows)),
            )
            .expect("builders follow the schema"),
        )
    }

    fn rate(&self) -> Option<f64> {
        self.rate
    }

    fn position(&self) -> u64 {
        self.events.offset()
    }

    fn seek(&mut self, position: u64) {
        self.events = Self::events_at(&self.config, self.table, position);
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Field, Int64Type, Schema, TimestampMicrosecondType};

    use super::*;

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

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn drain(g: &mut dyn Generator, chunk: usize) -> Vec<RecordBatch> {
        std::iter::from_fn(|| g.next_batch(chunk)).collect()
    }

    fn count(batches: &[RecordBatch]) -> usize {
        batches.iter().map(|b| b.num_rows()).sum()
    }

    #[test]
    fn event_num_counts_the_whole_mix() {
        for (table, want) in [("Bid", 920), ("auction", 60), ("PERSON", 20)] {
            let schema = match table {
                "Bid" => bid_schema(),
                _ => Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)])),
            };
            let mut g = super::super::nexmark(
                &options(&[
                    ("connector", "nexmark"),
                    ("nexmark.table.type", table),
                    ("nexmark.event.num", "1000"),
                ]),
                schema,
            )
            .unwrap();
            assert_eq!(g.rate(), None, "bounded: flat out");
            let batches = drain(g.as_mut(), 64);
            assert_eq!(count(&batches), want, "{table}");
            assert_eq!(g.position(), want as u64);
            assert!(g.next_batch(10).is_none());
        }
    }

    #[test]
    fn deterministic_and_seek_equals_continuing() {
        let opts = options(&[("nexmark.table.type", "Bid"), ("nexmark.event.num", "5000")]);
        let mut a = super::super::nexmark(&opts, bid_schema()).unwrap();
        let all = drain(a.as_mut(), 1000);
        let all = datafusion::arrow::compute::concat_batches(&bid_schema(), &all).unwrap();
        let mut b = super::super::nexmark(&opts, bid_schema()).unwrap();
        let again = drain(b.as_mut(), 333);
        let again = datafusion::arrow::compute::concat_batches(&bid_schema(), &again).unwrap();
        assert_eq!(all, again);

        let mut c = super::super::nexmark(&opts, bid_schema()).unwrap();
        c.next_batch(10);
        c.seek(1234);
        assert_eq!(c.position(), 1234);
        let rest = drain(c.as_mut(), 500);
        let rest = datafusion::arrow::compute::concat_batches(&bid_schema(), &rest).unwrap();
        assert_eq!(rest, all.slice(1234, all.num_rows() - 1234));

        // The fixed base time: 2026-01-01T00:00:00Z.
        let ts = all.column(5).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0) / 1_000_000, DEFAULT_BASE_TIME_MS / 1000);
        let auction = all.column(0).as_primitive::<Int64Type>();
        assert!(auction.values().iter().all(|&a| a >= 1000));
    }

    #[test]
    fn declared_columns_are_a_subset_in_any_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "expires",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                true,
            ),
            Field::new("id", DataType::Int64, true),
        ]));
        let mut g = super::super::nexmark(
            &options(&[
                ("nexmark.table.type", "Auction"),
                ("nexmark.event.num", "100"),
                ("nexmark.base.time", "0"),
            ]),
            schema.clone(),
        )
        .unwrap();
        let b = g.next_batch(100).unwrap();
        assert_eq!(b.schema(), schema);
        assert_eq!(b.num_rows(), 6);
        assert_eq!(b.column(1).as_primitive::<Int64Type>().value(0), 1000);
    }

    #[test]
    fn option_and_column_errors() {
        let err = |pairs: &[(&str, &str)], schema: SchemaRef| {
            super::super::nexmark(&options(pairs), schema)
                .err()
                .expect("an error")
                .to_string()
        };
        let e = err(&[], bid_schema());
        assert!(e.contains("nexmark.table.type"), "{e}");
        let e = err(&[("nexmark.table.type", "Bids")], bid_schema());
        assert!(e.contains("Person, Auction or Bid"), "{e}");
        let e = err(
            &[("nexmark.table.type", "Bid"), ("nexmark.eventnum", "1")],
            bid_schema(),
        );
        assert!(
            e.contains("unknown option \"nexmark.eventnum\"") && e.contains("nexmark.event.num"),
            "{e}"
        );
        let e = err(
            &[("nexmark.table.type", "Bid"), ("nexmark.event.num", "ten")],
            bid_schema(),
        );
        assert!(e.contains("nexmark.event.num"), "{e}");
        let wrong = Arc::new(Schema::new(vec![Field::new(
            "seller",
            DataType::Int64,
            true,
        )]));
        let e = err(&[("nexmark.table.type", "Bid")], wrong);
        assert!(
            e.contains("no column \"seller\"") && e.contains("auction BIGINT"),
            "{e}"
        );
        let wrong = Arc::new(Schema::new(vec![Field::new(
            "price",
            DataType::Int32,
            true,
        )]));
        let e = err(&[("nexmark.table.type", "Bid")], wrong);
        assert!(e.contains("\"price\" is BIGINT"), "{e}");
        let e = err(
            &[
                ("nexmark.table.type", "Bid"),
                ("nexmark.hot.auction.ratio", "0"),
            ],
            bid_schema(),
        );
        assert!(e.contains("positive"), "{e}");
    }

    #[test]
    fn pacing_options() {
        let rate = |pairs: &[(&str, &str)]| {
            let mut o = options(pairs);
            o.insert("nexmark.table.type".into(), "Bid".into());
            super::super::nexmark(&o, bid_schema()).unwrap().rate()
        };
        // Unbounded: RisingWave's 10,000 events/s, 46 in 50 of them bids.
        assert_eq!(rate(&[]), Some(9_200.0));
        assert_eq!(rate(&[("nexmark.min.event.gap.in.ns", "0")]), None);
        assert_eq!(
            rate(&[("nexmark.min.event.gap.in.ns", "1000")]),
            Some(920_000.0)
        );
        assert_eq!(rate(&[("nexmark.events.per.sec", "500")]), Some(460.0));
        assert_eq!(rate(&[("nexmark.event.num", "10")]), None);
    }

    #[test]
    fn throughput_print() {
        let opts = options(&[
            ("nexmark.table.type", "Bid"),
            ("nexmark.event.num", "100000"),
        ]);
        let mut g = super::super::nexmark(&opts, bid_schema()).unwrap();
        let start = std::time::Instant::now();
        let n = count(&drain(g.as_mut(), 8192));
        println!(
            "nexmark Bid: {n} rows in {:?} ({:.0} rows/s, debug build)",
            start.elapsed(),
            n as f64 / start.elapsed().as_secs_f64()
        );
    }
}
