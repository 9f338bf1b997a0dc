//! Writing and reading the Parquet data files of one table.
//!
//! [`FileWriter`] wraps iceberg's rolling data-file writer so a statement
//! streams its rows into files of bounded size (memory stays flat however
//! many rows an INSERT … SELECT or COPY brings). [`read_file`] reads one data
//! file back as Arrow batches, for copy-on-write UPDATE/DELETE and
//! compaction.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use iceberg::io::FileIO;
use iceberg::spec::{DataFile, DataFileFormat};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::Result;

type Inner =
    DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// Streams batches into new Parquet data files of one table.
pub struct FileWriter {
    inner: Inner,
    schema: SchemaRef,
    rows: u64,
}

impl FileWriter {
    /// A writer whose files get a name prefix unique to this statement, so
    /// files never collide across statements or restarts.
    pub async fn new(table: &Table, schema: SchemaRef) -> Result<FileWriter> {
        let metadata = table.metadata();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let parquet = ParquetWriterBuilder::new(props, metadata.current_schema().clone());
        let rolling = RollingFileWriterBuilder::new_with_default_file_size(
            parquet,
            table.file_io().clone(),
            DefaultLocationGenerator::new(metadata)?,
            DefaultFileNameGenerator::new(
                uuid::Uuid::new_v4().to_string(),
                None,
                DataFileFormat::Parquet,
            ),
        );
        let inner = DataFileWriterBuilder::new(rolling).build(None).await?;
        Ok(FileWriter {
            inner,
            schema,
            rows: 0,
        })
    }

    /// Writes one batch (already in the table's schema).
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        // Re-attach the table schema: it carries the Iceberg field ids the
        // Parquet writer needs.
        let batch = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())?;
        self.inner.write(batch).await?;
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Closes the current file and returns every data file written.
    pub async fn finish(mut self) -> Result<Vec<DataFile>> {
        if self.rows == 0 {
            return Ok(Vec::new());
        }
        Ok(self.inner.close().await?)
    }
}

/// Reads one data file as batches in `schema` (columns by position).
pub async fn read_file(
    file_io: &FileIO,
    path: &str,
    schema: &SchemaRef,
) -> Result<Vec<RecordBatch>> {
    let bytes = file_io.new_input(path)?.read().await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?
        .with_batch_size(8192)
        .build()?;
    let mut out = Vec::new();
    for batch in reader {
        out.push(conform(batch?, schema)?);
    }
    Ok(out)
}

/// Puts a batch into `schema`, casting a column only where the file's type
/// differs (e.g. a timezone spelled differently).
pub fn conform(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    conform_columns(batch.columns().to_vec(), schema)
}

/// Builds a batch of `schema` from columns by position, casting only the
/// columns whose type differs. Every operator that decodes or re-types
/// columns ends here.
pub fn conform_columns(
    columns: Vec<datafusion::arrow::array::ArrayRef>,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(col, field)| {
            if col.data_type() == field.data_type() {
                Ok(col)
            } else {
                cast(&col, field.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
