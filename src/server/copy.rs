//! COPY over the wire: `COPY t FROM STDIN` streams into a table append,
//! `COPY t|(query) TO STDOUT` streams query results out.
//!
//! COPY FROM runs as a pipeline so a bulk load of any size keeps memory flat:
//!
//! ```text
//! CopyData ─▶ CopyDecoder (4 MiB of lines → one batch) ─▶ bounded channel ─▶ LakeTable::append
//!                                                                            (task; commits on CopyDone)
//! ```
//!
//! A decode error or CopyFail sends an error down the channel, so the append
//! fails and commits nothing: a COPY is all or nothing. The stream ends
//! cleanly only on an explicit end-of-data message sent at CopyDone; a
//! channel that closes without one (the client went away mid-COPY and the
//! connection's state was dropped) is an error too, never a commit of the
//! rows received so far.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::{CopyResponse, Response, Tag};
use pgwire::api::{ClientInfo, PgWireConnectionState};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::catalog::Lake;
use crate::error::{Error, Result};
use crate::server::errors::to_pg;
use crate::sql::copy_format::{self, CopyDecoder, CopyFormat};
use crate::sql::ddl::{ident_name, table_name};

/// What travels from the connection to the appending task.
enum Piece {
    Batch(RecordBatch),
    Fail(DataFusionError),
    /// CopyDone: the data is complete and may be committed.
    End,
}

type BatchSender = mpsc::Sender<Piece>;

/// A COPY FROM STDIN in progress on one connection.
struct CopyIn {
    decoder: CopyDecoder,
    /// Table schema and, per table column, the position in the input (if any).
    table_schema: SchemaRef,
    positions: Vec<Option<usize>>,
    tx: Option<BatchSender>,
    append: JoinHandle<Result<u64>>,
    failed: Option<Error>,
}

impl CopyIn {
    /// Widens a batch of the copied columns to the table's columns.
    fn widen(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let columns: Vec<ArrayRef> = self
            .positions
            .iter()
            .zip(self.table_schema.fields())
            .map(|(pos, field)| match pos {
                Some(i) => batch.column(*i).clone(),
                None => new_null_array(field.data_type(), n),
            })
            .collect();
        Ok(RecordBatch::try_new(self.table_schema.clone(), columns)?)
    }

    async fn send(&mut self, batch: RecordBatch) -> Result<()> {
        let batch = self.widen(batch)?;
        if let Some(tx) = &self.tx
            && tx.send(Piece::Batch(batch)).await.is_err()
        {
            return Err(Error::Internal("COPY writer stopped early".into()));
        }
        Ok(())
    }

    async fn fail(&mut self, err: Error) {
        if let Some(tx) = self.tx.take() {
            let _ = tx
                .send(Piece::Fail(DataFusionError::Execution(format!(
                    "COPY aborted: {err}"
                ))))
                .await;
        }
        self.failed.get_or_insert(err);
    }
}

/// The per-connection slot holding a COPY in progress.
#[derive(Default)]
struct CopySlot(Mutex<Option<CopyIn>>);

fn format_of(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<CopyFormat> {
    let mut format = CopyFormat::text();
    let mut delimiter = None;
    let mut null = None;
    let mut header = false;
    let mut quote = None;
    for o in options {
        match o {
            CopyOption::Format(f) => {
                format = match f.value.to_lowercase().as_str() {
                    "text" => CopyFormat::text(),
                    "csv" => CopyFormat::csv(),
                    "binary" => CopyFormat::Binary,
                    other => {
                        return Err(Error::InvalidParameter(format!(
                            "COPY format \"{other}\" not recognized"
                        )));
                    }
                }
            }
            CopyOption::Delimiter(c) => delimiter = Some(*c),
            CopyOption::Null(s) => null = Some(s.clone()),
            CopyOption::Header(h) => header = *h,
            CopyOption::Quote(c) => quote = Some(*c),
            other => {
                return Err(Error::FeatureNotSupported(format!(
                    "COPY option {other} is not supported"
                )));
            }
        }
    }
    for o in legacy {
        match o {
            CopyLegacyOption::Binary => format = CopyFormat::Binary,
            CopyLegacyOption::Csv(csv_opts) => {
                format = CopyFormat::csv();
                for c in csv_opts {
                    match c {
                        CopyLegacyCsvOption::Header => header = true,
                        CopyLegacyCsvOption::Quote(q) => quote = Some(*q),
                        other => {
                            return Err(Error::FeatureNotSupported(format!(
                                "COPY option {other} is not supported"
                            )));
                        }
                    }
                }
            }
            CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
            CopyLegacyOption::Null(s) => null = Some(s.clone()),
            CopyLegacyOption::Header => header = true,
            other => {
                return Err(Error::FeatureNotSupported(format!(
                    "COPY option {other} is not supported"
                )));
            }
        }
    }
    let one_byte = |c: char| -> Result<u8> {
        if c.is_ascii() {
            Ok(c as u8)
        } else {
            Err(Error::InvalidParameter(
                "COPY delimiter and quote must be a single one-byte character".into(),
            ))
        }
    };
    Ok(match format {
        CopyFormat::Text {
            delimiter: d,
            null: n,
        } => {
            if header {
                return Err(Error::FeatureNotSupported(
                    "COPY HEADER is available only in CSV mode".into(),
                ));
            }
            CopyFormat::Text {
                delimiter: delimiter.map(one_byte).transpose()?.unwrap_or(d),
                null: null.unwrap_or(n),
            }
        }
        CopyFormat::Csv {
            delimiter: d,
            null: n,
            quote: q,
            ..
        } => CopyFormat::Csv {
            delimiter: delimiter.map(one_byte).transpose()?.unwrap_or(d),
            null: null.unwrap_or(n),
            quote: quote.map(one_byte).transpose()?.unwrap_or(q),
            header,
        },
        CopyFormat::Binary => CopyFormat::Binary,
    })
}

/// Starts a COPY statement.
pub async fn start(
    lake: &Arc<Lake>,
    statement: &Statement,
    ctx: &SessionContext,
    client: &mut (dyn ClientInfo + Send + Sync),
) -> Result<Response> {
    let Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    } = statement
    else {
        return Err(Error::Internal("not a COPY".into()));
    };
    let format = format_of(options, legacy_options)?;
    match (to, target) {
        (false, CopyTarget::Stdin) => copy_in(lake, source, format, client).await,
        (true, CopyTarget::Stdout) => {
            // timestamptz prints in the session's TimeZone, as in query results.
            let zone = datafusion_postgres::client::get_timezone(client)
                .and_then(|tz| tz.parse::<datafusion::arrow::array::timezone::Tz>().ok());
            copy_out(source, format, ctx, zone).await
        }
        _ => Err(Error::FeatureNotSupported(
            "COPY to or from a server file or program is not supported; use STDIN/STDOUT".into(),
        )),
    }
}

