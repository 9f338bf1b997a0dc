//! Session windows: `SESSION(t, ts, gap, keys…)` maintained per key.
//!
//! ```text
//!   row (key, ts) ──▶ key's open sessions: merge every session whose
//!                     [start, last + gap) overlaps [ts, ts + gap) ──▶ dirty
//!   barrier ──▶ for each dirty session: its rows as last emitted (old
//!               bounds) out, its rows now (new bounds) in; sessions the
//!               watermark closed (last + gap <= watermark) are released
//! ```
//!
//! PROPERTIES: key columns, time column, gap (microseconds). STATE: per
//! key, its open sessions by start, each with its member rows (Arrow row
//! format, counted) and the rows it last emitted; per key, the end of the
//! last closed session until the watermark makes it irrelevant. Output
//! is held until the barrier, so a session that grows by many rows in an
//! epoch is re-emitted once, not once per row.
//!
//! A row is late when its own window `[ts, ts + gap)` has closed or it
//! would join a session already closed (`ts` before that session's end):
//! it is not added and is recorded in streamlake.late_events. The output's
//! window_end column carries the watermark + 1µs (every open session ends
//! after the watermark), marked as a window bound, so an aggregate grouped
//! by window_end closes with the session.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, Rows, SortField};

use crate::error::Result;
use crate::stream::chunk::{Chunk, Op};
use crate::stream::event_time::micros_array;
use crate::stream::late_events::{LateEvent, LateSink, row_json};
use crate::stream::message::{ColumnWatermark, EpochInfo, Watermarks, watermark_of};
use crate::stream::operator::{Operator, StateSummary};
use crate::stream::state::{Meter, SlotId, StateTable, StateValue};

/// Member rows: (time, encoded row) → count.
type Members = BTreeMap<(i64, Box<[u8]>), i64>;

#[derive(Default)]
struct Session {
    last: i64,
    members: Members,
    /// What was emitted for this session, and under which bounds.
    emitted: Members,
    emitted_bounds: Option<(i64, i64)>,
    dirty: bool,
}

#[derive(Default)]
struct KeyState {
    /// Open sessions by start.
    sessions: BTreeMap<i64, Session>,
    /// End of the latest closed session (rows before it are late).
    closed_until: Option<i64>,
}

/// Per-entry overhead of a B-tree map entry (node headers, slack).
const BTREE_ENTRY_OVERHEAD: usize = 16;

fn members_bytes(m: &Members) -> usize {
    m.keys()
        .map(|(_, r)| {
            r.len() + std::mem::size_of::<((i64, Box<[u8]>), i64)>() + BTREE_ENTRY_OVERHEAD
        })
        .sum()
}

impl StateValue for KeyState {
    fn heap_bytes(&self) -> usize {
        self.sessions
            .values()
            .map(|s| {
                std::mem::size_of::<(i64, Session)>()
                    + BTREE_ENTRY_OVERHEAD
                    + members_bytes(&s.members)
                    + members_bytes(&s.emitted)
            })
            .sum()
    }
}

impl KeyState {
    /// When the watermark next releases something of this key: the
    /// earliest session end, or when `closed_until` stops mattering.
    fn next_release(&self, gap: i64) -> Option<i64> {
        let sessions = self.sessions.values().map(|s| s.last.saturating_add(gap));
        let closed = self.closed_until.map(|c| c.saturating_add(gap));
        sessions.chain(closed).min()
    }
}

pub struct SessionWindowOperator {
    keys: Vec<usize>,
    time: usize,
    gap: i64,
    schema: SchemaRef,
    /// Encodes key columns (the state's index).
    key_converter: RowConverter,
    /// Encodes whole input rows (the members).
    row_converter: RowConverter,
    state: StateTable<KeyState>,
    /// Keys with a dirty session.
    dirty: Vec<SlotId>,
    /// When each key may next release state (see
    /// [`KeyState::next_release`]); entries may be stale (the key changed
    /// since): a release checks the key and indexes it again.
    releases: BTreeMap<i64, Vec<SlotId>>,
    /// Rows emitted for sessions that were merged or split: retracted at
    /// the barrier.
    retract: Vec<(Box<[u8]>, i64, i64, i64)>,
    watermark: Option<i64>,
    late: Option<LateSink>,
}

