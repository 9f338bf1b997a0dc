//! The query front door: mends the few statements that clients send in a
//! shape the SQL parser or planner cannot take, then hands every query to
//! datafusion-postgres' handlers (simple and extended protocol alike).
//!
//! Each mend is a fixed, exact text substitution for a statement a known
//! client sends (psql's `\d+`, SQLAlchemy's reflection), so user SQL is never
//! rewritten by guesswork.

use std::borrow::Cow;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::{DfSessionService, Parser};

use crate::catalog::Lake;
use futures::Sink;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;

/// psql's `\d+` asks for TOAST options with `array(subquery)` over a
/// `reloptions` column pg_catalog lacks; our tables have no storage
/// options, so the answer is the empty string.
const PSQL_TOAST_OPTIONS: &str = "pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', ')";

/// Exact substitutions applied to incoming SQL.
const MENDS: &[(&str, &str)] = &[
    (PSQL_TOAST_OPTIONS, "''"),
    // SQLAlchemy's column reflection casts OIDs to regclass to name serial
    // sequences; there are none, and the text form is never looked at.
    (" AS REGCLASS)", " AS TEXT)"),
    // SQLAlchemy's column reflection uses correlated scalar subqueries that
    // return at most one row by the catalog's keys; DataFusion only plans
    // aggregated ones, and max() of one row is that row.
    (
        "(SELECT pg_catalog.pg_get_expr(pg_catalog.pg_attrdef.adbin, pg_catalog.pg_attrdef.adrelid) AS pg_get_expr_1",
        "(SELECT max(pg_catalog.pg_get_expr(pg_catalog.pg_attrdef.adbin, pg_catalog.pg_attrdef.adrelid)) AS pg_get_expr_1",
    ),
    (
        "(SELECT json_build_object(",
        "(SELECT max(json_build_object(",
    ),
    (
        ", pg_catalog.pg_attribute.attidentity = $3::VARCHAR,",
        ", $3::VARCHAR = $3::VARCHAR,",
    ),
    (") AS json_build_object_1 ", ")) AS json_build_object_1 "),
    (
        "(SELECT json_build_object($11::VARCHAR, pg_catalog.pg_collation.collname,",
        "(SELECT max(json_build_object($11::VARCHAR, pg_catalog.pg_collation.collname,",
    ),
    (") AS json_build_object_9 ", ")) AS json_build_object_9 "),
    // A bare outer column in a correlated WHERE defeats DataFusion's
    // decorrelation; the surrounding CASE already tests it.
    (
        "WHERE pg_catalog.pg_attribute.atthasdef AND pg_catalog.pg_attrdef.adrelid",
        "WHERE pg_catalog.pg_attrdef.adrelid",
    ),
    // pgjdbc's getPrimaryKeys (Metabase's sync) pairs key columns with
    // their positions through _pg_expandarray's (x, n) records; DataFusion
    // has no composite values, and array_position gives the same pairing.
    (
        "(information_schema._pg_expandarray(i.indkey)).n AS KEY_SEQ",
        "CAST(array_position(i.indkey, a.attnum) AS INT) AS KEY_SEQ",
    ),
    (
        "information_schema._pg_expandarray(i.indkey) AS KEYS",
        "i.indkey AS KEYS",
    ),
    (
        "result.A_ATTNUM = (result.KEYS).x",
        "array_has(result.KEYS, result.A_ATTNUM)",
    ),
    // pgjdbc's getIndexInfo: one row per key column, as generate_subscripts;
    // streamlake's indexes are ascending only (indoption is all zeros).
    (
        "(information_schema._pg_expandarray(i.indkey)).n AS ORDINAL_POSITION",
        "unnest(generate_series(1, CAST(array_length(i.indkey, 1) AS BIGINT))) AS ORDINAL_POSITION",
    ),
    (
        "CASE tmp.I_INDOPTION[tmp.ORDINAL_POSITION - 1] & 1::smallint       WHEN 1 THEN 'D'       ELSE 'A'     END",
        "'A'",
    ),
    // psql's \dT: the composite-type test is a correlated scalar subquery
    // of at most one row by pg_class's key; DataFusion wants it aggregated.
    (
        "(SELECT c.relkind = 'c' FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid)",
        "(SELECT bool_or(c.relkind = 'c') FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid)",
    ),
    (
        "(SELECT pg_catalog.pg_type.typcollation \nFROM",
        "(SELECT max(pg_catalog.pg_type.typcollation) \nFROM",
    ),
];

