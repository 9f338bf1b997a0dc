//! `CREATE SOURCE` and `CREATE TABLE … WITH (connector = …)`: the streaming
//! DDL of SQL.md §1, which no SQL parser here takes whole.
//!
//! The statement is tokenized with sqlparser's PostgreSQL tokenizer and
//! split at its top-level clauses: the column list (handed back to
//! sqlparser as a plain `CREATE TABLE`, so column types follow
//! [`ddl`](crate::sql::ddl) exactly), `WATERMARK FOR`, `INCLUDE`, `WITH (…)`
//! and `FORMAT … ENCODE … (…)`. Option keys are dotted words
//! (`properties.bootstrap.server`) or quoted strings; values are literals.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use crate::error::{Error, Result};
use crate::sql::ddl::{TableDef, table_def};

/// A metadata column of `INCLUDE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncludeKind {
    Partition,
    Offset,
    Timestamp,
    Key,
    /// All headers as JSONB.
    Headers,
    /// One header's value as BYTEA.
    Header(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub kind: IncludeKind,
    /// The column name (the alias, or a default like `_rw_kafka_partition`).
    pub column: String,
}

/// `FORMAT … ENCODE …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatSpec {
    pub format: String,
    pub encode: String,
    pub options: BTreeMap<String, String>,
}

/// A parsed `CREATE SOURCE` or connector `CREATE TABLE`.
#[derive(Debug)]
pub struct SourceDef {
    /// `CREATE TABLE` (events stored) rather than `CREATE SOURCE`.
    pub is_table: bool,
    pub if_not_exists: bool,
    /// The declared (payload) columns, as a table definition.
    pub table: TableDef,
    /// Names of declared columns typed JSON/JSONB (stored as their text).
    pub jsonb_columns: Vec<String>,
    /// `WATERMARK FOR column AS expression` (kept for event time).
    pub watermark: Option<(String, String)>,
    pub includes: Vec<Include>,
    /// `WITH (…)`, keys lowercased.
    pub options: BTreeMap<String, String>,
    pub format: Option<FormatSpec>,
}

impl SourceDef {
    pub fn name(&self) -> &str {
        &self.table.name
    }

    pub fn connector(&self) -> Option<&str> {
        self.options.get("connector").map(String::as_str)
    }
}

/// Whether `sql` is a statement this module parses: `CREATE SOURCE`, or a
/// `CREATE TABLE` whose `WITH` options name a connector.
pub fn is_source_ddl(sql: &str) -> bool {
    let Ok(tokens) = tokens(sql) else {
        return false;
    };
    let mut words = tokens.iter().filter_map(|t| match t {
        Token::Word(w) => Some(w.value.to_ascii_lowercase()),
        _ => None,
    });
    match (words.next().as_deref(), words.next().as_deref()) {
        (Some("create"), Some("source")) => true,
        (Some("create"), Some("table")) => {
            // `WITH (` … `connector` at depth 1, after the column list.
            let mut depth = 0i32;
            let mut after_with = false;
            for t in &tokens {
                match t {
                    Token::LParen => depth += 1,
                    Token::RParen => depth -= 1,
                    Token::Word(w) if depth == 0 && w.value.eq_ignore_ascii_case("with") => {
                        after_with = true
                    }
                    Token::Word(w)
                        if depth == 1
                            && after_with
                            && w.value.eq_ignore_ascii_case("connector") =>
                    {
                        return true;
                    }
                    _ => {}
                }
            }
            false
        }
        _ => false,
    }
}

fn tokens(sql: &str) -> Result<Vec<Token>> {
    let dialect = PostgreSqlDialect {};
    let toks = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|e| Error::Syntax(e.to_string()))?;
    Ok(toks
        .into_iter()
        .filter(|t| {
            !matches!(
                t,
                Token::Whitespace(
                    Whitespace::Space
                        | Whitespace::Newline
                        | Whitespace::Tab
                        | Whitespace::SingleLineComment { .. }
                        | Whitespace::MultiLineComment(_)
                )
            )
        })
        .collect())
}