async fn copy_in(
    lake: &Arc<Lake>,
    source: &CopySource,
    format: CopyFormat,
    client: &mut (dyn ClientInfo + Send + Sync),
) -> Result<Response> {
    let CopySource::Table {
        table_name: name,
        columns,
    } = source
    else {
        return Err(Error::Syntax("COPY FROM needs a table".into()));
    };
    let (schema_name, name) = table_name(name)?;
    let table = match lake.table(&name) {
        Some(t) if schema_name == "public" => t,
        _ => return Err(Error::UndefinedTable(name)),
    };
    let table_schema = datafusion::datasource::TableProvider::schema(&table);
    let names: Vec<String> = if columns.is_empty() {
        table_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    } else {
        columns.iter().map(ident_name).collect()
    };
    let mut input_fields = Vec::with_capacity(names.len());
    for n in &names {
        let field = table_schema.field_with_name(n).map_err(|_| {
            Error::Syntax(format!(
                "column \"{n}\" of relation \"{}\" does not exist",
                table.name()
            ))
        })?;
        input_fields.push(field.clone().with_nullable(true));
    }
    let positions = table_schema
        .fields()
        .iter()
        .map(|f| names.iter().position(|n| n == f.name()))
        .collect();
    let input_schema = Arc::new(Schema::new(input_fields));
    let decoder = CopyDecoder::new(format.clone(), input_schema)?;

    let (tx, rx) = mpsc::channel::<Piece>(2);
    let stream = futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        let item = match rx.recv().await {
            Some(Piece::Batch(batch)) => Ok(batch),
            Some(Piece::Fail(e)) => Err(e),
            Some(Piece::End) => return None,
            None => {
                tracing::info!("COPY FROM STDIN abandoned before CopyDone; nothing committed");
                return Some((
                    Err(DataFusionError::Execution(
                        "COPY aborted: the client went away before CopyDone".into(),
                    )),
                    None,
                ));
            }
        };
        Some((item, Some(rx)))
    });
    let adapter = RecordBatchStreamAdapter::new(table_schema.clone(), stream);
    let writer = table.clone();
    let append = tokio::spawn(async move { writer.append(Box::pin(adapter)).await });

    let slot = client
        .session_extensions()
        .get_or_insert_with(CopySlot::default);
    *slot.0.lock().expect("copy slot") = Some(CopyIn {
        decoder,
        table_schema,
        positions,
        tx: Some(tx),
        append,
        failed: None,
    });
    Ok(Response::CopyIn(CopyResponse::new(
        format.wire_code(),
        names.len(),
        futures::stream::empty(),
    )))
}

