//! The statements streamlake answers itself, ahead of DataFusion.
//!
//! datafusion-postgres runs every statement through a list of hooks before
//! handing it to DataFusion. This hook takes DDL (CREATE/DROP TABLE and
//! MATERIALIZED VIEW), COPY, SHOW TABLES, DEALLOCATE, and the DML
//! statements (INSERT/UPDATE/DELETE), which DataFusion plans and our table
//! sinks execute, so that the client gets PostgreSQL's command tags
//! (`INSERT 0 3`, `UPDATE 2`) rather than a `count` result set.
//!
//! Both protocols go through one `LakeHook::dispatch`: a simple Query, and
//! an Execute of a statement prepared with Parse/Bind (tokio-postgres,
//! pgjdbc, psycopg with `prepare=True`), do the same thing and answer with
//! the same tag or SQLSTATE. `sqllogictest` runs every file both ways.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, UInt64Array};
use datafusion::common::ParamValues;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{EmptyRelation, Expr, LogicalPlan, WriteOp};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Ident, ObjectType, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe;
use datafusion_postgres::hooks::HookClient;
use pgwire::api::ClientInfo;
use pgwire::api::portal::Format;
use pgwire::api::results::{Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::error::PgWireResult;

use crate::catalog::Lake;
use crate::error::{Error, Result};
use crate::server::copy;
use crate::server::errors::to_pg;
use crate::sql::ddl;

/// Routes DDL, DML and COPY to the lake.
pub struct LakeHook {
    pub lake: Arc<Lake>,
}

const SHOW_TABLES: &str = "SELECT table_name AS name FROM information_schema.tables \
     WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name";

fn empty_plan() -> LogicalPlan {
    LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(datafusion::common::DFSchema::empty()),
    })
}

impl LakeHook {
    async fn create_table(&self, statement: &Statement) -> Result<Response> {
        let Statement::CreateTable(create) = statement else {
            return Err(Error::Internal("not a CREATE TABLE".into()));
        };
        if create.query.is_some() {
            return Err(Error::FeatureNotSupported(
                "CREATE TABLE … AS is not supported yet; use CREATE TABLE then INSERT … SELECT"
                    .into(),
            ));
        }
        if create.external || create.temporary {
            return Err(Error::FeatureNotSupported(
                "EXTERNAL and TEMPORARY tables are not supported".into(),
            ));
        }
        let def = ddl::table_def(create)?;
        self.lake.create_table(def, create.if_not_exists).await?;
        Ok(Response::Execution(Tag::new("CREATE TABLE")))
    }

    async fn drop_tables(&self, statement: &Statement) -> Result<Response> {
        let Statement::Drop {
            names,
            if_exists,
            object_type,
            cascade,
            ..
        } = statement
        else {
            return Err(Error::Internal("not a DROP".into()));
        };
        if *object_type == ObjectType::MaterializedView {
            for name in names {
                let (_, view) = ddl::table_name(name)?;
                self.lake.drop_view(&view, *if_exists, *cascade).await?;
            }
            return Ok(Response::Execution(Tag::new("DROP MATERIALIZED VIEW")));
        }
        for name in names {
            let (schema, table) = ddl::table_name(name)?;
            self.lake.drop_table(&schema, &table, *if_exists).await?;
        }
        Ok(Response::Execution(Tag::new("DROP TABLE")))
    }

    async fn create_view(&self, statement: &Statement, ctx: &SessionContext) -> Result<Response> {
        let (name, query, if_not_exists) = view_definition(statement)?;
        self.lake
            .create_view(&name, &query, if_not_exists, ctx, None)
            .await?;
        Ok(Response::Execution(Tag::new("CREATE MATERIALIZED VIEW")))
    }

    /// `EXPLAIN CREATE MATERIALIZED VIEW …`: the streaming plan as rows of
    /// one text column, like PostgreSQL's EXPLAIN.
    async fn explain_view(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
    ) -> Result<datafusion::dataframe::DataFrame> {
        let Statement::Explain { statement, .. } = statement else {
            return Err(Error::Internal("not an EXPLAIN".into()));
        };
        let (name, query, _) = view_definition(statement)?;
        let lines = self.lake.explain_view(&name, &query, ctx).await?;
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
            datafusion::arrow::datatypes::Field::new(
                "QUERY PLAN",
                datafusion::arrow::datatypes::DataType::Utf8,
                false,
            ),
        ]));
        let batch = datafusion::arrow::array::RecordBatch::try_new(
            schema,
            vec![Arc::new(datafusion::arrow::array::StringArray::from(lines))],
        )?;
        Ok(ctx.read_batch(batch)?)
    }
}

