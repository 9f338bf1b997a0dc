//! streamlake patch: rewrite rules for SQL that clients send and DataFusion
//! cannot plan as written.
//!
//! - [`RewriteRegCasts`]: `'t'::regclass`, `to_regclass(x)`, `'numeric'::regtype`,
//!   `to_regtype(x)` become OID lookups in pg_class / pg_type, and
//!   `oid::regtype::text` becomes `format_type(oid, -1)`, and
//!   `pg_table_is_visible(oid)` tests the schemas on the search path.
//! - [`AliasRepeatedOutputNames`]: unaliased select-list expressions get the
//!   names PostgreSQL gives them (`count`, `current_user`, `?column?`, not
//!   DataFusion's `count(*)`); and a select list may repeat an output name
//!   in PostgreSQL (`SELECT i, i`, `SELECT current_user, session_user`) but
//!   not in DataFusion, so repeats get a unique alias that the wire encoder
//!   trims back to the PostgreSQL name.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    DataType, Expr, OrderByKind, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Query, SelectItem,
    SetExpr, Statement, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::rules::SqlStatementRewriteRule;

/// The OID of a relation named by text (`[schema.]name`), NULL if none.
const REGCLASS_LOOKUP: &str = "SELECT min(c.oid)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN (SELECT parse_ident(CAST(__name AS TEXT)) AS parts) p
WHERE n.nspname = COALESCE(
    CASE WHEN array_length(p.parts, 1) > 1 THEN p.parts[1] END,
    current_schema()
)
AND c.relname = p.parts[-1]";

/// Relations on the search path (`pg_table_is_visible`): public and
/// pg_catalog, not information_schema.
const VISIBLE_RELATIONS: &str = "SELECT c.oid
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('public', 'pg_catalog')";

/// The defining query of a (materialized) view by OID, NULL for others.
const VIEW_DEFINITION: &str = "SELECT max(v.definition)
FROM pg_catalog.pg_matviews v
JOIN pg_catalog.pg_namespace n ON n.nspname = v.schemaname
JOIN pg_catalog.pg_class c ON c.relname = v.matviewname AND c.relnamespace = n.oid
WHERE c.oid = CAST(__name AS INT)";

/// The OID of a type named by text (`int4` or `integer`), NULL if none.
const REGTYPE_LOOKUP: &str = "SELECT min(t.oid)
FROM pg_catalog.pg_type t
WHERE t.typname = lower(CAST(__name AS TEXT))
   OR format_type(t.oid, -1) = lower(CAST(__name AS TEXT))";

fn parse_query(sql: &str) -> Box<Query> {
    match Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .expect("lookup query parses")
        .remove(0)
    {
        Statement::Query(q) => q,
        _ => unreachable!("lookup is a query"),
    }
}

/// Replaces the identifier `__name` in a lookup query with an expression.
struct NameReplacer(Expr);

impl VisitorMut for NameReplacer {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if matches!(e, Expr::Identifier(i) if i.value == "__name") {
            *e = self.0.clone();
        }
        ControlFlow::Continue(())
    }
}

#[derive(Debug)]
pub struct RewriteRegCasts {
    regclass: Box<Query>,
    regtype: Box<Query>,
    visible: Box<Query>,
    viewdef: Box<Query>,
}

impl Default for RewriteRegCasts {
    fn default() -> Self {
        Self::new()
    }
}

impl RewriteRegCasts {
    pub fn new() -> Self {
        Self {
            regclass: parse_query(REGCLASS_LOOKUP),
            regtype: parse_query(REGTYPE_LOOKUP),
            visible: parse_query(VISIBLE_RELATIONS),
            viewdef: parse_query(VIEW_DEFINITION),
        }
    }
}

/// `regclass`, `pg_catalog.regtype`, … lower-cased without the schema.
fn type_name(data_type: &DataType) -> String {
    let name = data_type.to_string().to_lowercase();
    name.strip_prefix("pg_catalog.").unwrap_or(&name).to_string()
}

/// A value known before planning: a string literal or a parameter,
/// possibly cast to text.
fn is_name_value(e: &Expr) -> bool {
    match e {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(_) | Value::Placeholder(_),
            ..
        }) => true,
        Expr::Cast {
            expr, data_type, ..
        } => {
            matches!(type_name(data_type).as_str(), "text" | "varchar" | "name")
                && is_name_value(expr)
        }
        Expr::Nested(e) => is_name_value(e),
        _ => false,
    }
}

