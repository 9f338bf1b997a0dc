//! A source as a relation: DataFusion plans views and queries over it by
//! its schema; `SELECT … FROM a_source` is a bounded read from its start
//! offsets up to the high watermarks at query time (LIMIT stops it early).

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use futures::StreamExt;

use crate::stream::generator_source::GeneratorSource;
use crate::stream::kafka_source::KafkaSource;
use crate::stream::source::Source;

/// What reads a source.
#[derive(Clone)]
pub enum SourceKind {
    Kafka(Arc<KafkaSource>),
    Generator(Arc<GeneratorSource>),
}

#[derive(Clone)]
pub struct SourceTable {
    pub kind: SourceKind,
    /// The statement that created it (SHOW CREATE SOURCE).
    pub definition: String,
    /// `kafka`, `nexmark` or `datagen`.
    pub connector: String,
}

impl SourceTable {
    pub fn name(&self) -> &str {
        self.runtime().name()
    }

    /// The source as the runtime sees it.
    pub fn runtime(&self) -> &dyn Source {
        match &self.kind {
            SourceKind::Kafka(k) => k.as_ref(),
            SourceKind::Generator(g) => g.as_ref(),
        }
    }

    /// The source's columns' watermarks for planning: its `WATERMARK FOR`
    /// column, if it has one (the value is a placeholder).
    pub fn static_watermarks(&self) -> crate::stream::message::Watermarks {
        definition_watermarks(
            &self.definition,
            &datafusion::datasource::TableProvider::schema(self),
        )
    }

    /// The topic, or the generator's connector name.
    pub fn topic(&self) -> String {
        match &self.kind {
            SourceKind::Kafka(k) => k.spec().options.topic.clone(),
            SourceKind::Generator(_) => self.connector.clone(),
        }
    }
}

impl std::fmt::Debug for SourceTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceTable")
            .field("name", &self.name())
            .finish()
    }
}

#[async_trait]
impl TableProvider for SourceTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        match &self.kind {
            SourceKind::Kafka(k) => k.spec().schema.clone(),
            SourceKind::Generator(g) => g.schema().clone(),
        }
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let partition: Arc<dyn PartitionStream> = Arc::new(BoundedRead {
            source: self.kind.clone(),
            schema: self.schema(),
        });
        Ok(Arc::new(StreamingTableExec::try_new(
            self.schema(),
            vec![partition],
            projection,
            Vec::new(),
            false,
            limit,
        )?))
    }
}

struct BoundedRead {
    source: SourceKind,
    schema: SchemaRef,
}

impl std::fmt::Debug for BoundedRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoundedRead")
    }
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("name", &self.spec().name)
            .finish()
    }
}

impl PartitionStream for BoundedRead {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let source = self.source.clone();
        let stream = futures::stream::once(async move {
            match source {
                SourceKind::Kafka(k) => k.read_to_end().await,
                // Rows generated so far, again.
                SourceKind::Generator(g) => Ok(g.replay(0, g.position())),
            }
        })
        .map(|r| match r {
            Ok(mut rx) => futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
                .map(|b| b.map_err(|e| e.into_datafusion()))
                .boxed(),
            Err(e) => futures::stream::once(async move {
                Err::<datafusion::arrow::array::RecordBatch, DataFusionError>(e.into_datafusion())
            })
            .boxed(),
        })
        .flatten();
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

/// The watermarked column of a source or connector table defined by
/// `definition` whose rows have `schema`, for planning (placeholder value).
pub fn definition_watermarks(
    definition: &str,
    schema: &datafusion::arrow::datatypes::Schema,
) -> crate::stream::message::Watermarks {
    let Ok(def) = crate::sql::source_ddl::parse(definition) else {
        return Vec::new();
    };
    let Some((column, _)) = def.watermark else {
        return Vec::new();
    };
    let Some(i) = schema.fields().iter().position(|f| f.name() == &column) else {
        return Vec::new();
    };
    let mut w = vec![None; schema.fields().len()];
    w[i] = Some(crate::stream::message::ColumnWatermark {
        micros: 0,
        window: false,
    });
    w
}