/// A CREATE MATERIALIZED VIEW's name, query (with `EMIT ON WINDOW CLOSE`
/// appended when the option says so) and IF NOT EXISTS.
fn view_definition(statement: &Statement) -> Result<(String, String, bool)> {
    {
        let Statement::CreateView(create) = statement else {
            return Err(Error::FeatureNotSupported(
                "EXPLAIN of this statement is not supported; EXPLAIN a query or a CREATE MATERIALIZED VIEW".into(),
            ));
        };
        if !create.materialized {
            return Err(Error::FeatureNotSupported(
                "CREATE VIEW is not supported; use CREATE MATERIALIZED VIEW".into(),
            ));
        }
        let mut emit_on_close = false;
        if let datafusion::sql::sqlparser::ast::CreateTableOptions::With(options) = &create.options
        {
            for o in options {
                match o {
                    datafusion::sql::sqlparser::ast::SqlOption::KeyValue { key, value }
                        if key
                            .value
                            .eq_ignore_ascii_case(crate::sql::view_plan::EMIT_ON_CLOSE_OPTION) =>
                    {
                        emit_on_close = value.to_string().eq_ignore_ascii_case("true");
                    }
                    other => {
                        return Err(Error::FeatureNotSupported(format!(
                            "materialized view option {other} is not supported"
                        )));
                    }
                }
            }
        } else if !matches!(
            create.options,
            datafusion::sql::sqlparser::ast::CreateTableOptions::None
        ) {
            return Err(Error::FeatureNotSupported(
                "these materialized view options are not supported".into(),
            ));
        }
        if create.or_replace || !create.columns.is_empty() {
            return Err(Error::FeatureNotSupported(
                "OR REPLACE and column lists on materialized views are not supported yet".into(),
            ));
        }
        let (schema, name) = ddl::table_name(&create.name)?;
        if schema != "public" {
            return Err(Error::FeatureNotSupported(format!(
                "schema \"{schema}\" does not exist; only \"public\" is supported"
            )));
        }
        let mut query = create.query.to_string();
        if emit_on_close {
            query.push_str(" EMIT ON WINDOW CLOSE");
        }
        Ok((name, query, create.if_not_exists))
    }
}

/// `EXPLAIN CREATE [MATERIALIZED] VIEW …`.
fn is_explain_view(statement: &Statement) -> bool {
    matches!(statement, Statement::Explain { statement, .. } if matches!(statement.as_ref(), Statement::CreateView(_)))
}

impl LakeHook {
    async fn run_dml(
        &self,
        statement: &Statement,
        plan: LogicalPlan,
        ctx: &SessionContext,
    ) -> Result<Response> {
        check_dml(&plan)?;
        let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
        let rows = batches
            .first()
            .and_then(|b| b.column(0).as_any().downcast_ref::<UInt64Array>().cloned())
            .filter(|a| !a.is_empty())
            .map_or(0, |a| a.value(0)) as usize;
        let tag = match statement {
            Statement::Insert(_) => Tag::new("INSERT").with_oid(0).with_rows(rows),
            Statement::Update(_) => Tag::new("UPDATE").with_rows(rows),
            _ => Tag::new("DELETE").with_rows(rows),
        };
        Ok(Response::Execution(tag))
    }

    async fn show_tables(&self, ctx: &SessionContext, format: &Format) -> Result<Response> {
        let df = ctx.sql(SHOW_TABLES).await?;
        encode_dataframe(df, format, None)
            .await
            .map(Response::Query)
            .map_err(|e| Error::Internal(format!("encoding SHOW TABLES: {e}")))
    }

    async fn plan(ctx: &SessionContext, statement: &Statement) -> Result<LogicalPlan> {
        Ok(ctx
            .state()
            .statement_to_plan(DFStatement::Statement(Box::new(statement.clone())))
            .await?)
    }
}

impl LakeHook {
    /// Runs one statement outside a client session (scripts, tests).
    pub async fn execute(&self, statement: &Statement, ctx: &SessionContext) -> Result<()> {
        match statement {
            Statement::CreateTable(_) => self.create_table(statement).await.map(|_| ()),
            Statement::CreateView(_) => self.create_view(statement, ctx).await.map(|_| ()),
            s if is_drop_table(s) => self.drop_tables(statement).await.map(|_| ()),
            s if is_dml(s) => {
                let plan = Self::plan(ctx, statement).await?;
                self.run_dml(statement, plan, ctx).await.map(|_| ())
            }
            _ => {
                let plan = Self::plan(ctx, statement).await?;
                ctx.execute_logical_plan(plan).await?.collect().await?;
                Ok(())
            }
        }
    }
}