impl SessionWindowOperator {
    pub fn try_new(
        keys: Vec<usize>,
        time: usize,
        gap: i64,
        input: &SchemaRef,
        schema: SchemaRef,
        late: Option<LateSink>,
        meter: &Meter,
    ) -> Result<SessionWindowOperator> {
        let key_fields: Vec<SortField> = if keys.is_empty() {
            // One partition: encode a constant column.
            vec![SortField::new(DataType::Boolean)]
        } else {
            keys.iter()
                .map(|&i| SortField::new(input.field(i).data_type().clone()))
                .collect()
        };
        Ok(SessionWindowOperator {
            keys,
            time,
            gap,
            schema,
            key_converter: RowConverter::new(key_fields)?,
            row_converter: RowConverter::new(
                input
                    .fields()
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )?,
            state: StateTable::new("sessions", meter),
            dirty: Vec::new(),
            releases: BTreeMap::new(),
            retract: Vec::new(),
            watermark: None,
            late,
        })
    }

    fn encode_keys(&self, batch: &datafusion::arrow::array::RecordBatch) -> Result<Rows> {
        let cols: Vec<ArrayRef> = if self.keys.is_empty() {
            vec![Arc::new(datafusion::arrow::array::BooleanArray::from(
                vec![true; batch.num_rows()],
            ))]
        } else {
            self.keys.iter().map(|&i| batch.column(i).clone()).collect()
        };
        Ok(self.key_converter.convert_columns(&cols)?)
    }

    /// Re-forms the sessions of `members` (sorted by time): consecutive
    /// rows less than `gap` apart share one.
    fn split(&self, members: Members) -> Vec<(i64, Session)> {
        let mut out: Vec<(i64, Session)> = Vec::new();
        for ((t, row), n) in members {
            match out.last_mut() {
                Some((_, s)) if t < s.last + self.gap => {
                    s.last = s.last.max(t);
                    s.members.insert((t, row), n);
                }
                _ => {
                    let mut s = Session {
                        last: t,
                        dirty: true,
                        ..Default::default()
                    };
                    s.members.insert((t, row), n);
                    out.push((t, s));
                }
            }
        }
        out
    }

    /// Applies one row to its key's sessions.
    fn apply(&mut self, key: &[u8], t: i64, row: Box<[u8]>, weight: i64) {
        let gap = self.gap;
        let (slot, _) = self.state.find_or_insert_with(key, KeyState::default);
        let state = self.state.value_mut(slot);
        let mut was_dirty = state.sessions.values().any(|s| s.dirty);
        // Sessions overlapping [t, t + gap): start < t + gap and last + gap > t.
        let touching: Vec<i64> = state
            .sessions
            .range(..t.saturating_add(gap))
            .filter(|(_, s)| s.last.saturating_add(gap) > t)
            .map(|(&start, _)| start)
            .collect();
        // Fast path: an insert inside one session that keeps its bounds.
        if weight > 0
            && let [start] = touching.as_slice()
            && *start <= t
        {
            let s = state.sessions.get_mut(start).expect("found");
            if t <= s.last {
                *s.members.entry((t, row)).or_insert(0) += weight;
                s.dirty = true;
                if !was_dirty {
                    self.dirty.push(slot);
                }
                return;
            }
        }
        let mut members = Members::new();
        for start in &touching {
            let s = state.sessions.remove(start).expect("found");
            if let Some((ws, we)) = s.emitted_bounds {
                for ((_, r), n) in s.emitted {
                    self.retract.push((r, ws, we, n));
                }
            }
            was_dirty |= s.dirty;
            for (m, n) in s.members {
                *members.entry(m).or_insert(0) += n;
            }
        }
        let c = members.entry((t, row.clone())).or_insert(0);
        *c += weight;
        if *c <= 0 {
            members.remove(&(t, row));
        }
        let state_sessions = self.split(members);
        let state = self.state.value_mut(slot);
        for (start, s) in state_sessions {
            state.sessions.insert(start, s);
        }
        if !was_dirty {
            self.dirty.push(slot);
        }
    }

    /// Output rows for encoded members under bounds, with ops.
    fn decode(&self, rows: &[(&[u8], i64, i64, Op)]) -> Result<Option<Chunk>> {
        if rows.is_empty() {
            return Ok(None);
        }
        let parser = self.row_converter.parser();
        let mut columns = self
            .row_converter
            .convert_rows(rows.iter().map(|(r, ..)| parser.parse(r)))?;
        let n_in = columns.len();
        for (k, field) in [(0usize, n_in), (1, n_in + 1)] {
            let values: Vec<i64> = rows
                .iter()
                .map(|r| if k == 0 { r.1 } else { r.2 })
                .collect();
            let t = self.schema.field(field).data_type();
            let tz = match t {
                DataType::Timestamp(_, tz) => tz.clone(),
                _ => None,
            };
            let a: ArrayRef =
                Arc::new(TimestampMicrosecondArray::from(values).with_timezone_opt(tz));
            columns.push(cast(&a, t)?);
        }
        let batch = crate::storage::files::conform_columns(columns, &self.schema)?;
        Ok(Some(Chunk::new(batch, rows.iter().map(|r| r.3).collect())))
    }
}