struct Cursor {
    toks: Vec<Token>,
    pos: usize,
}

impl Cursor {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.value.eq_ignore_ascii_case(word) && w.quote_style.is_none())
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if self.peek_word(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_word(&mut self, word: &str) -> Result<()> {
        if self.eat_word(word) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("expected {}", word.to_uppercase())))
        }
    }

    fn expect(&mut self, token: Token) -> Result<()> {
        match self.next() {
            Some(t) if t == token => Ok(()),
            other => Err(Error::Syntax(format!(
                "expected {token}, found {}",
                other.map_or("end of statement".to_string(), |t| t.to_string())
            ))),
        }
    }

    fn unexpected(&self, what: &str) -> Error {
        Error::Syntax(format!(
            "{what}, found {}",
            self.peek()
                .map_or("end of statement".to_string(), |t| t.to_string())
        ))
    }

    /// A folded identifier.
    fn ident(&mut self) -> Result<String> {
        match self.next() {
            Some(Token::Word(w)) => Ok(if w.quote_style.is_some() {
                w.value
            } else {
                w.value.to_lowercase()
            }),
            other => Err(Error::Syntax(format!(
                "expected a name, found {}",
                other.map_or("end of statement".to_string(), |t| t.to_string())
            ))),
        }
    }

    /// Tokens up to the `)` that closes the `(` just consumed.
    fn balanced(&mut self) -> Result<Vec<Token>> {
        let mut depth = 1;
        let mut out = Vec::new();
        loop {
            let Some(t) = self.next() else {
                return Err(Error::Syntax("unbalanced parentheses".into()));
            };
            match t {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(out);
                    }
                }
                _ => {}
            }
            out.push(t);
        }
    }
}

/// Splits tokens at top-level commas.
fn split_commas(toks: Vec<Token>) -> Vec<Vec<Token>> {
    let mut out = vec![Vec::new()];
    let mut depth = 0;
    for t in toks {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                out.push(Vec::new());
                continue;
            }
            _ => {}
        }
        out.last_mut().expect("never empty").push(t);
    }
    out.retain(|p| !p.is_empty());
    out
}