/// SAVEPOINT, RELEASE and ROLLBACK TO: accepted so drivers that wrap
/// statements in savepoints (psycopg, SQLAlchemy) work. Statements commit
/// one by one (see docs/guide.md, Transactions), so there is nothing to roll back to; a
/// ROLLBACK TO leaves a failed transaction block usable again, as in
/// PostgreSQL.
pub struct SavepointHook;

#[async_trait]
impl QueryHook for SavepointHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        use pgwire::messages::response::TransactionStatus;
        match statement {
            Statement::Savepoint { .. } => Some(Ok(Response::Execution(Tag::new("SAVEPOINT")))),
            Statement::ReleaseSavepoint { .. } => {
                Some(Ok(Response::Execution(Tag::new("RELEASE"))))
            }
            Statement::Rollback {
                savepoint: Some(_), ..
            } => {
                if client.transaction_status() == TransactionStatus::Error {
                    client.set_transaction_status(TransactionStatus::Transaction);
                }
                Some(Ok(Response::Execution(Tag::new("ROLLBACK"))))
            }
            _ => None,
        }
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match statement {
            Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::Rollback {
                savepoint: Some(_), ..
            } => Some(Ok(empty_plan())),
            _ => None,
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.handle_simple_query(statement, ctx, client).await
    }
}

/// `DEALLOCATE name | ALL` for statements prepared with the extended
/// protocol's Parse: how psycopg (and others) drop their named statements,
/// and what psycopg sends after any DROP. DataFusion's own DEALLOCATE only
/// knows statements made with SQL PREPARE, so a name that is not in the
/// session's store goes on to it (`None`, see [`sql_prepared`]).
///
/// pgwire's statement store cannot list its names, so DEALLOCATE ALL
/// leaves the session's statements in place: a client only ever re-Parses
/// a name, which replaces the statement, so none is used stale. SQL
/// PREPAREd statements live in DataFusion's context, which every session
/// shares, so ALL leaves those alone too.
fn deallocate(name: &Ident, client: &mut dyn HookClient) -> Option<Result<Response>> {
    if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
        return Some(Ok(Response::Execution(Tag::new("DEALLOCATE ALL"))));
    }
    let store = client.portal_store();
    store.get_statement(&name.value)?;
    store.rm_statement(&name.value);
    Some(Ok(Response::Execution(Tag::new("DEALLOCATE"))))
}

/// SQL PREPARE, and DEALLOCATE of a SQL-prepared name: DataFusion keeps
/// these; this gives them PostgreSQL's command tag on both protocols
/// (DataFusion answers an empty result set over the simple one).
async fn sql_prepared(statement: &Statement, ctx: &SessionContext, tag: &str) -> Result<Response> {
    ctx.sql(&statement.to_string()).await?.collect().await?;
    Ok(Response::Execution(Tag::new(tag)))
}

fn is_dml(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_)
    )
}

fn is_drop_table(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Drop {
            object_type: ObjectType::Table | ObjectType::MaterializedView,
            ..
        }
    )
}

