//! Iceberg position delete files: which rows of which data files are gone.
//!
//! A view whose rows change commits each epoch as the new rows (a data
//! file) plus the positions of the rows it lost (one of these files), so an
//! epoch costs in proportion to its changes, not to the view. Every Iceberg
//! v2 reader applies position deletes (pyiceberg, DuckDB, Spark, Trino, the
//! iceberg crate's scan); equality deletes, which pyiceberg cannot read,
//! are never written.
//!
//! The file layout is the spec's: Parquet with `file_path` (string, field
//! id 2147483546) and `pos` (long, field id 2147483545), sorted by path and
//! position. The iceberg crate 0.10 has no writer for it, so it is written
//! here with the parquet crate.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use iceberg::spec::{DataContentType, DataFile, DataFileBuilder, DataFileFormat};
use iceberg::table::Table;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};

const FILE_PATH_FIELD_ID: &str = "2147483546";
const POS_FIELD_ID: &str = "2147483545";

fn field(name: &str, ty: DataType, id: &str) -> Field {
    Field::new(name, ty, false).with_metadata(HashMap::from([(
        parquet::arrow::PARQUET_FIELD_ID_META_KEY.to_string(),
        id.to_string(),
    )]))
}

/// Writes one position delete file for `deletes` (data file path, row
/// position) and returns its manifest entry.
pub async fn write_position_deletes(
    table: &Table,
    mut deletes: Vec<(String, i64)>,
) -> Result<DataFile> {
    deletes.sort();
    let schema = Arc::new(Schema::new(vec![
        field("file_path", DataType::Utf8, FILE_PATH_FIELD_ID),
        field("pos", DataType::Int64, POS_FIELD_ID),
    ]));
    let referenced = match deletes.first() {
        Some((first, _)) if deletes.iter().all(|(p, _)| p == first) => Some(first.clone()),
        _ => None,
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                deletes.iter().map(|(p, _)| p.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(
                deletes.iter().map(|(_, n)| *n),
            )),
        ],
    )?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, schema, Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    let path = format!(
        "{}/data/{}-deletes.parquet",
        table.metadata().location(),
        uuid::Uuid::new_v4()
    );
    let size = buf.len() as u64;
    table
        .file_io()
        .new_output(&path)?
        .write(bytes::Bytes::from(buf))
        .await?;
    DataFileBuilder::default()
        .content(DataContentType::PositionDeletes)
        .file_path(path)
        .file_format(DataFileFormat::Parquet)
        .record_count(deletes.len() as u64)
        .file_size_in_bytes(size)
        .referenced_data_file(referenced)
        .build()
        .map_err(|e| Error::Internal(format!("position delete file entry: {e}")))
}
