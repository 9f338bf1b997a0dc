//! Window assignment for TUMBLE and HOP: each row goes to every window
//! that contains its time, as one output row per window with the window's
//! start in place of the time column (the projection above adds
//! window_end). One operator over the input, never one copy of the input
//! per slide step.
//!
//! ```text
//!   (…, ts) ──▶ for each window [s, s + size) ∋ ts, s = k·slide + offset:
//!               closed (s + size <= watermark)? ─▶ late_events
//!               else (…, s) ──▶ out
//! ```
//!
//! PROPERTIES: the time column (replaced by the window start), slide,
//! size and offset in microseconds (windows aligned to the Unix epoch in
//! UTC plus the offset). STATE: none but the watermark of the time column
//! as of the last barrier: a window whose end it has reached is closed,
//! and a row for it is late — not added, recorded with the window it
//! missed. The output's window-start column carries the watermark
//! `watermark - size + 1` (every window still open starts after it), marked
//! as a window bound so the aggregate above can close its groups.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, TimestampMicrosecondArray, UInt32Array};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef};

use crate::error::Result;
use crate::stream::chunk::{Chunk, Op};
use crate::stream::event_time::micros_array;
use crate::stream::late_events::{LateEvent, LateSink, row_json};
use crate::stream::message::{ColumnWatermark, Watermarks, watermark_of};
use crate::stream::operator::Operator;

pub struct WindowAssignOperator {
    column: usize,
    slide: i64,
    size: i64,
    offset: i64,
    schema: SchemaRef,
    /// Windows ending at or before this are closed.
    watermark: Option<i64>,
    late: Option<LateSink>,
}

/// The starts of the windows holding `t`, oldest first: `size / slide`
/// windows of `size`, every `slide`, aligned to `offset`.
pub fn window_starts(t: i64, slide: i64, size: i64, offset: i64) -> impl Iterator<Item = i64> {
    let last = (t - offset).div_euclid(slide) * slide + offset;
    let n = size / slide;
    (0..n).rev().map(move |k| last - k * slide)
}

impl WindowAssignOperator {
    pub fn new(
        column: usize,
        slide: i64,
        size: i64,
        offset: i64,
        schema: SchemaRef,
        late: Option<LateSink>,
    ) -> WindowAssignOperator {
        WindowAssignOperator {
            column,
            slide,
            size,
            offset,
            schema,
            watermark: None,
            late,
        }
    }
}

