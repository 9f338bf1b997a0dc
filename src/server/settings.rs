//! Session settings as PostgreSQL keeps them: `SET`, `SET TIME ZONE`,
//! `SET SESSION CHARACTERISTICS`, `RESET`, `SHOW`, and the `set_config()` /
//! `current_setting()` calls clients send on their own (`SELECT
//! set_config('search_path', '', false)`).
//!
//! Values live in the connection's metadata (pgwire's per-client map), so a
//! setting never leaks into another session. Two keys are shared with
//! datafusion-postgres, which reads them when it runs a query: `timezone`
//! (the zone timestamptz values print in) and `statement_timeout_ms` (the
//! deadline of every statement). The server's values, which RESET returns
//! to and pg_settings lists, are
//! [`datafusion_pg_catalog::pg_catalog::pg_settings::DEFAULT_SETTINGS`].
//!
//! Names with a dot (`datafusion.execution.batch_size`) are DataFusion's own
//! and go on to datafusion-postgres' SET/SHOW hook.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectName, Reset, SelectItem, Set,
    SetExpr, Statement, TransactionAccessMode, TransactionIsolationLevel, TransactionMode, Value,
};
use datafusion_pg_catalog::pg_catalog::pg_settings::DEFAULT_SETTINGS;
use datafusion_postgres::QueryHook;
use datafusion_postgres::client;
use datafusion_postgres::hooks::HookClient;
use pgwire::api::ClientInfo;
use pgwire::api::Type;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::startup::ParameterStatus;

/// Settings whose change PostgreSQL reports to the client (ParameterStatus).
const REPORTED: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "IntervalStyle",
    "search_path",
    "standard_conforming_strings",
    "TimeZone",
];

/// The metadata key of a setting (datafusion-postgres' keys where it reads
/// them).
fn key(canonical: &str) -> String {
    canonical.to_ascii_lowercase()
}

/// The canonical spelling of a setting name (`timezone` → `TimeZone`), or
/// the lower-cased name when the server does not know it.
fn canonical(name: &str) -> String {
    let name = name.trim_matches('"');
    DEFAULT_SETTINGS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| name.to_ascii_lowercase())
}

fn default_of(canonical: &str) -> Option<&'static str> {
    DEFAULT_SETTINGS
        .iter()
        .find(|(n, _)| *n == canonical)
        .map(|(_, v)| *v)
}

/// The session's value of a setting, if the session or the server has one.
pub fn session_value(client: &(impl ClientInfo + ?Sized), name: &str) -> Option<String> {
    let canonical = canonical(name);
    if canonical == "statement_timeout" {
        return Some(match client::get_statement_timeout(client) {
            Some(d) => format_duration_ms(d.as_millis() as u64),
            None => "0".into(),
        });
    }
    if canonical == "transaction_isolation" {
        return session_value(client, "default_transaction_isolation");
    }
    if canonical == "transaction_read_only" {
        return session_value(client, "default_transaction_read_only");
    }
    let metadata = client.metadata();
    metadata
        .get(&key(&canonical))
        // Startup parameters keep the client's spelling (pgjdbc: TimeZone).
        .or_else(|| metadata.get(&canonical))
        .cloned()
        .or_else(|| default_of(&canonical).map(str::to_string))
}

/// PostgreSQL's display of a duration in milliseconds (`statement_timeout`).
fn format_duration_ms(ms: u64) -> String {
    match ms {
        0 => "0".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}min", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

fn invalid_value(name: &str, value: &str) -> PgWireError {
    user_error(
        "22023",
        format!("invalid value for parameter \"{name}\": \"{value}\""),
    )
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message,
    )))
}

/// Parses a statement_timeout value: a number of milliseconds, or a number
/// with a unit (`ms`, `s`, `min`, `h`, `d`).
fn parse_duration_ms(value: &str) -> Option<u64> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1.0,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    Some((number * factor).round() as u64)
}

/// Validates a time zone name and returns the spelling to keep.
fn parse_time_zone(value: &str) -> Option<String> {
    let v = value.trim();
    for fixed in ["UTC", "GMT", "Etc/UTC", "Z"] {
        if v.eq_ignore_ascii_case(fixed) {
            return Some(if fixed == "Z" {
                "UTC".into()
            } else {
                fixed.into()
            });
        }
    }
    Tz::from_str(v).ok().map(|_| v.to_string())
}