async fn copy_out(
    source: &CopySource,
    format: CopyFormat,
    ctx: &SessionContext,
    zone: Option<datafusion::arrow::array::timezone::Tz>,
) -> Result<Response> {
    let df = match source {
        CopySource::Table {
            table_name: name,
            columns,
        } => {
            let (_, name) = table_name(name)?;
            let df = ctx
                .table(name.as_str())
                .await
                .map_err(|_| Error::UndefinedTable(name.clone()))?;
            if columns.is_empty() {
                df
            } else {
                let cols: Vec<String> = columns.iter().map(ident_name).collect();
                let refs: Vec<&str> = cols.iter().map(String::as_str).collect();
                df.select_columns(&refs)?
            }
        }
        CopySource::Query(query) => {
            let statement = Statement::Query(query.clone());
            let plan = ctx
                .state()
                .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
                    statement,
                )))
                .await?;
            ctx.execute_logical_plan(plan).await?
        }
    };
    let ncols = df.schema().fields().len();
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.execute_stream().await?;
    let binary = format == CopyFormat::Binary;
    // A header (binary signature, or CSV column names) rides with the first
    // row, or goes alone when there are none.
    let header = if binary {
        Some(copy_format::binary_header())
    } else {
        copy_format::csv_header(&format, &schema)
    };
    let lone_header = header.clone();
    let fmt = format.clone();
    let mut first = true;
    let rows = batches.flat_map(move |batch| {
        let items: Vec<PgWireResult<CopyData>> = match batch
            .map_err(Error::from)
            .and_then(|b| copy_format::encode_in_zone(&fmt, &b, zone.as_ref()))
        {
            Ok(encoded) => {
                let mut out = Vec::with_capacity(encoded.ends.len());
                let mut start = 0;
                for end in encoded.ends {
                    let row = encoded.buffer.slice(start..end);
                    // The binary header rides with the first row: pgwire
                    // counts every CopyData message as one row.
                    let data = match (&header, first) {
                        (Some(h), true) => {
                            let mut b = h.to_vec();
                            b.extend_from_slice(&row);
                            Bytes::from(b)
                        }
                        _ => row,
                    };
                    first = false;
                    out.push(Ok(CopyData::new(data)));
                    start = end;
                }
                out
            }
            Err(e) => vec![Err(to_pg(e))],
        };
        futures::stream::iter(items)
    });
    // pgwire appends the binary trailer itself; an empty binary result still
    // needs its header.
    let stream: futures::stream::BoxStream<'static, PgWireResult<CopyData>> =
        if let Some(lone_header) = lone_header {
            let mut rows = rows.peekable();
            if std::pin::Pin::new(&mut rows).peek().await.is_none() {
                Box::pin(futures::stream::once(async {
                    Ok(CopyData::new(lone_header))
                }))
            } else {
                Box::pin(rows)
            }
        } else {
            Box::pin(rows)
        };
    Ok(Response::CopyOut(CopyResponse::new(
        format.wire_code(),
        ncols,
        stream,
    )))
}

/// Receives CopyData/CopyDone/CopyFail for a COPY FROM STDIN.
#[derive(Debug, Default)]
pub struct LakeCopyHandler;

fn take_copy<C: ClientInfo>(client: &C) -> Option<CopyIn> {
    client
        .session_extensions()
        .get::<CopySlot>()
        .and_then(|slot| slot.0.lock().expect("copy slot").take())
}

fn put_copy<C: ClientInfo>(client: &C, copy: CopyIn) {
    if let Some(slot) = client.session_extensions().get::<CopySlot>() {
        *slot.0.lock().expect("copy slot") = Some(copy);
    }
}

#[async_trait]
impl CopyHandler for LakeCopyHandler {
    async fn on_copy_data<C>(&self, client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(mut copy) = take_copy(client) else {
            return Ok(());
        };
        if copy.failed.is_none() {
            match copy.decoder.push(&copy_data.data) {
                Ok(Some(batch)) => {
                    if let Err(e) = copy.send(batch).await {
                        copy.fail(e).await;
                    }
                }
                Ok(None) => {}
                Err(e) => copy.fail(e).await,
            }
        }
        put_copy(client, copy);
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(mut copy) = take_copy(client) else {
            return Ok(());
        };
        if copy.failed.is_none() {
            match copy.decoder.finish() {
                Ok(Some(batch)) => {
                    if let Err(e) = copy.send(batch).await {
                        copy.fail(e).await;
                    }
                }
                Ok(None) => {}
                Err(e) => copy.fail(e).await,
            }
        }
        if let Some(tx) = copy.tx.take() {
            // Fails only if the writer already stopped, with its own error.
            let _ = tx.send(Piece::End).await;
        }
        let appended = copy.append.await;
        if let Some(err) = copy.failed {
            return Err(to_pg(err));
        }
        let rows = match appended {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => return Err(to_pg(e)),
            Err(e) => return Err(to_pg(Error::Internal(format!("COPY writer panicked: {e}")))),
        };
        client
            .send(PgWireBackendMessage::CommandComplete(
                Tag::new("COPY").with_rows(rows as usize).into(),
            ))
            .await?;
        // A COPY started with the extended protocol (tokio-postgres does)
        // ends with the client's Sync; pgwire leaves the connection in the
        // copy state, where that Sync would be ignored and the client would
        // wait forever for ReadyForQuery.
        if matches!(client.state(), PgWireConnectionState::CopyInProgress(true)) {
            client.set_state(PgWireConnectionState::ReadyForQuery);
        }
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let message = format!("COPY from stdin failed: {}", fail.message);
        if let Some(mut copy) = take_copy(client) {
            copy.fail(Error::InvalidText(message.clone())).await;
            let _ = copy.append.await;
        }
        to_pg(Error::QueryCanceled(message))
    }
}