fn single_arg(args: &FunctionArguments) -> Option<Expr> {
    first_arg(args, 1)
}

/// The first argument of a call with 1..=max arguments.
fn first_arg(args: &FunctionArguments, max: usize) -> Option<Expr> {
    match args {
        FunctionArguments::List(list) if (1..=max).contains(&list.args.len()) => match &list.args[0] {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn escape_value(v: &Value) -> Option<char> {
    match v {
        Value::SingleQuotedString(s) if s.chars().count() == 1 => s.chars().next(),
        _ => None,
    }
}

/// A LIKE pattern with escape character `esc`, rewritten for the backslash.
fn backslash_escaped(pattern: &str, esc: char) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(ch) = chars.next() {
        if ch == esc {
            match chars.next() {
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push(ch),
            }
        } else if ch == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(ch);
        }
    }
    out
}

struct RegCastVisitor<'a>(&'a RewriteRegCasts);

impl RegCastVisitor<'_> {
    fn lookup(&self, template: &Query, name: Expr) -> Expr {
        let mut query = Box::new(template.clone());
        let _ = query.visit(&mut NameReplacer(name));
        Expr::Subquery(query)
    }

    fn format_type(oid: Expr) -> Expr {
        let mut call = match Parser::new(&PostgreSqlDialect {})
            .try_with_sql("format_type(__name, -1)")
            .and_then(|mut p| p.parse_expr())
        {
            Ok(e) => e,
            Err(_) => unreachable!("format_type call parses"),
        };
        let _ = call.visit(&mut NameReplacer(oid));
        call
    }
}

impl VisitorMut for RegCastVisitor<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let replacement = match expr {
            // x::regtype::text → format_type(x, -1)
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } if matches!(type_name(data_type).as_str(), "text" | "varchar" | "name") => {
                match inner.as_ref() {
                    Expr::Cast {
                        expr: oid,
                        data_type: reg,
                        ..
                    } if type_name(reg) == "regtype" => {
                        let oid = if is_name_value(oid) {
                            self.lookup(&self.0.regtype, (**oid).clone())
                        } else {
                            (**oid).clone()
                        };
                        Some(Self::format_type(oid))
                    }
                    _ => None,
                }
            }
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } if is_name_value(inner) => match type_name(data_type).as_str() {
                "regclass" => Some(self.lookup(&self.0.regclass, (**inner).clone())),
                "regtype" => Some(self.lookup(&self.0.regtype, (**inner).clone())),
                _ => None,
            },
            // DataFusion's LIKE takes no escape character but the backslash:
            // a constant pattern is rewritten to use it.
            Expr::Like {
                pattern,
                escape_char,
                ..
            }
            | Expr::ILike {
                pattern,
                escape_char,
                ..
            } => {
                if let Some(c) = escape_char.as_ref().and_then(escape_value)
                    && c != '\\'
                    && let Expr::Value(ValueWithSpan {
                        value: Value::SingleQuotedString(p),
                        ..
                    }) = pattern.as_ref()
                {
                    let p = backslash_escaped(p, c);
                    **pattern = Expr::Value(Value::SingleQuotedString(p).with_empty_span());
                    *escape_char = None;
                }
                None
            }
            Expr::Function(f) => {
                let name = f.name.to_string().to_lowercase();
                let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
                if name == "pg_get_viewdef"
                    && let Some(oid) = first_arg(&f.args, 2)
                {
                    // Nested: RemoveSubqueryFromProjection turns a correlated
                    // subquery that is a whole select-list item into NULL.
                    *expr = Expr::Nested(Box::new(self.lookup(&self.0.viewdef, oid)));
                    return ControlFlow::Continue(());
                }
                match (name, single_arg(&f.args)) {
                    ("to_regclass", Some(arg)) => Some(self.lookup(&self.0.regclass, arg)),
                    ("to_regtype", Some(arg)) => Some(self.lookup(&self.0.regtype, arg)),
                    ("pg_table_is_visible", Some(arg)) => Some(Expr::InSubquery {
                        expr: Box::new(arg),
                        subquery: self.0.visible.clone(),
                        negated: false,
                    }),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(r) = replacement {
            *expr = r;
        }
        ControlFlow::Continue(())
    }
}