/// Refuses UPDATE/DELETE shapes whose filters DataFusion cannot hand to the
/// table (subqueries, joins): without this, a filter that is not passed down
/// would turn a targeted DELETE into a DELETE of every row.
fn check_dml(plan: &LogicalPlan) -> Result<()> {
    let LogicalPlan::Dml(dml) = plan else {
        return Ok(());
    };
    if !matches!(dml.op, WriteOp::Update | WriteOp::Delete) {
        return Ok(());
    }
    let mut refused: Option<String> = None;
    dml.input.apply(|node| {
        match node {
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::TableScan(_)
            | LogicalPlan::SubqueryAlias(_) => {}
            other => {
                refused = Some(format!("{} in UPDATE/DELETE", other.display()));
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        node.apply_expressions(|e| {
            if e.exists(|x| {
                Ok(matches!(
                    x,
                    Expr::Exists(_) | Expr::InSubquery(_) | Expr::ScalarSubquery(_)
                ))
            })? {
                refused = Some("subqueries in UPDATE/DELETE".into());
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })
    })?;
    match refused {
        Some(what) => Err(Error::FeatureNotSupported(format!(
            "{what} are not supported yet"
        ))),
        None => Ok(()),
    }
}

/// A statement as the extended protocol prepared it: the plan made at Parse
/// and the values bound at Bind.
#[derive(Clone, Copy)]
struct Prepared<'a> {
    plan: &'a LogicalPlan,
    params: &'a ParamValues,
}

impl LakeHook {
    /// The one dispatch both protocols go through, so that a statement does
    /// exactly the same thing — same effect, command tag and SQLSTATE —
    /// whether it came as a simple Query or as Parse/Bind/Execute. `None`:
    /// not ours, DataFusion runs it.
    async fn dispatch(
        &self,
        statement: &Statement,
        prepared: Option<Prepared<'_>>,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<Result<Response>> {
        Some(match statement {
            Statement::CreateTable(_) => self.create_table(statement).await,
            Statement::CreateView(_) => self.create_view(statement, ctx).await,
            s if is_drop_table(s) => self.drop_tables(statement).await,
            s if is_dml(s) => {
                let plan = match prepared {
                    Some(p) => p
                        .plan
                        .clone()
                        .replace_params_with_values(p.params)
                        .map_err(Error::from),
                    None => Self::plan(ctx, statement).await,
                };
                match plan {
                    Ok(plan) => self.run_dml(statement, plan, ctx).await,
                    Err(e) => Err(e),
                }
            }
            Statement::Copy { .. } => copy::start(&self.lake, statement, ctx, client).await,
            Statement::Deallocate { name, .. } => match deallocate(name, client) {
                Some(done) => done,
                None => sql_prepared(statement, ctx, "DEALLOCATE").await,
            },
            Statement::Prepare { .. } => sql_prepared(statement, ctx, "PREPARE").await,
            // DataFusion would make these in its in-memory catalog: gone at
            // restart, and DROP SCHEMA public would unhook every table.
            Statement::CreateSchema { .. }
            | Statement::CreateDatabase { .. }
            | Statement::Drop {
                object_type: ObjectType::Schema | ObjectType::Database,
                ..
            } => Err(Error::FeatureNotSupported(
                "schemas and databases cannot be created or dropped; tables live in \"public\""
                    .into(),
            )),
            // Prepared, SHOW TABLES is the plan made at Parse (see
            // `parse`), run by datafusion-postgres in the result format
            // the client bound.
            s if is_explain_view(s) && prepared.is_some() => return None,
            s if is_explain_view(s) => match self.explain_view(s, ctx).await {
                Ok(df) => encode_dataframe(df, &Format::UnifiedText, None)
                    .await
                    .map(Response::Query)
                    .map_err(|e| Error::Internal(format!("encoding EXPLAIN: {e}"))),
                Err(e) => Err(e),
            },
            Statement::ShowTables { .. } if prepared.is_some() => return None,
            Statement::ShowTables { .. } => self.show_tables(ctx, &Format::UnifiedText).await,
            _ => return None,
        })
    }

    /// The plan a Parse message gets for the statements [`Self::dispatch`]
    /// runs itself: none worth having for DDL, COPY, PREPARE and DEALLOCATE
    /// (they have no parameters and no result columns), the real query for
    /// SHOW TABLES and SQL EXECUTE. DML is planned by DataFusion, so its
    /// parameters get their types.
    async fn parse(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
    ) -> Option<Result<LogicalPlan>> {
        match statement {
            Statement::CreateTable(_)
            | Statement::CreateView(_)
            | Statement::Copy { .. }
            | Statement::Prepare { .. }
            | Statement::Deallocate { .. }
            | Statement::CreateSchema { .. }
            | Statement::CreateDatabase { .. } => Some(Ok(empty_plan())),
            Statement::Drop {
                object_type: ObjectType::Schema | ObjectType::Database,
                ..
            } => Some(Ok(empty_plan())),
            s if is_drop_table(s) => Some(Ok(empty_plan())),
            Statement::ShowTables { .. } => Some(
                async { Ok::<_, Error>(ctx.sql(SHOW_TABLES).await?.logical_plan().clone()) }.await,
            ),
            s if is_explain_view(s) => Some(
                async { Ok::<_, Error>(self.explain_view(s, ctx).await?.logical_plan().clone()) }
                    .await,
            ),
            // Planned as the statement it runs, so that Describe announces
            // its columns (DataFusion's EXECUTE plan has none, and its rows
            // then arrived without a RowDescription).
            Statement::Execute { .. } => Some(
                async {
                    Ok::<_, Error>(
                        ctx.sql(&statement.to_string())
                            .await?
                            .logical_plan()
                            .clone(),
                    )
                }
                .await,
            ),
            _ => None,
        }
    }
}

#[async_trait]
impl QueryHook for LakeHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let result = self.dispatch(statement, None, ctx, client).await?;
        Some(result.map_err(to_pg))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        let result = self.parse(statement, ctx).await?;
        Some(result.map_err(to_pg))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        plan: &LogicalPlan,
        params: &ParamValues,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let prepared = Prepared { plan, params };
        let result = self
            .dispatch(statement, Some(prepared), ctx, client)
            .await?;
        Some(result.map_err(to_pg))
    }
}