fn join(toks: &[Token]) -> String {
    toks.iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses a `CREATE SOURCE` or connector `CREATE TABLE` statement.
pub fn parse(sql: &str) -> Result<SourceDef> {
    let mut toks = tokens(sql)?;
    while matches!(toks.last(), Some(Token::SemiColon)) {
        toks.pop();
    }
    let mut c = Cursor { toks, pos: 0 };
    c.expect_word("create")?;
    let is_table = if c.eat_word("source") {
        false
    } else if c.eat_word("table") {
        true
    } else {
        return Err(c.unexpected("expected SOURCE or TABLE"));
    };
    let if_not_exists = if c.eat_word("if") {
        c.expect_word("not")?;
        c.expect_word("exists")?;
        true
    } else {
        false
    };
    // [schema.]name
    let mut name_parts = vec![c.ident()?];
    while matches!(c.peek(), Some(Token::Period)) {
        c.next();
        name_parts.push(c.ident()?);
    }
    let quoted_name = name_parts
        .iter()
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".");
    c.expect(Token::LParen).map_err(|_| {
        Error::Syntax(
            "a source needs a column list: CREATE SOURCE name (column type, …) WITH (…)".into(),
        )
    })?;
    let mut columns = Vec::new();
    let mut watermark = None;
    for element in split_commas(c.balanced()?) {
        let is_watermark = matches!(element.first(), Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("watermark") && w.quote_style.is_none())
            && matches!(element.get(1), Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("for"));
        if is_watermark {
            let mut wc = Cursor {
                toks: element,
                pos: 2,
            };
            let column = wc.ident()?;
            wc.expect_word("as")?;
            let expr = join(&wc.toks[wc.pos..]);
            if expr.is_empty() {
                return Err(Error::Syntax("WATERMARK FOR needs AS <expression>".into()));
            }
            if watermark.is_some() {
                return Err(Error::Syntax("only one WATERMARK per source".into()));
            }
            watermark = Some((column, expr));
        } else {
            columns.push(join(&element));
        }
    }
    if columns.is_empty() {
        return Err(Error::Syntax("a source needs at least one column".into()));
    }
    let create = format!("CREATE TABLE {quoted_name} ({})", columns.join(", "));
    let statement = Parser::parse_sql(&PostgreSqlDialect {}, &create)
        .map_err(|e| Error::Syntax(e.to_string()))?
        .pop()
        .ok_or_else(|| Error::Syntax("empty column list".into()))?;
    let datafusion::sql::sqlparser::ast::Statement::CreateTable(create) = statement else {
        return Err(Error::Syntax("invalid column list".into()));
    };
    let jsonb_columns = create
        .columns
        .iter()
        .filter(|col| {
            let t = col.data_type.to_string().to_ascii_lowercase();
            t == "json" || t == "jsonb"
        })
        .map(|col| crate::sql::ddl::ident_name(&col.name))
        .collect();
    let table = table_def(&create)?;
    if let Some((column, _)) = &watermark
        && table.schema.field_by_name(column).is_none()
    {
        return Err(Error::UndefinedColumn(format!(
            "column \"{column}\" named in WATERMARK FOR does not exist"
        )));
    }

    let mut includes = Vec::new();
    let mut options = BTreeMap::new();
    let mut format = None;
    while let Some(t) = c.peek().cloned() {
        if c.eat_word("include") {
            let word = c.ident()?;
            let kind = match word.as_str() {
                "partition" => IncludeKind::Partition,
                "offset" => IncludeKind::Offset,
                "timestamp" => IncludeKind::Timestamp,
                "key" => IncludeKind::Key,
                "header" | "headers" => match c.peek() {
                    Some(Token::SingleQuotedString(s)) => {
                        let s = s.clone();
                        c.next();
                        IncludeKind::Header(s)
                    }
                    _ => IncludeKind::Headers,
                },
                other => {
                    return Err(Error::Syntax(format!(
                        "unknown INCLUDE \"{other}\"; valid: partition, offset, timestamp, key, header"
                    )));
                }
            };
            let column = if c.eat_word("as") {
                c.ident()?
            } else {
                match &kind {
                    IncludeKind::Partition => "_rw_kafka_partition".into(),
                    IncludeKind::Offset => "_rw_kafka_offset".into(),
                    IncludeKind::Timestamp => "_rw_kafka_timestamp".into(),
                    IncludeKind::Key => "_rw_key".into(),
                    IncludeKind::Headers => "_rw_kafka_header".into(),
                    IncludeKind::Header(h) => format!("_rw_kafka_header_{h}"),
                }
            };
            includes.push(Include { kind, column });
        } else if c.eat_word("with") {
            c.expect(Token::LParen)?;
            options = parse_options(c.balanced()?)?;
        } else if c.eat_word("format") {
            let fmt = c.ident()?;
            c.expect_word("encode")?;
            let encode = c.ident()?;
            let opts = if matches!(c.peek(), Some(Token::LParen)) {
                c.next();
                parse_options(c.balanced()?)?
            } else {
                BTreeMap::new()
            };
            format = Some(FormatSpec {
                format: fmt,
                encode,
                options: opts,
            });
        } else {
            return Err(Error::Syntax(format!(
                "unexpected {t}; expected INCLUDE, WITH (…) or FORMAT … ENCODE …"
            )));
        }
    }
    if options.is_empty() {
        return Err(Error::Syntax(
            "a source needs WITH (connector = '…', …)".into(),
        ));
    }
    Ok(SourceDef {
        is_table,
        if_not_exists,
        table,
        jsonb_columns,
        watermark,
        includes,
        options,
        format,
    })
}

