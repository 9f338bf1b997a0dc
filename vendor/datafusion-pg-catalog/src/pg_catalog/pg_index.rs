//! streamlake patch: pg_index built from the catalog (one unique btree
//! index per primary key), replacing the static export of PostgreSQL's own
//! system catalog indexes, whose tables pg_class does not list.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Int16Array, Int16Builder, Int32Array, Int32Builder,
    ListBuilder, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use postgres_types::{Oid, Type};
use tokio::sync::RwLock;

use super::catalog_info::CatalogInfo;
use super::pg_constraint::int2_list;
use super::primary_key::{KeyDefinitions, primary_keys};
use super::{ArrowTable, OidCacheKey};

/// pg_am's btree.
pub(crate) const BTREE_AM_OID: i32 = 403;

#[derive(Debug, Clone)]
pub(crate) struct PgIndexTable<C> {
    schema: SchemaRef,
    catalog_list: C,
    oid_counter: Arc<AtomicU32>,
    oid_cache: Arc<RwLock<HashMap<OidCacheKey, Oid>>>,
    definitions: Arc<KeyDefinitions>,
    /// Type OID → its default btree operator class (from pg_opclass).
    opclasses: Arc<HashMap<i32, i32>>,
}

/// The default btree operator class of each type, read from the static
/// pg_opclass. varchar has none of its own: PostgreSQL indexes it with
/// text_ops.
fn default_btree_opclasses(pg_opclass: &ArrowTable) -> HashMap<i32, i32> {
    let mut map = HashMap::new();
    let schema = pg_opclass.schema();
    let (Ok(oid), Ok(method), Ok(intype), Ok(default)) = (
        schema.index_of("oid"),
        schema.index_of("opcmethod"),
        schema.index_of("opcintype"),
        schema.index_of("opcdefault"),
    ) else {
        return map;
    };
    for batch in pg_opclass.data() {
        let (Some(oids), Some(methods), Some(intypes), Some(defaults)) = (
            batch.column(oid).as_primitive_opt::<Int32Type>(),
            batch.column(method).as_primitive_opt::<Int32Type>(),
            batch.column(intype).as_primitive_opt::<Int32Type>(),
            batch.column(default).as_boolean_opt(),
        ) else {
            continue;
        };
        for i in 0..batch.num_rows() {
            if methods.value(i) == BTREE_AM_OID && defaults.value(i) {
                map.insert(intypes.value(i), oids.value(i));
            }
        }
    }
    if let Some(text_ops) = map.get(&(Type::TEXT.oid() as i32)).copied() {
        map.entry(Type::VARCHAR.oid() as i32).or_insert(text_ops);
    }
    map
}

impl<C: CatalogInfo> PgIndexTable<C> {
    pub(crate) fn new(
        catalog_list: C,
        oid_counter: Arc<AtomicU32>,
        oid_cache: Arc<RwLock<HashMap<OidCacheKey, Oid>>>,
        definitions: Arc<KeyDefinitions>,
        pg_opclass: &ArrowTable,
    ) -> Self {
        // The columns of the static export (PostgreSQL 16), except that the
        // int2vector indkey and the oidvector indclass are lists, so that
        // unnest() takes them; indcollation and indoption keep the vectors'
        // text form ("0 0"), which clients (SQLAlchemy) split themselves.
        let schema = Arc::new(Schema::new(vec![
            Field::new("indexrelid", DataType::Int32, false),
            Field::new("indrelid", DataType::Int32, false),
            Field::new("indnatts", DataType::Int16, false),
            Field::new("indnkeyatts", DataType::Int16, false),
            Field::new("indisunique", DataType::Boolean, false),
            Field::new("indnullsnotdistinct", DataType::Boolean, false),
            Field::new("indisprimary", DataType::Boolean, false),
            Field::new("indisexclusion", DataType::Boolean, false),
            Field::new("indimmediate", DataType::Boolean, false),
            Field::new("indisclustered", DataType::Boolean, false),
            Field::new("indisvalid", DataType::Boolean, false),
            Field::new("indcheckxmin", DataType::Boolean, false),
            Field::new("indisready", DataType::Boolean, false),
            Field::new("indislive", DataType::Boolean, false),
            Field::new("indisreplident", DataType::Boolean, false),
            Field::new("indkey", int2_list(), false),
            Field::new("indcollation", DataType::Utf8, false),
            Field::new(
                "indclass",
                DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
                false,
            ),
            Field::new("indoption", DataType::Utf8, false),
            Field::new("indexprs", DataType::Utf8, true),
            Field::new("indpred", DataType::Utf8, true),
        ]));
        Self {
            schema,
            catalog_list,
            oid_counter,
            oid_cache,
            definitions,
            opclasses: Arc::new(default_btree_opclasses(pg_opclass)),
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
        let mut indkey = ListBuilder::new(Int16Builder::new());
        let mut indclass = ListBuilder::new(Int32Builder::new());
        let mut indcollation = Vec::with_capacity(n);
        let mut indoption = Vec::with_capacity(n);
        for key in &keys {
            indkey.append_value(key.columns.iter().map(|c| Some(c.attnum)));
            indclass.append_value(key.columns.iter().map(|c| {
                let type_oid = arrow_pg::datatypes::into_pg_type(&c.data_type)
                    .map(|t| t.oid() as i32)
                    .unwrap_or(0);
                Some(self::opclass(&this.opclasses, type_oid))
            }));
            // Text keys use the default collation (100), others none.
            indcollation.push(
                key.columns
                    .iter()
                    .map(|c| match c.data_type {
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "100",
                        _ => "0",
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            indoption.push(vec!["0"; key.columns.len()].join(" "));
        }
        let natts: ArrayRef = Arc::new(Int16Array::from_iter_values(
            keys.iter().map(|k| k.columns.len() as i16),
        ));
        let boolean = |v: bool| -> ArrayRef { Arc::new(BooleanArray::from(vec![v; n])) };
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from_iter_values(
                keys.iter().map(|k| k.index_oid as i32),
            )),
            Arc::new(Int32Array::from_iter_values(
                keys.iter().map(|k| k.table_oid as i32),
            )),
            natts.clone(),
            natts,
            boolean(true),  // indisunique
            boolean(false), // indnullsnotdistinct
            boolean(true),  // indisprimary
            boolean(false), // indisexclusion
            boolean(true),  // indimmediate
            boolean(false), // indisclustered
            boolean(true),  // indisvalid
            boolean(false), // indcheckxmin
            boolean(true),  // indisready
            boolean(true),  // indislive
            boolean(false), // indisreplident
            Arc::new(indkey.finish()),
            Arc::new(StringArray::from(indcollation)),
            Arc::new(indclass.finish()),
            Arc::new(StringArray::from(indoption)),
            Arc::new(StringArray::new_null(n)),
            Arc::new(StringArray::new_null(n)),
        ];
        Ok(RecordBatch::try_new(this.schema.clone(), arrays)?)
    }
}

fn opclass(opclasses: &HashMap<i32, i32>, type_oid: i32) -> i32 {
    opclasses.get(&type_oid).copied().unwrap_or(0)
}

impl<C: CatalogInfo> PartitionStream for PgIndexTable<C> {
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