/// Substitutions of a whole span, from a start marker to an end marker.
///
/// SQLAlchemy's identity-column subquery correlates on expressions
/// DataFusion cannot decorrelate. There are no identity columns here, so it
/// becomes the same json_build_object call over its parameters alone (every
/// parameter stays referenced, so the client's bind values still line up).
const SPAN_MENDS: &[(&str, &str, &str)] = &[(
    "THEN (SELECT json_build_object(",
    " ELSE NULL END AS identity_options",
    "THEN json_build_object($2::VARCHAR, $3::VARCHAR, $4::VARCHAR, $5::VARCHAR, $6::VARCHAR, \
     $7::VARCHAR, $8::VARCHAR, $9::VARCHAR, $10::VARCHAR) ELSE NULL END AS identity_options",
)];

/// Applies [`MENDS`] and [`SPAN_MENDS`] and closes `COPY … FROM STDIN`.
pub fn mend(query: &str) -> Cow<'_, str> {
    if let Some(view) = crate::sql::view_plan::mend_emit_on_close(query) {
        return Cow::Owned(view);
    }
    let mut out = crate::sql::literals::wide_exponents(query);
    for (start, end, to) in SPAN_MENDS {
        if let Some(a) = out.find(start)
            && let Some(len) = out[a..].find(end)
        {
            let b = a + len + end.len();
            out = Cow::Owned(format!("{}{}{}", &out[..a], to, &out[b..]));
        }
    }
    for (from, to) in MENDS {
        if out.contains(from) {
            out = Cow::Owned(out.replace(from, to));
        }
    }
    // psql sends `COPY … FROM STDIN` with no trailing semicolon, but
    // sqlparser wants one before inline data; the data comes later in
    // CopyData messages, so closing the statement is always right.
    let trimmed = out.trim_end();
    let lower = trimmed.to_ascii_lowercase();
    if lower.trim_start().starts_with("copy") && lower.contains("stdin") && !trimmed.ends_with(';')
    {
        out = Cow::Owned(format!("{trimmed};"));
    }
    out
}

/// `SHOW MATERIALIZED VIEWS`, answered from information_schema.
const SHOW_VIEWS: &str = "SELECT table_name AS name FROM information_schema.tables \
     WHERE table_schema = 'public' AND table_type = 'VIEW' ORDER BY table_name";

/// Statements no SQL parser here takes, recognized by their words alone.
#[derive(Debug, PartialEq)]
enum Special {
    Flush,
    ShowViews,
    /// SHOW CREATE MATERIALIZED VIEW name (folded like an identifier).
    ShowCreate(String),
    /// CREATE SOURCE, or CREATE TABLE … WITH (connector = …).
    CreateSource,
    DropSource {
        name: String,
        if_exists: bool,
        cascade: bool,
    },
    ShowSources,
    ShowCreateSource(String),
}

/// The session's statement_timeout, if set.
fn statement_timeout(client: &(impl ClientInfo + ?Sized)) -> Option<std::time::Duration> {
    datafusion_postgres::client::get_statement_timeout(client).filter(|d| !d.is_zero())
}

/// A name as written: quoted names keep their case, others are folded.
fn fold_name(raw: &str) -> String {
    match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => raw.strip_prefix("public.").unwrap_or(raw).to_lowercase(),
    }
}

