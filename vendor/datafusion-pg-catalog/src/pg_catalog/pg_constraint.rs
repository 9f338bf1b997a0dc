//! streamlake patch: pg_constraint built from the catalog (one row per
//! primary key), replacing the static export of PostgreSQL's own system
//! catalog constraints, whose tables pg_class does not list.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int16Array, Int16Builder, Int32Array, ListBuilder, RecordBatch,
    StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use postgres_types::Oid;
use tokio::sync::RwLock;

use super::OidCacheKey;
use super::catalog_info::CatalogInfo;
use super::primary_key::{KeyDefinitions, primary_keys};

/// `int2[]` as Arrow sees it.
pub(crate) fn int2_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Int16, true)))
}

#[derive(Debug, Clone)]
pub(crate) struct PgConstraintTable<C> {
    schema: SchemaRef,
    catalog_list: C,
    oid_counter: Arc<AtomicU32>,
    oid_cache: Arc<RwLock<HashMap<OidCacheKey, Oid>>>,
    definitions: Arc<KeyDefinitions>,
}

impl<C: CatalogInfo> PgConstraintTable<C> {
    pub(crate) fn new(
        catalog_list: C,
        oid_counter: Arc<AtomicU32>,
        oid_cache: Arc<RwLock<HashMap<OidCacheKey, Oid>>>,
        definitions: Arc<KeyDefinitions>,
    ) -> Self {
        // The columns of the static export (PostgreSQL 16), except that
        // conkey and confkey are int2[] (lists) as in PostgreSQL rather than
        // their text form.
        let schema = Arc::new(Schema::new(vec![
            Field::new("oid", DataType::Int32, false),
            Field::new("conname", DataType::Utf8, false),
            Field::new("connamespace", DataType::Int32, false),
            Field::new("contype", DataType::Utf8, false),
            Field::new("condeferrable", DataType::Boolean, false),
            Field::new("condeferred", DataType::Boolean, false),
            Field::new("convalidated", DataType::Boolean, false),
            Field::new("conrelid", DataType::Int32, false),
            Field::new("contypid", DataType::Int32, false),
            Field::new("conindid", DataType::Int32, false),
            Field::new("conparentid", DataType::Int32, false),
            Field::new("confrelid", DataType::Int32, false),
            Field::new("confupdtype", DataType::Utf8, false),
            Field::new("confdeltype", DataType::Utf8, false),
            Field::new("confmatchtype", DataType::Utf8, false),
            Field::new("conislocal", DataType::Boolean, false),
            Field::new("coninhcount", DataType::Int16, false),
            Field::new("connoinherit", DataType::Boolean, false),
            Field::new("conkey", int2_list(), true),
            Field::new("confkey", int2_list(), true),
            Field::new("conpfeqop", DataType::Utf8, true),
            Field::new("conppeqop", DataType::Utf8, true),
            Field::new("conffeqop", DataType::Utf8, true),
            Field::new("confdelsetcols", DataType::Utf8, true),
            Field::new("conexclop", DataType::Utf8, true),
            Field::new("conbin", DataType::Utf8, true),
        ]));
        Self {
            schema,
            catalog_list,
            oid_counter,
            oid_cache,
            definitions,
        }
    }

    async fn get_data(this: Self) -> Result<RecordBatch> {
        let keys = primary_keys(
            &this.catalog_list,
            &this.oid_counter,
            &this.oid_cache,
            &this.definitions,
        )
        .await?;
        let n = keys.len();
        let mut conkey = ListBuilder::new(Int16Builder::new());
        for key in &keys {
            conkey.append_value(key.columns.iter().map(|c| Some(c.attnum)));
        }
        let mut confkey = ListBuilder::new(Int16Builder::new());
        for _ in 0..n {
            confkey.append_null();
        }
        let int32 = |f: &dyn Fn(&super::primary_key::PrimaryKey) -> Oid| -> ArrayRef {
            Arc::new(Int32Array::from_iter_values(
                keys.iter().map(|k| f(k) as i32),
            ))
        };
        let text = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; n])) };
        let boolean = |v: bool| -> ArrayRef { Arc::new(BooleanArray::from(vec![v; n])) };
        let zeros = || -> ArrayRef { Arc::new(Int32Array::from(vec![0; n])) };
        let nulls = || -> ArrayRef { Arc::new(StringArray::new_null(n)) };
        let arrays: Vec<ArrayRef> = vec![
            int32(&|k| k.constraint_oid),
            Arc::new(StringArray::from_iter_values(keys.iter().map(|k| k.name()))),
            int32(&|k| k.schema_oid),
            text("p"),
            boolean(false),
            boolean(false),
            boolean(true),
            int32(&|k| k.table_oid),
            zeros(),
            int32(&|k| k.index_oid),
            zeros(),
            zeros(),
            text(" "),
            text(" "),
            text(" "),
            boolean(true),
            Arc::new(Int16Array::from(vec![0; n])),
            boolean(true),
            Arc::new(conkey.finish()),
            Arc::new(confkey.finish()),
            nulls(),
            nulls(),
            nulls(),
            nulls(),
            nulls(),
            nulls(),
        ];
        Ok(RecordBatch::try_new(this.schema.clone(), arrays)?)
    }
}

impl<C: CatalogInfo> PartitionStream for PgConstraintTable<C> {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let this = self.clone();
        Box::pin(RecordBatchStreamAdapter::new(
            this.schema.clone(),
            futures::stream::once(async move { Self::get_data(this).await }),
        ))
    }
}
