//! Sources and connector tables in the catalog: `CREATE SOURCE`, `CREATE
//! TABLE … WITH (connector = …)`, `DROP SOURCE`, their restore at start,
//! and the checkpoints that commit what connector tables staged.
//!
//! A source's definition and its start offsets (resolved at CREATE) are a
//! row of `streamlake_sources` in the catalog database; a connector
//! table's are properties of its Iceberg table. Both are re-planned from
//! the statement text at start.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema as ArrowSchema};
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
use iceberg::{NamespaceIdent, TableIdent};

use crate::catalog::source_table::{SourceKind, SourceTable};
use crate::catalog::system::ReaderEntry;
use crate::connector::decode::{Encoding, JSONB, TYPE_METADATA_KEY};
use crate::connector::kafka::options::KafkaOptions;
use crate::connector::kafka::{SourceSpec, resolve_start};
use crate::connector::watermark::WatermarkSpec;
use crate::error::{Error, Result};
use crate::sql::source_ddl::{IncludeKind, SourceDef};
use crate::storage::table::{LakeTable, WRITTEN_BY_PROPERTY};
use crate::stream::generator_source::{GeneratorSource, MakeGenerator};
use crate::stream::ingest::ConnectorIngest;
use crate::stream::kafka_source::KafkaSource;
use crate::stream::source::{Source, TableSource};

/// Table property: the `CREATE TABLE` statement of a connector table.
pub const CONNECTOR_SQL_PROPERTY: &str = "streamlake.connector.sql";
/// Table property: the start offsets resolved at CREATE (JSON).
pub const CONNECTOR_START_PROPERTY: &str = "streamlake.connector.start";

/// The Iceberg schema of a source: declared columns, then INCLUDE columns.
fn full_schema(def: &SourceDef) -> Result<Schema> {
    let mut fields: Vec<_> = def.table.schema.as_struct().fields().to_vec();
    let first_id = fields.iter().map(|f| f.id).max().unwrap_or(0) + 1;
    for (next_id, inc) in (first_id..).zip(&def.includes) {
        if fields.iter().any(|f| f.name == inc.column) {
            return Err(Error::Syntax(format!(
                "column \"{}\" specified more than once",
                inc.column
            )));
        }
        let t = match inc.kind {
            IncludeKind::Partition => PrimitiveType::Int,
            IncludeKind::Offset => PrimitiveType::Long,
            IncludeKind::Timestamp => PrimitiveType::Timestamptz,
            IncludeKind::Key | IncludeKind::Header(_) => PrimitiveType::Binary,
            IncludeKind::Headers => PrimitiveType::String,
        };
        fields.push(NestedField::optional(next_id, inc.column.clone(), Type::Primitive(t)).into());
    }
    Ok(Schema::builder().with_fields(fields).build()?)
}