/// `query` after its leading comments (`-- …` lines and `/* … */`),
/// which clients other than psql send as they are.
fn skip_leading_comments(mut query: &str) -> &str {
    loop {
        let q = query.trim_start();
        if let Some(rest) = q.strip_prefix("--") {
            query = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = q.strip_prefix("/*") {
            query = rest.split_once("*/").map_or("", |(_, after)| after);
        } else {
            return q;
        }
    }
}

fn special(query: &str) -> Option<Special> {
    let query = skip_leading_comments(query);
    let words: Vec<String> = query
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["flush"] => Some(Special::Flush),
        ["show", "sources"] => Some(Special::ShowSources),
        ["show", "create", "source", _] => {
            let raw = query
                .trim()
                .trim_end_matches(';')
                .split_whitespace()
                .last()
                .unwrap_or_default();
            Some(Special::ShowCreateSource(fold_name(raw)))
        }
        ["drop", "source", rest @ ..] => {
            let raw: Vec<&str> = query
                .trim()
                .trim_end_matches(';')
                .split_whitespace()
                .skip(2)
                .collect();
            let (if_exists, skip) = match rest {
                ["if", "exists", ..] => (true, 2),
                _ => (false, 0),
            };
            let names = &raw[skip..];
            let (cascade, names) = match names.last().map(|w| w.to_ascii_lowercase()) {
                Some(w) if w == "cascade" => (true, &names[..names.len() - 1]),
                Some(w) if w == "restrict" => (false, &names[..names.len() - 1]),
                _ => (false, names),
            };
            match names {
                [name] => Some(Special::DropSource {
                    name: fold_name(name),
                    if_exists,
                    cascade,
                }),
                _ => None,
            }
        }
        ["create", "source", ..] | ["create", "table", ..]
            if crate::sql::source_ddl::is_source_ddl(query) =>
        {
            Some(Special::CreateSource)
        }
        ["show", "materialized", "views"] => Some(Special::ShowViews),
        ["show", "create", "materialized", "view", _] => {
            let raw = query
                .trim()
                .trim_end_matches(';')
                .split_whitespace()
                .last()
                .unwrap_or_default();
            let name = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                Some(quoted) => quoted.to_string(),
                None => raw.to_lowercase(),
            };
            Some(Special::ShowCreate(name))
        }
        _ => None,
    }
}

/// Splits a script at top-level semicolons (outside quotes and comments);
/// empty pieces are dropped.
pub(crate) fn split_statements(query: &str) -> Vec<&str> {
    let b = query.as_bytes();
    let mut pieces = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                pieces.push(&query[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    pieces.push(&query[start.min(query.len())..]);
    pieces.retain(|p| !is_blank(p));
    pieces
}

/// Whether a piece of SQL is only whitespace and comments.
fn is_blank(sql: &str) -> bool {
    let mut rest = sql.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r
                .split_once('\n')
                .map_or("", |(_, after)| after)
                .trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r
                .split_once("*/")
                .map_or("", |(_, after)| after)
                .trim_start();
        } else {
            return rest.is_empty();
        }
    }
}

/// Wraps datafusion-postgres' session service.
pub struct FrontDoor {
    session: Arc<DfSessionService>,
    parser: Arc<MendingParser>,
    lake: Arc<Lake>,
}

impl FrontDoor {
    pub fn new(session: Arc<DfSessionService>, lake: Arc<Lake>) -> FrontDoor {
        let inner = ExtendedQueryHandler::query_parser(session.as_ref());
        FrontDoor {
            session,
            parser: Arc::new(MendingParser {
                inner,
                lake: lake.clone(),
            }),
            lake,
        }
    }

    fn show_create(&self, name: &str) -> PgWireResult<String> {
        show_create(&self.lake, name)
    }
}

/// The query that answers SHOW CREATE MATERIALIZED VIEW.
///
/// A missing view is refused here (42P01), but the definition is read when
/// the query runs, not spelled into it: a statement prepared once and
/// executed after the view was dropped and created again shows the new one.
fn show_create(lake: &Lake, name: &str) -> PgWireResult<String> {
    if !lake.view_definitions().iter().any(|(n, _)| n == name) {
        return Err(crate::server::errors::to_pg(
            crate::error::Error::UndefinedTable(name.to_string()),
        ));
    }
    Ok(format!(
        "SELECT matviewname AS \"Name\", \
         'CREATE MATERIALIZED VIEW ' || matviewname || ' AS ' || definition \
         AS \"Create Materialized View\" \
         FROM pg_catalog.pg_matviews \
         WHERE schemaname = 'public' AND matviewname = '{}'",
        name.replace('\'', "''")
    ))
}

impl FrontDoor {
    /// CREATE SOURCE (and connector tables) and DROP SOURCE.
    async fn source_ddl(&self, ddl: Special, sql: &str) -> PgWireResult<Response> {
        use pgwire::api::results::Tag;
        let to_pg = crate::server::errors::to_pg;
        match ddl {
            Special::CreateSource => {
                let is_table = sql
                    .split_whitespace()
                    .nth(1)
                    .is_some_and(|w| w.eq_ignore_ascii_case("table"));
                self.lake.create_source(sql).await.map_err(to_pg)?;
                Ok(Response::Execution(Tag::new(if is_table {
                    "CREATE TABLE"
                } else {
                    "CREATE SOURCE"
                })))
            }
            Special::DropSource {
                name,
                if_exists,
                cascade,
            } => {
                self.lake
                    .drop_source(&name, if_exists, cascade)
                    .await
                    .map_err(to_pg)?;
                Ok(Response::Execution(Tag::new("DROP SOURCE")))
            }
            _ => Err(to_pg(crate::error::Error::Internal(
                "not a source statement".into(),
            ))),
        }
    }