impl SqlStatementRewriteRule for RewriteRegCasts {
    fn rewrite(&self, mut s: Statement) -> Statement {
        // A rewritten select-list item keeps the name PostgreSQL gives the
        // original (DataFusion would name every lookup `(<subquery>)`).
        if let Statement::Query(q) = &mut s
            && let SetExpr::Select(select) = q.body.as_mut()
        {
            let mut used: HashMap<String, usize> = HashMap::new();
            for item in select.projection.iter_mut() {
                if let SelectItem::ExprWithAlias { alias, .. } = item {
                    *used.entry(fold(alias)).or_default() += 1;
                }
            }
            for item in select.projection.iter_mut() {
                let SelectItem::UnnamedExpr(e) = item else {
                    continue;
                };
                let mut rewritten = e.clone();
                let _ = rewritten.visit(&mut RegCastVisitor(self));
                if rewritten == *e {
                    continue;
                }
                let name = output_name(e);
                let n = used.entry(name.clone()).or_default();
                let alias = if *n == 0 {
                    name
                } else {
                    format!("{name}{}{n}", arrow_pg::pg_text::DUPLICATE_NAME_MARK)
                };
                *n += 1;
                *item = SelectItem::ExprWithAlias {
                    expr: rewritten,
                    alias: Ident::with_quote('"', alias),
                };
            }
        }
        let _ = s.visit(&mut RegCastVisitor(self));
        s
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct AliasRepeatedOutputNames;

/// The name PostgreSQL gives an unaliased select-list expression.
fn output_name(e: &Expr) -> String {
    let (name, strength) = figure_colname(e);
    if strength == 0 {
        "?column?".into()
    } else {
        name
    }
}

/// PostgreSQL's FigureColname: a name and its strength (2 for columns and
/// functions, 1 for type names and CASE, 0 for none). A cast takes its
/// type's name unless its operand has a strong one.
fn figure_colname(e: &Expr) -> (String, u8) {
    match e {
        Expr::Identifier(i) => (fold(i), 2),
        Expr::CompoundIdentifier(parts) => (parts.last().map(fold).unwrap_or_default(), 2),
        Expr::Function(f) => match f.name.0.last().and_then(|p| p.as_ident()) {
            Some(i) => (fold(i), 2),
            None => (String::new(), 0),
        },
        Expr::Cast {
            expr, data_type, ..
        } => match figure_colname(expr) {
            strong @ (_, 2) => strong,
            _ => (type_output_name(data_type), 1),
        },
        Expr::Nested(expr) => figure_colname(expr),
        Expr::Case { .. } => ("case".into(), 1),
        Expr::Exists { .. } => ("exists".into(), 2),
        // A scalar subquery is named after its one column.
        Expr::Subquery(q) => match q.body.as_ref() {
            SetExpr::Select(select) => match select.projection.first() {
                Some(SelectItem::UnnamedExpr(e)) => figure_colname(e),
                Some(SelectItem::ExprWithAlias { alias, .. }) => (fold(alias), 2),
                _ => (String::new(), 0),
            },
            _ => (String::new(), 0),
        },
        Expr::Array(_) => ("array".into(), 2),
        Expr::Substring { .. } => ("substring".into(), 2),
        Expr::Extract { .. } => ("extract".into(), 2),
        Expr::Position { .. } => ("position".into(), 2),
        Expr::Ceil { .. } => ("ceil".into(), 2),
        Expr::Floor { .. } => ("floor".into(), 2),
        _ => (String::new(), 0),
    }
}

/// PostgreSQL's internal name of a type, which names a cast of a constant.
fn type_output_name(data_type: &DataType) -> String {
    let name = type_name(data_type);
    let base = name.split('(').next().unwrap_or_default().trim();
    match base {
        "int" | "integer" => "int4",
        "bigint" => "int8",
        "smallint" => "int2",
        "real" => "float4",
        "double precision" | "float" => "float8",
        "boolean" => "bool",
        "character varying" => "varchar",
        "decimal" => "numeric",
        "timestamp with time zone" => "timestamptz",
        "timestamp without time zone" => "timestamp",
        other => other,
    }
    .to_string()
}

fn fold(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

fn is_column(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
}

/// Names every unaliased expression as PostgreSQL does (`count`, `upper`,
/// `?column?`), and gives repeats of a name a marked unique alias.
fn alias_select_list(items: &mut [SelectItem]) -> Vec<(Expr, Ident)> {
    let mut aliased = Vec::new();
    let mut used: HashMap<String, usize> = HashMap::new();
    for item in items.iter_mut() {
        let (name, needs_alias) = match &*item {
            SelectItem::UnnamedExpr(e) => (output_name(e), !is_column(e)),
            SelectItem::ExprWithAlias { alias, .. } => (fold(alias), false),
            _ => continue,
        };
        let n = used.entry(name.clone()).or_default();
        let alias = if *n == 0 {
            name
        } else {
            format!("{name}{}{n}", arrow_pg::pg_text::DUPLICATE_NAME_MARK)
        };
        let repeated = *n > 0;
        *n += 1;
        if !(needs_alias || repeated) {
            continue;
        }
        let expr = match &*item {
            SelectItem::UnnamedExpr(e) => e.clone(),
            SelectItem::ExprWithAlias { expr, .. } => expr.clone(),
            _ => continue,
        };
        let alias = Ident::with_quote('"', alias);
        aliased.push((expr.clone(), alias.clone()));
        *item = SelectItem::ExprWithAlias { expr, alias };
    }
    aliased
}

/// Aliases the select list of a query (of the left-most SELECT of a set
/// operation, which names its columns). Under SELECT DISTINCT, DataFusion
/// matches ORDER BY expressions to the select list by expression, so an
/// ORDER BY of an aliased expression is rewritten to the alias.
fn alias_query(query: &mut Query) {
    let mut body = query.body.as_mut();
    while let SetExpr::SetOperation { left, .. } = body {
        body = left.as_mut();
    }
    let SetExpr::Select(select) = body else {
        return;
    };
    let aliased = alias_select_list(&mut select.projection);
    if select.distinct.is_none() || aliased.is_empty() {
        return;
    }
    if let Some(OrderByKind::Expressions(exprs)) = query.order_by.as_mut().map(|o| &mut o.kind) {
        for o in exprs {
            if let Some((_, alias)) = aliased.iter().find(|(e, _)| *e == o.expr) {
                o.expr = Expr::Identifier(alias.clone());
            }
        }
    }
}

/// Every query of a statement: subqueries and CTEs name the columns that
/// `SELECT *` passes on.
struct AliasVisitor;

impl VisitorMut for AliasVisitor {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        alias_query(query);
        ControlFlow::Continue(())
    }
}

impl SqlStatementRewriteRule for AliasRepeatedOutputNames {
    fn rewrite(&self, mut s: Statement) -> Statement {
        // Not view definitions: a view's columns are named by its own
        // planner.
        match &mut s {
            Statement::Query(q) => {
                let _ = q.visit(&mut AliasVisitor);
            }
            Statement::Insert(insert) => {
                if let Some(source) = insert.source.as_mut() {
                    let _ = source.visit(&mut AliasVisitor);
                }
            }
            _ => {}
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(rule: &dyn SqlStatementRewriteRule, sql: &str) -> String {
        let s = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rule.rewrite(s).to_string()
    }

    #[test]
    fn repeated_names_get_marked_aliases() {
        let out = rewrite(&AliasRepeatedOutputNames, "SELECT i, i % 10, i FROM s");
        assert_eq!(out, "SELECT i, i % 10 AS \"?column?\", i AS \"i\u{1f}1\" FROM s");
        let out = rewrite(
            &AliasRepeatedOutputNames,
            "SELECT current_database(), current_user, session_user",
        );
        assert_eq!(
            out,
            "SELECT current_database() AS \"current_database\", current_user AS \"current_user\", session_user AS \"session_user\""
        );
    }

    #[test]
    fn like_escape_becomes_backslash() {
        assert_eq!(backslash_escaped("pg/_%", '/'), "pg\\_%");
        assert_eq!(backslash_escaped("a//b\\c", '/'), "a\\/b\\\\c");
        let out = rewrite(
            &RewriteRegCasts::new(),
            "SELECT 1 FROM t WHERE a LIKE 'x/_%' ESCAPE '/'",
        );
        assert_eq!(out, "SELECT 1 FROM t WHERE a LIKE 'x\\_%'");
    }

    #[test]
    fn regclass_literals_become_lookups() {
        let rule = RewriteRegCasts::new();
        let out = rewrite(&rule, "SELECT 1 FROM a WHERE attrelid = 't'::regclass");
        assert!(out.contains("pg_class"), "{out}");
        let out = rewrite(&rule, "SELECT oid::regtype::text FROM pg_type WHERE oid = to_regtype($1)");
        assert!(out.starts_with("SELECT format_type(oid, -1) FROM"), "{out}");
        assert!(out.contains("min(t.oid)"), "{out}");
        // A column cast to regclass is left for RemoveUnsupportedTypes.
        let out = rewrite(&rule, "SELECT c.oid::regclass FROM pg_class c");
        assert_eq!(out, "SELECT c.oid::regclass FROM pg_class c");
    }
}