/// The text of a SET value as PostgreSQL keeps it.
fn value_text(e: &Expr) -> String {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.to_string(),
            Value::Boolean(b) => if *b { "on" } else { "off" }.into(),
            other => other.to_string(),
        },
        Expr::Identifier(i) if i.quote_style.is_none() => i.value.to_ascii_lowercase(),
        other => other.to_string(),
    }
}

/// What a SET does to one setting.
enum Change {
    Set(String, String),
    Reset(String),
}

/// Applies a change to the session; returns the ParameterStatus to send.
fn apply(
    client: &mut (impl ClientInfo + ?Sized),
    change: Change,
) -> PgWireResult<Option<(String, String)>> {
    let (name, value) = match change {
        Change::Set(name, value) => (canonical(&name), Some(value)),
        Change::Reset(name) => (canonical(&name), None),
    };
    match name.as_str() {
        "statement_timeout" => {
            let ms = match &value {
                Some(v) => parse_duration_ms(v).ok_or_else(|| invalid_value(&name, v))?,
                None => 0,
            };
            client::set_statement_timeout(
                client,
                (ms > 0).then(|| std::time::Duration::from_millis(ms)),
            );
            return Ok(None);
        }
        "TimeZone" => {
            let tz = match &value {
                Some(v) if v.eq_ignore_ascii_case("local") || v.eq_ignore_ascii_case("default") => {
                    None
                }
                Some(v) => Some(parse_time_zone(v).ok_or_else(|| invalid_value(&name, v))?),
                None => None,
            };
            client::set_timezone(client, tz.as_deref());
            let shown = tz.unwrap_or_else(|| default_of("TimeZone").unwrap_or("UTC").into());
            return Ok(Some((name, shown)));
        }
        "client_encoding" => {
            if let Some(v) = &value {
                let normalized = v.to_ascii_uppercase().replace(['-', '_'], "");
                if normalized != "UTF8" && normalized != "UNICODE" {
                    return Err(user_error(
                        "0A000",
                        format!("conversion between {v} and UTF8 is not supported"),
                    ));
                }
            }
            // Only UTF8 is served; keep the canonical name.
            return Ok(Some((name, "UTF8".into())));
        }
        _ => {}
    }
    let metadata = client.metadata_mut();
    match &value {
        Some(v) => {
            metadata.insert(key(&name), v.clone());
        }
        None => {
            metadata.remove(&key(&name));
        }
    }
    Ok(REPORTED.contains(&name.as_str()).then(|| {
        let shown = value
            .or_else(|| default_of(&name).map(str::to_string))
            .unwrap_or_default();
        (name, shown)
    }))
}

fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|p| p.to_string().trim_matches('"').to_string())
        .collect::<Vec<_>>()
        .join(".")
}