    /// FLUSH, bounded by the session's statement_timeout (57014 when a
    /// broker does not answer in time).
    async fn flush(&self, timeout: Option<std::time::Duration>) -> PgWireResult<Response> {
        let flush = self.lake.flush();
        let done = match timeout {
            Some(t) => tokio::time::timeout(t, flush).await.map_err(|_| {
                crate::server::errors::to_pg(crate::error::Error::QueryCanceled(
                    "canceling statement due to statement timeout".into(),
                ))
            })?,
            None => flush.await,
        };
        done.map_err(crate::server::errors::to_pg)?;
        Ok(Response::Execution(pgwire::api::results::Tag::new("FLUSH")))
    }
}

#[async_trait]
impl SimpleQueryHandler for FrontDoor {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let pieces = split_statements(query);
        let emit_clause = pieces.len() > 1
            && pieces
                .iter()
                .any(|p| crate::sql::view_plan::mend_emit_on_close(p).is_some());
        if !emit_clause && !pieces.iter().any(|p| special(p).is_some()) {
            let query = mend(query);
            return SimpleQueryHandler::do_query(self.session.as_ref(), client, &query).await;
        }
        // A script with FLUSH or SHOW MATERIALIZED VIEWS in it: run it one
        // statement at a time, in order.
        let mut responses = Vec::new();
        for piece in pieces {
            match special(piece) {
                Some(Special::Flush) => {
                    responses.push(self.flush(statement_timeout(client)).await?)
                }
                Some(Special::ShowViews) => responses.extend(
                    SimpleQueryHandler::do_query(self.session.as_ref(), client, SHOW_VIEWS).await?,
                ),
                Some(Special::ShowCreate(name)) => {
                    let sql = self.show_create(&name)?;
                    responses.extend(
                        SimpleQueryHandler::do_query(self.session.as_ref(), client, &sql).await?,
                    );
                }
                Some(Special::ShowSources) => {
                    let sql = self.lake.show_sources_sql();
                    responses.extend(
                        SimpleQueryHandler::do_query(self.session.as_ref(), client, &sql).await?,
                    );
                }
                Some(Special::ShowCreateSource(name)) => {
                    let sql = self
                        .lake
                        .show_create_source_sql(&name)
                        .map_err(crate::server::errors::to_pg)?;
                    responses.extend(
                        SimpleQueryHandler::do_query(self.session.as_ref(), client, &sql).await?,
                    );
                }
                Some(ddl @ (Special::CreateSource | Special::DropSource { .. })) => {
                    responses.push(self.source_ddl(ddl, piece).await?);
                }
                None => {
                    let piece = mend(piece);
                    responses.extend(
                        SimpleQueryHandler::do_query(self.session.as_ref(), client, &piece).await?,
                    );
                }
            }
        }
        Ok(responses)
    }
}

type Statement = <Parser as QueryParser>::Statement;

/// The extended protocol's parser, with the same mends.
pub struct MendingParser {
    inner: Arc<Parser>,
    lake: Arc<Lake>,
}

#[async_trait]
impl QueryParser for MendingParser {
    type Statement = Statement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Self::Statement>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        // PostgreSQL refuses this at Parse; datafusion-postgres would
        // quietly prepare the first statement and drop the rest.
        if split_statements(sql).len() > 1 {
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".into(),
                "42601".into(),
                "cannot insert multiple commands into a prepared statement".into(),
            ))));
        }
        match special(sql) {
            // Carried to do_query by its text, with no plan.
            Some(Special::Flush) => return Ok(("FLUSH".to_string(), None)),
            Some(Special::ShowViews) => {
                return self.inner.parse_sql(client, SHOW_VIEWS, types).await;
            }
            Some(Special::ShowCreate(name)) => {
                let sql = show_create(&self.lake, &name)?;
                return self.inner.parse_sql(client, &sql, types).await;
            }
            Some(Special::ShowSources) => {
                let sql = self.lake.show_sources_sql();
                return self.inner.parse_sql(client, &sql, types).await;
            }
            Some(Special::ShowCreateSource(name)) => {
                let sql = self
                    .lake
                    .show_create_source_sql(&name)
                    .map_err(crate::server::errors::to_pg)?;
                return self.inner.parse_sql(client, &sql, types).await;
            }
            // Carried to do_query by its text, with no plan.
            Some(Special::CreateSource | Special::DropSource { .. }) => {
                return Ok((sql.to_string(), None));
            }
            None => {}
        }
        let sql = mend(sql);
        let sql = pad_placeholders(&sql);
        self.inner.parse_sql(client, &sql, types).await
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.inner.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.inner.get_result_schema(stmt, column_format)
    }
}