/// The reader's view of a source definition.
fn spec_of(def: &SourceDef) -> Result<SourceSpec> {
    match def.connector() {
        Some("kafka") => {}
        Some(other) => {
            return Err(Error::FeatureNotSupported(format!(
                "connector '{other}' is not supported; valid: kafka, nexmark, datagen"
            )));
        }
        None => {
            return Err(Error::InvalidParameter(
                "option connector is required (connector = 'kafka')".into(),
            ));
        }
    }
    let options = KafkaOptions::parse(&def.options)?;
    let format = def.format.as_ref().ok_or_else(|| {
        Error::Syntax("a Kafka source needs FORMAT PLAIN ENCODE JSON | CSV".into())
    })?;
    if format.format != "plain" {
        return Err(Error::FeatureNotSupported(format!(
            "FORMAT {} is not supported; valid: PLAIN",
            format.format.to_uppercase()
        )));
    }
    let encoding = match format.encode.as_str() {
        "json" => {
            if let Some(k) = format.options.keys().next() {
                return Err(Error::InvalidParameter(format!(
                    "unknown ENCODE JSON option \"{k}\"; it takes none"
                )));
            }
            Encoding::Json
        }
        "csv" => {
            for k in format.options.keys() {
                if k != "delimiter" && k != "without_header" {
                    return Err(Error::InvalidParameter(format!(
                        "unknown ENCODE CSV option \"{k}\"; valid: delimiter, without_header"
                    )));
                }
            }
            let delimiter = match format.options.get("delimiter").map(String::as_bytes) {
                None => b',',
                Some([d]) => *d,
                Some(_) => {
                    return Err(Error::InvalidParameter(
                        "ENCODE CSV delimiter must be one character".into(),
                    ));
                }
            };
            let without_header = match format
                .options
                .get("without_header")
                .map(|s| s.to_lowercase())
            {
                None => false,
                Some(v) if v == "true" => true,
                Some(v) if v == "false" => false,
                Some(v) => {
                    return Err(Error::InvalidParameter(format!(
                        "ENCODE CSV without_header must be true or false, not \"{v}\""
                    )));
                }
            };
            Encoding::Csv {
                delimiter,
                without_header,
            }
        }
        other => {
            return Err(Error::FeatureNotSupported(format!(
                "ENCODE {} is not supported; valid: JSON, CSV",
                other.to_uppercase()
            )));
        }
    };
    let iceberg_schema = full_schema(def)?;
    let arrow = iceberg::arrow::schema_to_arrow_schema(&iceberg_schema)?;
    let fields: Vec<Field> = arrow
        .fields()
        .iter()
        .map(|f| {
            if def.jsonb_columns.contains(f.name()) {
                let mut md = f.metadata().clone();
                md.insert(TYPE_METADATA_KEY.into(), JSONB.into());
                f.as_ref().clone().with_metadata(md)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let schema = Arc::new(ArrowSchema::new(fields));
    let watermark = def
        .watermark
        .as_ref()
        .map(|(column, expr)| WatermarkSpec::of(column, expr, &schema))
        .transpose()?;
    Ok(SourceSpec {
        name: def.name().to_string(),
        options,
        schema,
        payload: def.table.schema.as_struct().fields().len(),
        includes: def.includes.iter().map(|i| i.kind.clone()).collect(),
        encoding,
        watermark,
    })
}

/// A generator factory for a nexmark/datagen source, its options checked
/// by making one now.
fn generator_of(def: &SourceDef) -> Result<MakeGenerator> {
    let schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&def.table.schema)?);
    let options = def.options.clone();
    let nexmark = def.connector() == Some("nexmark");
    let make: MakeGenerator = Arc::new(move || {
        if nexmark {
            crate::connector::generator::nexmark(&options, schema.clone())
        } else {
            crate::connector::generator::datagen(&options, schema.clone())
        }
    });
    make()?;
    Ok(make)
}

/// A generator source's `WATERMARK FOR` (against its declared columns, the
/// rows it produces) and idle timeout.
fn generator_watermark(def: &SourceDef) -> Result<(Option<WatermarkSpec>, std::time::Duration)> {
    let schema = iceberg::arrow::schema_to_arrow_schema(&def.table.schema)?;
    let watermark = def
        .watermark
        .as_ref()
        .map(|(column, expr)| WatermarkSpec::of(column, expr, &schema))
        .transpose()?;
    Ok((
        watermark,
        crate::connector::watermark::idle_timeout(&def.options)?,
    ))
}

fn offsets_json(o: &BTreeMap<i32, i64>) -> String {
    serde_json::to_string(o).expect("plain map")
}

fn parse_offsets(s: &str) -> Result<BTreeMap<i32, i64>> {
    serde_json::from_str(s).map_err(|e| Error::Internal(format!("bad stored offsets {s}: {e}")))
}

impl super::Lake {
    /// `CREATE SOURCE` or a connector `CREATE TABLE`; false if it existed
    /// and IF NOT EXISTS was given.
    pub async fn create_source(&self, sql: &str) -> Result<bool> {
        let def = crate::sql::source_ddl::parse(sql)?;
        Self::check_schema(&def.table.schema_name)?;
        if matches!(def.connector(), Some("nexmark" | "datagen")) {
            return self.create_generator_source(&def, sql).await;
        }
        let spec = spec_of(&def)?;
        if def.is_table
            && !def
                .table
                .schema
                .identifier_field_ids()
                .collect::<Vec<_>>()
                .is_empty()
        {
            return Err(Error::FeatureNotSupported(
                "a connector table is append-only: PRIMARY KEY is not supported with FORMAT PLAIN"
                    .into(),
            ));
        }
        let _guard = self.ddl.lock().await;
        if self.public.table_exist_any(def.name()) || self.is_broken_view(def.name()) {
            if def.if_not_exists {
                return Ok(false);
            }
            return Err(Error::DuplicateTable(def.name().to_string()));
        }
        // Fails within seconds on an unreachable broker or unknown topic.
        let start = {
            let spec = spec.clone();
            tokio::task::spawn_blocking(move || resolve_start(&spec))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??
        };
        let name = def.name().to_string();
        if def.is_table {
            let ident = TableIdent::new(NamespaceIdent::new("public".into()), name.clone());
            let props = HashMap::from([
                (
                    WRITTEN_BY_PROPERTY.to_string(),
                    format!("kafka topic \"{}\"", spec.options.topic),
                ),
                (CONNECTOR_SQL_PROPERTY.to_string(), sql.trim().to_string()),
                (CONNECTOR_START_PROPERTY.to_string(), offsets_json(&start)),
            ]);
            let table = self
                .warehouse
                .create_table(&ident, full_schema(&def)?, props)
                .await?;
            let lake_table = LakeTable::new(self.warehouse.clone(), table)?;
            if let Err(e) = self.start_connector_table(spec, lake_table.clone(), start) {
                let _ = self.warehouse.drop_table(&ident).await;
                return Err(e);
            }
            tracing::info!(table = %name, "connector table created");
        } else {
            self.warehouse
                .save_source(&name, sql.trim(), &offsets_json(&start))
                .await?;
            if let Err(e) = self.start_source(spec, sql.trim(), start) {
                let _ = self.warehouse.delete_source(&name).await;
                return Err(e);
            }
            tracing::info!(source = %name, "source created");
        }
        Ok(true)
    }

    /// `CREATE SOURCE … WITH (connector = 'nexmark' | 'datagen')`.
    async fn create_generator_source(&self, def: &SourceDef, sql: &str) -> Result<bool> {
        if def.is_table {
            return Err(Error::FeatureNotSupported(format!(
                "connector '{}' makes sources; a connector table needs connector = 'kafka'",
                def.connector().unwrap_or_default()
            )));
        }
        if !def.includes.is_empty() {
            return Err(Error::FeatureNotSupported(
                "INCLUDE is for Kafka sources; a generator has no partitions or offsets".into(),
            ));
        }
        let make = generator_of(def)?;
        generator_watermark(def)?;
        let _guard = self.ddl.lock().await;
        if self.public.table_exist_any(def.name()) || self.is_broken_view(def.name()) {
            if def.if_not_exists {
                return Ok(false);
            }
            return Err(Error::DuplicateTable(def.name().to_string()));
        }
        self.warehouse
            .save_source(def.name(), sql.trim(), "{}")
            .await?;
        if let Err(e) = self.start_generator(def, sql.trim(), make) {
            let _ = self.warehouse.delete_source(def.name()).await;
            return Err(e);
        }
        tracing::info!(source = %def.name(), "generator source created");
        Ok(true)
    }

    fn start_generator(&self, def: &SourceDef, sql: &str, make: MakeGenerator) -> Result<()> {
        let name = def.name().to_string();
        let (watermark, idle_timeout) = generator_watermark(def)?;
        let source = Arc::new(GeneratorSource::start(
            &name,
            make,
            watermark,
            idle_timeout,
        )?);
        self.coordinator
            .add_source(&name, source.clone() as Arc<dyn Source>);
        self.public.add_source(
            name,
            SourceTable {
                kind: SourceKind::Generator(source),
                definition: sql.to_string(),
                connector: def.connector().unwrap_or_default().to_string(),
            },
        );
        Ok(())
    }

    fn start_source(&self, spec: SourceSpec, sql: &str, start: BTreeMap<i32, i64>) -> Result<()> {
        let name = spec.name.clone();
        let topic = spec.options.topic.clone();
        let source = Arc::new(KafkaSource::start(spec, start, self.dead_letters.clone())?);
        self.readers.insert(
            &name,
            ReaderEntry {
                topic,
                status: source.status().clone(),
            },
        );
        self.coordinator
            .add_source(&name, source.clone() as Arc<dyn Source>);
        self.public.add_source(
            name,
            SourceTable {
                kind: SourceKind::Kafka(source),
                definition: sql.to_string(),
                connector: "kafka".into(),
            },
        );
        Ok(())
    }

    fn start_connector_table(
        &self,
        spec: SourceSpec,
        table: LakeTable,
        start: BTreeMap<i32, i64>,
    ) -> Result<()> {
        let name = spec.name.clone();
        let topic = spec.options.topic.clone();
        self.coordinator
            .add_source(&name, Arc::new(TableSource::new(table.clone())?));
        let ingest = Arc::new(ConnectorIngest::start(
            spec,
            table.clone(),
            start,
            self.dead_letters.clone(),
        )?);
        self.readers.insert(
            &name,
            ReaderEntry {
                topic,
                status: ingest.status().clone(),
            },
        );
        self.ingests
            .lock()
            .expect("ingests lock")
            .insert(name.clone(), ingest);
        self.public
            .tables
            .write()
            .expect("schema lock")
            .insert(name, table);
        Ok(())
    }

    /// Restores the sources of the catalog database and starts the
    /// connector tables among `tables` (called once at open).
    pub(super) async fn restore_sources(&self) -> Result<()> {
        for (name, sql, start) in self.warehouse.load_sources().await? {
            let restored = crate::sql::source_ddl::parse(&sql).and_then(|def| {
                if matches!(def.connector(), Some("nexmark" | "datagen")) {
                    return self.start_generator(&def, &sql, generator_of(&def)?);
                }
                let spec = spec_of(&def)?;
                self.start_source(spec, &sql, parse_offsets(&start)?)
            });
            if let Err(e) = restored {
                tracing::error!(source = %name, error = %e, "could not restore source; DROP SOURCE removes it");
            }
        }
        for table in self.public.all_tables() {
            let props = table.properties();
            let Some(sql) = props.get(CONNECTOR_SQL_PROPERTY) else {
                continue;
            };
            let name = table.name().to_string();
            let restored = crate::sql::source_ddl::parse(sql)
                .and_then(|def| spec_of(&def))
                .and_then(|spec| {
                    let start = props
                        .get(CONNECTOR_START_PROPERTY)
                        .map(|s| parse_offsets(s))
                        .transpose()?
                        .unwrap_or_default();
                    Ok((spec, start))
                })
                .and_then(|(spec, start)| {
                    let ingest = Arc::new(ConnectorIngest::start(
                        spec.clone(),
                        table.clone(),
                        start,
                        self.dead_letters.clone(),
                    )?);
                    self.readers.insert(
                        &name,
                        ReaderEntry {
                            topic: spec.options.topic.clone(),
                            status: ingest.status().clone(),
                        },
                    );
                    self.ingests
                        .lock()
                        .expect("ingests lock")
                        .insert(name.clone(), ingest);
                    Ok(())
                });
            if let Err(e) = restored {
                tracing::error!(table = %name, error = %e, "could not restart the connector table's reader; its rows stay readable");
            }
        }
        Ok(())
    }

    /// `DROP SOURCE`: returns once the reader has stopped.
    pub async fn drop_source(&self, name: &str, if_exists: bool, cascade: bool) -> Result<bool> {
        if self.public.source(name).is_none() {
            if if_exists {
                return Ok(false);
            }
            return Err(Error::UndefinedObject(format!(
                "source \"{name}\" does not exist"
            )));
        }
        let dependents = self.dependents(name);
        if !dependents.is_empty() {
            if !cascade {
                return Err(Error::DependentObjects {
                    what: format!("source {name}"),
                    detail: format!(
                        "materialized view {} depends on source {name}",
                        dependents.join(", ")
                    ),
                });
            }
            for view in dependents {
                self.drop_view(&view, true, true).await?;
            }
        }
        let _guard = self.ddl.lock().await;
        let dependents = self.dependents(name);
        if !dependents.is_empty() {
            return Err(Error::DependentObjects {
                what: format!("source {name}"),
                detail: format!(
                    "materialized view {} depends on source {name}",
                    dependents.join(", ")
                ),
            });
        }
        let Some(source) = self.public.remove_source(name) else {
            return Ok(false);
        };
        self.coordinator.remove_source(name);
        source.runtime().stop().await;
        self.readers.remove(name);
        self.warehouse.delete_source(name).await?;
        // Its dead letters stay in streamlake.dead_letters; a new source of
        // the same name records its own from scratch.
        self.dead_letters.forget(name).await;
        tracing::info!(source = %name, "source dropped");
        Ok(true)
    }

    /// Stops a connector table's reader (DROP TABLE).
    pub(super) async fn stop_ingest(&self, name: &str) {
        let ingest = self.ingests.lock().expect("ingests lock").remove(name);
        if let Some(i) = ingest {
            i.stop().await;
            self.readers.remove(name);
            self.dead_letters.forget(name).await;
        }
    }

    /// Waits until every Kafka record in the brokers now is in the feeds
    /// (sources) or staged (connector tables): the part of FLUSH before its
    /// checkpoint.
    pub async fn catch_up_connectors(&self) -> Result<()> {
        let sources = self.public.sources();
        for s in &sources {
            s.runtime().catch_up().await?;
        }
        let ingests: Vec<_> = self
            .ingests
            .lock()
            .expect("ingests lock")
            .values()
            .cloned()
            .collect();
        for i in &ingests {
            i.catch_up().await?;
        }
        Ok(())
    }

    /// Commits what connector tables staged, and dead letters (at every
    /// checkpoint, before its barrier).
    pub async fn commit_connectors(&self) -> Result<()> {
        let ingests: Vec<_> = self
            .ingests
            .lock()
            .expect("ingests lock")
            .values()
            .cloned()
            .collect();
        for i in &ingests {
            i.checkpoint().await?;
        }
        self.dead_letters.commit().await?;
        self.late_events.commit().await?;
        for s in self.public.sources() {
            if let SourceKind::Kafka(k) = &s.kind {
                k.commit_group_offsets();
            }
        }
        Ok(())
    }

    /// `SHOW SOURCES`: names and kinds, as a query.
    pub fn show_sources_sql(&self) -> String {
        let mut rows: Vec<String> = self
            .public
            .sources()
            .iter()
            .map(|s| {
                format!(
                    "('{}', 'source', '{}', '{}')",
                    s.name().replace('\'', "''"),
                    s.connector,
                    s.topic().replace('\'', "''")
                )
            })
            .collect();
        for (name, i) in self.ingests.lock().expect("ingests lock").iter() {
            rows.push(format!(
                "('{}', 'table', 'kafka', '{}')",
                name.replace('\'', "''"),
                i.spec().options.topic.replace('\'', "''")
            ));
        }
        rows.sort();
        if rows.is_empty() {
            return "SELECT CAST(NULL AS TEXT) AS name, CAST(NULL AS TEXT) AS kind, \
                    CAST(NULL AS TEXT) AS connector, CAST(NULL AS TEXT) AS topic WHERE false"
                .into();
        }
        format!(
            "SELECT name, kind, connector, topic FROM (VALUES {}) AS s(name, kind, connector, topic) ORDER BY name",
            rows.join(", ")
        )
    }

    /// `SHOW CREATE SOURCE name`, as a query.
    pub fn show_create_source_sql(&self, name: &str) -> Result<String> {
        let sql = match self.public.source(name) {
            Some(s) => s.definition.clone(),
            None => self
                .public
                .get(name)
                .and_then(|t| t.properties().get(CONNECTOR_SQL_PROPERTY).cloned())
                .ok_or_else(|| {
                    Error::UndefinedObject(format!("source \"{name}\" does not exist"))
                })?,
        };
        Ok(format!(
            "SELECT '{}' AS name, '{}' AS \"create\"",
            name.replace('\'', "''"),
            sql.replace('\'', "''")
        ))
    }
}