/// The changes a statement makes, or None when it is not ours.
fn changes(statement: &Statement) -> Option<Vec<Change>> {
    match statement {
        Statement::Set(set) => match set {
            Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = object_name(variable);
                if name.contains('.') {
                    return None;
                }
                let text = values.iter().map(value_text).collect::<Vec<_>>();
                if text.len() == 1 && text[0].eq_ignore_ascii_case("default") {
                    return Some(vec![Change::Reset(name)]);
                }
                // search_path keeps each element as written, quotes and all.
                let value = if canonical(&name) == "search_path" {
                    values
                        .iter()
                        .map(|e| match e {
                            Expr::Identifier(i) if i.quote_style.is_some() => i.to_string(),
                            e => value_text(e),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                } else {
                    text.join(", ")
                };
                Some(vec![Change::Set(name, value)])
            }
            Set::SetTimeZone { value, .. } => {
                Some(vec![Change::Set("TimeZone".into(), value_text(value))])
            }
            Set::SetNames { charset_name, .. } => Some(vec![Change::Set(
                "client_encoding".into(),
                charset_name.value.clone(),
            )]),
            Set::SetTransaction { modes, session, .. } => {
                if !session {
                    // SET TRANSACTION applies to the running transaction only,
                    // which streamlake runs as read committed anyway.
                    return Some(vec![]);
                }
                Some(
                    modes
                        .iter()
                        .map(|m| match m {
                            TransactionMode::IsolationLevel(level) => Change::Set(
                                "default_transaction_isolation".into(),
                                match level {
                                    TransactionIsolationLevel::ReadUncommitted => {
                                        "read uncommitted"
                                    }
                                    TransactionIsolationLevel::ReadCommitted => "read committed",
                                    TransactionIsolationLevel::RepeatableRead => "repeatable read",
                                    TransactionIsolationLevel::Serializable => "serializable",
                                    _ => "read committed",
                                }
                                .into(),
                            ),
                            TransactionMode::AccessMode(mode) => Change::Set(
                                "default_transaction_read_only".into(),
                                match mode {
                                    TransactionAccessMode::ReadOnly => "on",
                                    TransactionAccessMode::ReadWrite => "off",
                                }
                                .into(),
                            ),
                        })
                        .collect(),
                )
            }
            _ => None,
        },
        Statement::Reset(reset) => match &reset.reset {
            Reset::ALL => Some(
                DEFAULT_SETTINGS
                    .iter()
                    .map(|(n, _)| Change::Reset(n.to_string()))
                    .collect(),
            ),
            Reset::ConfigurationParameter(name) => {
                let name = object_name(name);
                (!name.contains('.')).then(|| vec![Change::Reset(name)])
            }
        },
        _ => None,
    }
}

/// The setting a SHOW statement asks for, by its canonical name.
fn shown(statement: &Statement) -> Option<String> {
    let Statement::ShowVariable { variable } = statement else {
        return None;
    };
    let words: Vec<String> = variable.iter().map(|v| v.value.to_lowercase()).collect();
    let name = match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["time", "zone"] => "TimeZone".to_string(),
        ["transaction", "isolation", "level"] => "transaction_isolation".to_string(),
        ["session", "authorization"] => "session_authorization".to_string(),
        [one] if !one.contains('.') && *one != "all" => canonical(one),
        _ => return None,
    };
    Some(name)
}

fn is_show_all(statement: &Statement) -> bool {
    matches!(statement, Statement::ShowVariable { variable }
        if variable.len() == 1 && variable[0].value.eq_ignore_ascii_case("all"))
}

/// `SHOW ALL`: every setting with the session's value.
fn show_all(client: &(impl ClientInfo + ?Sized)) -> PgWireResult<Response> {
    let fields = Arc::new(
        ["name", "setting", "description"]
            .iter()
            .map(|n| FieldInfo::new(n.to_string(), None, None, Type::TEXT, FieldFormat::Text))
            .collect::<Vec<_>>(),
    );
    let mut rows = Vec::with_capacity(DEFAULT_SETTINGS.len());
    for (name, _) in DEFAULT_SETTINGS {
        let mut encoder = DataRowEncoder::new(fields.clone());
        encoder.encode_field(&Some(*name))?;
        encoder.encode_field(&session_value(client, name))?;
        encoder.encode_field(&Some(""))?;
        rows.push(Ok(encoder.take_row()));
    }
    Ok(Response::Query(QueryResponse::new(
        fields,
        futures::stream::iter(rows),
    )))
}

/// A `SELECT set_config(…)` or `SELECT current_setting(…)` with literal
/// arguments and nothing else: (function, arguments).
fn settings_call(statement: &Statement) -> Option<(String, Vec<String>)> {
    let Statement::Query(q) = statement else {
        return None;
    };
    let SetExpr::Select(select) = q.body.as_ref() else {
        return None;
    };
    if !select.from.is_empty() || select.projection.len() != 1 || select.selection.is_some() {
        return None;
    }
    let expr = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) => e,
        SelectItem::ExprWithAlias { expr, .. } => expr,
        _ => return None,
    };
    let Expr::Function(f) = expr else {
        return None;
    };
    let name = f.name.to_string().to_lowercase();
    let name = name
        .strip_prefix("pg_catalog.")
        .unwrap_or(&name)
        .to_string();
    if name != "set_config" && name != "current_setting" {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let args = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => match &v.value {
                Value::SingleQuotedString(s) => Some(s.clone()),
                Value::Boolean(b) => Some(b.to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((name, args))
}

fn one_text_column(name: &str) -> Vec<FieldInfo> {
    vec![FieldInfo::new(
        name.to_string(),
        None,
        None,
        Type::TEXT,
        FieldFormat::Text,
    )]
}

fn one_value(name: &str, value: Option<&str>) -> PgWireResult<Response> {
    let fields = Arc::new(one_text_column(name));
    let mut encoder = DataRowEncoder::new(fields.clone());
    encoder.encode_field(&value)?;
    let row = encoder.take_row();
    Ok(Response::Query(QueryResponse::new(
        fields,
        futures::stream::once(async move { Ok(row) }),
    )))
}

fn plan_with_columns(columns: &[&str]) -> PgWireResult<LogicalPlan> {
    let schema = Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    let schema = DFSchema::try_from(schema).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    Ok(LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: true,
        schema: Arc::new(schema),
    }))
}