/// `key = value, …` with dotted or quoted keys and literal values.
fn parse_options(toks: Vec<Token>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for part in split_commas(toks) {
        let eq = part
            .iter()
            .position(|t| *t == Token::Eq)
            .ok_or_else(|| Error::Syntax(format!("expected key = value, found {}", join(&part))))?;
        let key: String = part[..eq]
            .iter()
            .map(|t| match t {
                Token::Word(w) => w.value.to_ascii_lowercase(),
                Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let value = match &part[eq + 1..] {
            [Token::SingleQuotedString(s)] => s.clone(),
            [Token::Number(n, _)] => n.clone(),
            [Token::Minus, Token::Number(n, _)] => format!("-{n}"),
            [Token::Word(w)] => w.value.clone(),
            other => {
                return Err(Error::Syntax(format!(
                    "option {key}: expected a literal value, found {}",
                    join(other)
                )));
            }
        };
        if key.is_empty() {
            return Err(Error::Syntax("empty option name".into()));
        }
        if out.insert(key.clone(), value).is_some() {
            return Err(Error::Syntax(format!("option {key} given twice")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_example_of_sql_md() {
        let sql = "CREATE SOURCE trades (
            trade_id VARCHAR, amount NUMERIC(12,2), ts TIMESTAMPTZ, doc JSONB,
            WATERMARK FOR ts AS ts - INTERVAL '5 seconds')
        INCLUDE partition AS kafka_partition
        INCLUDE offset AS kafka_offset
        INCLUDE header 'trace' AS trace
        INCLUDE key
        WITH (connector = 'kafka', topic = 'trades',
              properties.bootstrap.server = '127.0.0.1:9092', scan.startup.mode = 'earliest',
              scan.startup.timestamp.millis = 1767225600000)
        FORMAT PLAIN ENCODE CSV (delimiter = '|', without_header = 'true');";
        assert!(is_source_ddl(sql));
        let def = parse(sql).unwrap();
        assert!(!def.is_table);
        assert_eq!(def.name(), "trades");
        assert_eq!(def.table.schema.as_struct().fields().len(), 4);
        assert_eq!(def.jsonb_columns, vec!["doc".to_string()]);
        assert_eq!(def.watermark.as_ref().unwrap().0, "ts");
        assert_eq!(def.includes.len(), 4);
        assert_eq!(def.includes[2].kind, IncludeKind::Header("trace".into()));
        assert_eq!(def.includes[3].column, "_rw_key");
        assert_eq!(def.connector(), Some("kafka"));
        assert_eq!(
            def.options.get("properties.bootstrap.server").unwrap(),
            "127.0.0.1:9092"
        );
        assert_eq!(
            def.options.get("scan.startup.timestamp.millis").unwrap(),
            "1767225600000"
        );
        let f = def.format.unwrap();
        assert_eq!((f.format.as_str(), f.encode.as_str()), ("plain", "csv"));
        assert_eq!(f.options.get("delimiter").unwrap(), "|");
    }

    #[test]
    fn connector_tables_are_recognized_and_plain_tables_are_not() {
        assert!(is_source_ddl(
            "create table t (a int) with (connector='kafka', topic='x') format plain encode json"
        ));
        assert!(!is_source_ddl("create table t (a int)"));
        assert!(!is_source_ddl("create table t (connector int)"));
        assert!(!is_source_ddl("create materialized view v as select 1"));
    }

    #[test]
    fn bad_statements_say_what_is_wrong() {
        let e = parse("create source s with (connector='kafka')").unwrap_err();
        assert!(e.to_string().contains("column list"), "{e}");
        let e = parse("create source s (a int)").unwrap_err();
        assert!(e.to_string().contains("WITH"), "{e}");
        let e =
            parse("create source s (a int) include bogus with (connector='kafka')").unwrap_err();
        assert!(e.to_string().contains("valid: partition"), "{e}");
        let e = parse("create source s (a int, watermark for b as b) with (connector='kafka')")
            .unwrap_err();
        assert!(e.to_string().contains("\"b\""), "{e}");
    }
}