/// Renames `$1…$N` to zero-padded `$01…$N` when there are ten or more.
///
/// datafusion-postgres 0.17 orders parameter types by sorting their names as
/// strings, so `$10` sorts before `$2` and the types of a statement with ten
/// or more parameters get shuffled. DataFusion reads a placeholder's number
/// with the leading zeros ignored, so padding changes nothing but the order.
/// Done on the text, before planning, so that every name derived from a
/// placeholder (aggregate column names, say) agrees with it.
fn pad_placeholders(sql: &str) -> Cow<'_, str> {
    let bytes = sql.as_bytes();
    // First pass: find the highest placeholder number outside quotes.
    let mut max = 0usize;
    scan_placeholders(bytes, |_, _, n| max = max.max(n));
    if max < 10 {
        return Cow::Borrowed(sql);
    }
    let width = max.to_string().len();
    let mut out = String::with_capacity(sql.len() + 16);
    let mut last = 0;
    scan_placeholders(bytes, |start, end, n| {
        out.push_str(&sql[last..start]);
        out.push_str(&format!("${n:0width$}"));
        last = end;
    });
    out.push_str(&sql[last..]);
    Cow::Owned(out)
}

/// Calls `f(start, end, number)` for every `$N` outside string literals,
/// quoted identifiers and comments.
fn scan_placeholders(b: &[u8], mut f: impl FnMut(usize, usize, usize)) {
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let q = b[i];
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'$' if i + 1 < b.len()
                && b[i + 1].is_ascii_digit()
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let start = i;
                i += 1;
                let mut n = 0usize;
                while i < b.len() && b[i].is_ascii_digit() {
                    n = n.saturating_mul(10).saturating_add((b[i] - b'0') as usize);
                    i += 1;
                }
                f(start, i, n);
            }
            _ => i += 1,
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for FrontDoor {
    type Statement = Statement;
    type QueryParser = MendingParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if portal.statement.statement.1.is_none() {
            let text = &portal.statement.statement.0;
            match special(text) {
                Some(Special::Flush) => return self.flush(statement_timeout(client)).await,
                Some(ddl @ (Special::CreateSource | Special::DropSource { .. })) => {
                    return self.source_ddl(ddl, text).await;
                }
                _ => {}
            }
        }
        ExtendedQueryHandler::do_query(self.session.as_ref(), client, portal, max_rows).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_from_stdin_gets_its_semicolon_and_other_sql_is_untouched() {
        assert_eq!(mend("COPY t FROM STDIN"), "COPY t FROM STDIN;");
        assert_eq!(mend("copy t from stdin;"), "copy t from stdin;");
        assert!(matches!(mend("SELECT 1"), Cow::Borrowed(_)));
    }

    #[test]
    fn scripts_split_at_top_level_semicolons() {
        assert_eq!(
            split_statements("INSERT INTO t VALUES ('a;b'); FLUSH;\n"),
            vec!["INSERT INTO t VALUES ('a;b')", " FLUSH"]
        );
        assert_eq!(
            split_statements("SELECT 1 /* a; b */; -- c;\n"),
            vec!["SELECT 1 /* a; b */"]
        );
    }

    #[test]
    fn flush_and_show_views_are_recognized_by_their_words() {
        assert_eq!(special(" FLUSH ;"), Some(Special::Flush));
        assert_eq!(
            special("show  Materialized views"),
            Some(Special::ShowViews)
        );
        assert_eq!(special("SELECT flush"), None);
    }

    #[test]
    fn placeholders_are_padded_only_past_nine_and_outside_quotes() {
        assert_eq!(pad_placeholders("SELECT $1, $2"), "SELECT $1, $2");
        let sql = "SELECT $1, '$2', $10 -- $3\n, \"$4\", $2";
        assert_eq!(
            pad_placeholders(sql),
            "SELECT $01, '$2', $10 -- $3\n, \"$4\", $02"
        );
    }
}
