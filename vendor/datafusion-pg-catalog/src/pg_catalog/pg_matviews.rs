//! streamlake patch: pg_matviews built from the catalog — one row per
//! materialized view (a table provider of type View), with its defining
//! query. System views (pg_catalog's own, without a definition) are
//! left out.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use crate::pg_catalog::catalog_info::CatalogInfo;

#[derive(Debug, Clone)]
pub(crate) struct PgMatviewsTable<C> {
    schema: SchemaRef,
    catalog_list: C,
}

impl<C: CatalogInfo> PgMatviewsTable<C> {
    pub(crate) fn new(catalog_list: C) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("schemaname", DataType::Utf8, true),
            Field::new("matviewname", DataType::Utf8, true),
            Field::new("matviewowner", DataType::Utf8, true),
            Field::new("tablespace", DataType::Utf8, true),
            Field::new("hasindexes", DataType::Boolean, true),
            Field::new("ispopulated", DataType::Boolean, true),
            Field::new("definition", DataType::Utf8, true),
        ]));
        Self {
            schema,
            catalog_list,
        }
    }

    async fn get_data(this: Self) -> Result<RecordBatch> {
        let mut schemas = Vec::new();
        let mut names = Vec::new();
        let mut definitions = Vec::new();
        for catalog in this.catalog_list.catalog_names().await? {
            let Some(schema_names) = this.catalog_list.schema_names(&catalog).await? else {
                continue;
            };
            for schema in schema_names {
                let Some(tables) = this.catalog_list.table_names(&catalog, &schema).await? else {
                    continue;
                };
                for table in tables {
                    let table_type = this
                        .catalog_list
                        .table_type(&catalog, &schema, &table)
                        .await?;
                    if table_type != Some(TableType::View) {
                        continue;
                    }
                    // Only views with a defining query: the catalog's
                    // own system views have none.
                    let Some(definition) = this
                        .catalog_list
                        .table_definition(&catalog, &schema, &table)
                        .await?
                    else {
                        continue;
                    };
                    schemas.push(schema.clone());
                    names.push(table);
                    definitions.push(definition);
                }
            }
        }
        let n = names.len();
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(schemas)),
            Arc::new(StringArray::from(names)),
            Arc::new(StringArray::from(vec!["postgres"; n])),
            Arc::new(StringArray::from(vec![None::<String>; n])),
            Arc::new(BooleanArray::from(vec![false; n])),
            Arc::new(BooleanArray::from(vec![true; n])),
            Arc::new(StringArray::from(definitions)),
        ];
        Ok(RecordBatch::try_new(this.schema.clone(), arrays)?)
    }
}

impl<C: CatalogInfo> PartitionStream for PgMatviewsTable<C> {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let this = self.clone();
        Box::pin(RecordBatchStreamAdapter::new(
            this.schema.clone(),
            futures::stream::once(async move { PgMatviewsTable::get_data(this).await }),
        ))
    }
}