impl Operator for WindowAssignOperator {
    fn name(&self) -> &'static str {
        "window_assign"
    }

    fn append_only(&self, input: bool) -> bool {
        input
    }

    fn describe(&self) -> String {
        format!(
            "window_assign (size {} µs, slide {} µs, offset {} µs; rows for closed windows → late_events)",
            self.size, self.slide, self.offset
        )
    }

    fn process(&mut self, chunk: Chunk, out: &mut Vec<Chunk>) -> Result<()> {
        let batch = &chunk.batch;
        let times = micros_array(batch.column(self.column))?;
        let per_row = (self.size / self.slide) as usize;
        let mut indices: Vec<u32> = Vec::with_capacity(batch.num_rows() * per_row);
        let mut starts: Vec<i64> = Vec::with_capacity(batch.num_rows() * per_row);
        let mut ops: Vec<Op> = Vec::with_capacity(batch.num_rows() * per_row);
        for (row, op) in chunk.ops.iter().enumerate() {
            if times.is_null(row) {
                continue; // no window holds a NULL time (the plan filters them too)
            }
            let t = times.value(row);
            // One row to many: update pairs become plain deletes and inserts.
            let op = match op {
                Op::UpdateDelete => Op::Delete,
                Op::UpdateInsert => Op::Insert,
                o => *o,
            };
            for s in window_starts(t, self.slide, self.size, self.offset) {
                if let Some(w) = self.watermark
                    && s.saturating_add(self.size) <= w
                {
                    if op.weight() > 0 {
                        if let Some(sink) = &self.late {
                            sink(LateEvent {
                                event_time: Some(t),
                                watermark: w,
                                window_start: Some(s),
                                window_end: Some(s + self.size),
                                row: row_json(batch, row),
                            });
                        }
                    } else {
                        tracing::debug!(window_start = s, "retraction for a closed window dropped");
                    }
                    continue;
                }
                indices.push(row as u32);
                starts.push(s);
                ops.push(op);
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        let indices = UInt32Array::from(indices);
        let out_type = self.schema.field(self.column).data_type();
        let tz = match out_type {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        let starts: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(starts).with_timezone_opt(tz));
        let starts = cast(&starts, out_type)?;
        let columns = batch
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == self.column {
                    Ok(starts.clone())
                } else {
                    Ok(take(c.as_ref(), &indices, None)?)
                }
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let out_batch = crate::storage::files::conform_columns(columns, &self.schema)?;
        out.push(Chunk::new(out_batch, ops));
        Ok(())
    }

    fn output_watermarks(&self, input: &[Option<ColumnWatermark>]) -> Watermarks {
        let mut w: Watermarks = input.to_vec();
        if w.len() <= self.column {
            w.resize(self.column + 1, None);
        }
        w[self.column] = watermark_of(input, self.column).map(|t| ColumnWatermark {
            micros: t.micros.saturating_sub(self.size).saturating_add(1),
            window: true,
        });
        w
    }

    fn on_watermarks(&mut self, input: &[Option<ColumnWatermark>]) {
        if let Some(t) = watermark_of(input, self.column) {
            self.watermark = Some(self.watermark.map_or(t.micros, |w| w.max(t.micros)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit, TimestampMicrosecondType};
    use std::sync::Mutex;

    const S: i64 = 1_000_000;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]))
    }

    fn chunk(rows: &[(i64, i64)]) -> Chunk {
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    rows.iter().map(|r| r.1),
                )),
            ],
        )
        .unwrap();
        Chunk::uniform(batch, Op::Insert)
    }

    fn text(out: &[Chunk]) -> Vec<(i64, i64)> {
        out.iter()
            .flat_map(|c| {
                let k = c
                    .batch
                    .column(0)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                let s = c.batch.column(1).as_primitive::<TimestampMicrosecondType>();
                (0..c.num_rows())
                    .map(|i| (k.value(i), s.value(i) / S))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn hop_assigns_each_row_to_size_over_slide_windows() {
        let mut op = WindowAssignOperator::new(1, 2 * S, 6 * S, 0, schema(), None);
        let mut out = Vec::new();
        op.process(chunk(&[(1, 7 * S), (2, 0)]), &mut out).unwrap();
        assert_eq!(
            text(&out),
            vec![(1, 2), (1, 4), (1, 6), (2, -4), (2, -2), (2, 0)]
        );
    }

    #[test]
    fn tumble_with_offset_and_negative_times() {
        let mut op = WindowAssignOperator::new(1, 10 * S, 10 * S, 3 * S, schema(), None);
        let mut out = Vec::new();
        op.process(chunk(&[(1, 13 * S), (2, 12 * S), (3, -S)]), &mut out)
            .unwrap();
        assert_eq!(text(&out), vec![(1, 13), (2, 3), (3, -7)]);
    }

    #[test]
    fn rows_for_closed_windows_are_late_and_recorded() {
        let late = Arc::new(Mutex::new(Vec::new()));
        let sink: LateSink = {
            let late = late.clone();
            Arc::new(move |e| late.lock().unwrap().push(e))
        };
        let mut op = WindowAssignOperator::new(1, 5 * S, 10 * S, 0, schema(), Some(sink));
        let wm = [
            None,
            Some(ColumnWatermark {
                micros: 20 * S,
                window: false,
            }),
        ];
        assert_eq!(
            op.output_watermarks(&wm)[1],
            Some(ColumnWatermark {
                micros: 10 * S + 1,
                window: true
            })
        );
        op.on_watermarks(&wm);
        let mut out = Vec::new();
        // 12 s: windows [5, 15) closed, [10, 20) closed (ends at the
        // watermark), none open. 19 s: [10, 20) closed, [15, 25) open.
        op.process(chunk(&[(1, 12 * S), (2, 19 * S)]), &mut out)
            .unwrap();
        assert_eq!(text(&out), vec![(2, 15)]);
        let late = late.lock().unwrap();
        assert_eq!(late.len(), 3);
        assert_eq!(late[0].window_start, Some(5 * S));
        assert_eq!(late[0].event_time, Some(12 * S));
        assert_eq!(late[2].window_end, Some(20 * S));
    }
}