impl Operator for SessionWindowOperator {
    fn name(&self) -> &'static str {
        "session_window"
    }

    fn describe(&self) -> String {
        format!(
            "session_window ({} key columns, gap {} µs; sessions closed by the watermark are released)",
            self.keys.len(),
            self.gap
        )
    }

    fn process(&mut self, chunk: Chunk, _out: &mut Vec<Chunk>) -> Result<()> {
        let batch = &chunk.batch;
        let times = micros_array(batch.column(self.time))?;
        let keys = self.encode_keys(batch)?;
        let rows = self.row_converter.convert_columns(batch.columns())?;
        for (i, op) in chunk.ops.iter().enumerate() {
            if times.is_null(i) {
                continue;
            }
            let t = times.value(i);
            let key = keys.row(i);
            if let Some(w) = self.watermark {
                let closed_until = self.state.get(key.as_ref()).and_then(|s| s.closed_until);
                let late = t.saturating_add(self.gap) <= w || closed_until.is_some_and(|c| t < c);
                if late {
                    if op.weight() > 0
                        && let Some(sink) = &self.late
                    {
                        sink(LateEvent {
                            event_time: Some(t),
                            watermark: w,
                            window_start: Some(t),
                            window_end: Some(t.saturating_add(self.gap)),
                            row: row_json(batch, i),
                        });
                    }
                    continue;
                }
            }
            self.apply(
                key.as_ref(),
                t,
                Box::from(rows.row(i).as_ref()),
                op.weight(),
            );
        }
        Ok(())
    }

    fn output_watermarks(&self, input: &[Option<ColumnWatermark>]) -> Watermarks {
        let n = self.schema.fields().len();
        let mut w: Watermarks = vec![None; n];
        // Only window_end: rows of an open session are re-emitted with
        // their old times at any barrier, so the time column promises
        // nothing downstream.
        w[n - 1] = watermark_of(input, self.time).map(|t| ColumnWatermark {
            micros: t.micros.saturating_add(1),
            window: true,
        });
        w
    }

    fn on_watermarks(&mut self, input: &[Option<ColumnWatermark>]) {
        if let Some(t) = watermark_of(input, self.time) {
            self.watermark = Some(self.watermark.map_or(t.micros, |w| w.max(t.micros)));
        }
    }

    fn state(&self) -> Vec<StateSummary> {
        vec![self.state.summary()]
    }

    fn on_barrier(&mut self, epoch: EpochInfo, out: &mut Vec<Chunk>) -> Result<()> {
        let retract = std::mem::take(&mut self.retract);
        let mut rows: Vec<(Box<[u8]>, i64, i64, Op)> = Vec::new();
        for (r, s, e, n) in retract {
            for _ in 0..n.max(0) {
                rows.push((r.clone(), s, e, Op::Delete));
            }
        }
        let dirty = std::mem::take(&mut self.dirty);
        for &slot in &dirty {
            let state = self.state.value_mut(slot);
            for (&start, s) in state.sessions.iter_mut() {
                if !s.dirty {
                    continue;
                }
                s.dirty = false;
                let bounds = (start, s.last.saturating_add(self.gap));
                if let Some((ws, we)) = s.emitted_bounds {
                    for ((_, r), n) in &s.emitted {
                        for _ in 0..*n {
                            rows.push((r.clone(), ws, we, Op::Delete));
                        }
                    }
                }
                for ((_, r), n) in &s.members {
                    for _ in 0..*n {
                        rows.push((r.clone(), bounds.0, bounds.1, Op::Insert));
                    }
                }
                s.emitted = s.members.clone();
                s.emitted_bounds = Some(bounds);
            }
        }
        // A row deleted and inserted under the same bounds cancels out.
        let mut net: BTreeMap<(&[u8], i64, i64), i64> = BTreeMap::new();
        for (r, s, e, op) in &rows {
            *net.entry((r.as_ref(), *s, *e)).or_insert(0) += op.weight();
        }
        let mut list: Vec<(&[u8], i64, i64, Op)> = Vec::new();
        for ((r, s, e), n) in &net {
            let op = if *n > 0 { Op::Insert } else { Op::Delete };
            for _ in 0..n.unsigned_abs() {
                list.push((r, *s, *e, op));
            }
        }
        // Deletes first, as a changelog reads best.
        list.sort_by_key(|r| r.3 != Op::Delete);
        if let Some(c) = self.decode(&list)? {
            out.push(c);
        }
        let gap = self.gap;
        // Keys that changed may release earlier than they were indexed
        // for (a new or shrunk session).
        for slot in dirty {
            let state = self.state.value(slot);
            if let Some(t) = state.next_release(gap) {
                self.releases.entry(t).or_default().push(slot);
            }
        }
        // Release what the watermark closed, visiting only the keys whose
        // indexed release time it passed.
        if let Some(w) = self.watermark {
            while let Some(entry) = self.releases.first_entry() {
                if *entry.key() > w {
                    break;
                }
                let mut slots = entry.remove();
                slots.sort_unstable();
                slots.dedup();
                for slot in slots {
                    if !self.state.is_live(slot) {
                        continue;
                    }
                    let st = self.state.value_mut(slot);
                    let closed: Vec<i64> = st
                        .sessions
                        .iter()
                        .filter(|(_, s)| s.last.saturating_add(gap) <= w)
                        .map(|(&k, _)| k)
                        .collect();
                    for k in closed {
                        let s = st.sessions.remove(&k).expect("found");
                        let end = s.last.saturating_add(gap);
                        st.closed_until = Some(st.closed_until.map_or(end, |c| c.max(end)));
                    }
                    // A row before the closed end would have its own window
                    // closed too once the watermark is a gap past it.
                    if st.closed_until.is_some_and(|c| c.saturating_add(gap) <= w) {
                        st.closed_until = None;
                    }
                    match st.next_release(gap) {
                        None => {
                            self.state.remove(slot);
                        }
                        Some(t) => self.releases.entry(t).or_default().push(slot),
                    }
                }
            }
        }
        self.state.settle(epoch.now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::ops::testing::{chunk, lines};
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};

    fn ts() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    }

    fn input() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("t", ts(), true),
        ]))
    }

    fn op(meter: &Meter) -> SessionWindowOperator {
        let out = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("t", ts(), true),
            Field::new("window_start", ts(), false),
            Field::new("window_end", ts(), false),
        ]));
        // Sessions per k with a 10-second gap.
        SessionWindowOperator::try_new(vec![0], 1, 10_000_000, &input(), out, None, meter).unwrap()
    }

    fn step(op: &mut SessionWindowOperator, text: &str, watermark: Option<i64>) -> Vec<String> {
        let mut out = Vec::new();
        op.process(chunk(&input(), text), &mut out).unwrap();
        if let Some(w) = watermark {
            op.on_watermarks(&[
                None,
                Some(ColumnWatermark {
                    micros: w,
                    window: false,
                }),
            ]);
        }
        op.on_barrier(EpochInfo { epoch: 1, now: 0 }, &mut out)
            .unwrap();
        lines(&out)
    }

    const A: &str = "1970-01-01T00:00:00";
    const B: &str = "1970-01-01T00:00:15";
    const BRIDGE: &str = "1970-01-01T00:00:08";

    #[test]
    fn a_bridging_row_merges_two_sessions_and_closed_ones_are_released() {
        let meter = Meter::root();
        let mut op = op(&meter);
        assert_eq!(
            step(&mut op, &format!("+ 1 {A}\n+ 1 {B}\n+ 2 {A}"), None),
            [
                "+ 1 1970-01-01T00:00:00 1970-01-01T00:00:00 1970-01-01T00:00:10",
                "+ 1 1970-01-01T00:00:15 1970-01-01T00:00:15 1970-01-01T00:00:25",
                "+ 2 1970-01-01T00:00:00 1970-01-01T00:00:00 1970-01-01T00:00:10",
            ]
        );
        // 8 s is within 10 s of both: one session [0, 25).
        assert_eq!(
            step(&mut op, &format!("+ 1 {BRIDGE}"), None),
            [
                "+ 1 1970-01-01T00:00:00 1970-01-01T00:00:00 1970-01-01T00:00:25",
                "+ 1 1970-01-01T00:00:08 1970-01-01T00:00:00 1970-01-01T00:00:25",
                "+ 1 1970-01-01T00:00:15 1970-01-01T00:00:00 1970-01-01T00:00:25",
                "- 1 1970-01-01T00:00:00 1970-01-01T00:00:00 1970-01-01T00:00:10",
                "- 1 1970-01-01T00:00:15 1970-01-01T00:00:15 1970-01-01T00:00:25",
            ]
        );
        // Deleting the bridge splits it again.
        assert_eq!(step(&mut op, &format!("- 1 {BRIDGE}"), None).len(), 5);
        // The watermark passes key 2's session end (10 s): released; key 1's
        // first session ends at 10 s too, its second at 25 s.
        assert!(step(&mut op, "", Some(10_000_000)).is_empty());
        assert_eq!(op.state()[0].keys, 2, "closed_until kept for late rows");
        assert!(step(&mut op, "", Some(40_000_000)).is_empty());
        assert_eq!(op.state()[0].keys, 0);
        assert_eq!(meter.bytes(), 0);
    }
}