/// SET/RESET/SHOW and settings calls, per session.
pub struct SettingsHook;

impl SettingsHook {
    async fn run(
        &self,
        statement: &Statement,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Some(changes) = changes(statement) {
            let tag = if matches!(statement, Statement::Reset(_)) {
                "RESET"
            } else {
                "SET"
            };
            for change in changes {
                match apply(client, change) {
                    Ok(Some((name, value))) => {
                        let status = PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                            name, value,
                        ));
                        if let Err(e) = client.send_message(status).await {
                            return Some(Err(e));
                        }
                    }
                    Ok(None) => {}
                    Err(e) => return Some(Err(e)),
                }
            }
            return Some(Ok(Response::Execution(Tag::new(tag))));
        }
        if is_show_all(statement) {
            return Some(show_all(client));
        }
        if let Some(name) = shown(statement) {
            return Some(match session_value(client, &name) {
                Some(v) => one_value(&name, Some(&v)),
                None => Err(user_error(
                    "42704",
                    format!("unrecognized configuration parameter \"{name}\""),
                )),
            });
        }
        if let Some((function, args)) = settings_call(statement) {
            return Some(match (function.as_str(), args.as_slice()) {
                ("set_config", [name, value, _is_local]) => {
                    match apply(client, Change::Set(name.clone(), value.clone())) {
                        Ok(_) => one_value("set_config", session_value(client, name).as_deref()),
                        Err(e) => Err(e),
                    }
                }
                ("current_setting", [name, rest @ ..]) => {
                    let missing_ok = rest.first().is_some_and(|m| m == "true");
                    match session_value(client, name) {
                        Some(v) => one_value("current_setting", Some(&v)),
                        None if missing_ok => one_value("current_setting", None),
                        None => Err(user_error(
                            "42704",
                            format!("unrecognized configuration parameter \"{name}\""),
                        )),
                    }
                }
                _ => return None,
            });
        }
        None
    }
}

#[async_trait]
impl QueryHook for SettingsHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.run(statement, client).await
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if changes(statement).is_some() {
            return Some(plan_with_columns(&[]));
        }
        if is_show_all(statement) {
            return Some(plan_with_columns(&["name", "setting", "description"]));
        }
        if let Some(name) = shown(statement) {
            return Some(plan_with_columns(&[&name]));
        }
        if let Some((function, _)) = settings_call(statement) {
            return Some(plan_with_columns(&[&function]));
        }
        None
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.run(statement, client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print_as_postgres_does() {
        assert_eq!(parse_duration_ms("100"), Some(100));
        assert_eq!(parse_duration_ms("1s"), Some(1_000));
        assert_eq!(parse_duration_ms("2min"), Some(120_000));
        assert_eq!(parse_duration_ms("soon"), None);
        assert_eq!(format_duration_ms(100), "100ms");
        assert_eq!(format_duration_ms(1_000), "1s");
        assert_eq!(format_duration_ms(120_000), "2min");
    }

    #[test]
    fn setting_names_are_canonical() {
        assert_eq!(canonical("timezone"), "TimeZone");
        assert_eq!(canonical("DATESTYLE"), "DateStyle");
        assert_eq!(canonical("my_setting"), "my_setting");
    }

    #[test]
    fn time_zones_are_validated() {
        assert_eq!(parse_time_zone("utc").as_deref(), Some("UTC"));
        assert_eq!(
            parse_time_zone("America/New_York").as_deref(),
            Some("America/New_York")
        );
        assert_eq!(parse_time_zone("Mars/Olympus"), None);
    }
}
