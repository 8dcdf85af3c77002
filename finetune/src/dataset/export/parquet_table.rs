//! A parquet file from whole columns: the schema as parquet's message type
//! text, and per leaf column its values with their definition and
//! repetition levels (Dremel encoding), in the schema's leaf order. One row
//! group, plain encoding, no compression: the export's tables are small,
//! and every reader (pyarrow, pandas, `datasets`, verl) reads this.

use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use std::path::Path;
use std::sync::Arc;

/// The values of one leaf column.
pub enum Values {
    Text(Vec<String>),
    Int64(Vec<i64>),
}

/// One leaf column: its values (one per defined slot), and a definition
/// level per slot (and a repetition level, for columns inside a list).
pub struct Column {
    pub values: Values,
    pub def: Vec<i16>,
    pub rep: Option<Vec<i16>>,
}

impl Column {
    /// A column of present values at definition level `def` (the number
    /// of optional fields on the path, itself included), outside lists.
    pub fn flat(values: Values, def: i16) -> Column {
        let n = match &values {
            Values::Text(v) => v.len(),
            Values::Int64(v) => v.len(),
        };
        Column {
            values,
            def: vec![def; n],
            rep: None,
        }
    }
}

/// Writes `columns` under `schema` to `path`.
pub fn write(path: &Path, schema: &str, columns: Vec<Column>) -> Result<(), String> {
    let schema = Arc::new(parse_message_type(schema).map_err(|e| e.to_string())?);
    let props = Arc::new(WriterProperties::builder().build());
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut writer = SerializedFileWriter::new(file, schema, props).map_err(|e| e.to_string())?;
    let mut group = writer.next_row_group().map_err(|e| e.to_string())?;
    let mut columns = columns.into_iter();
    while let Some(mut out) = group.next_column().map_err(|e| e.to_string())? {
        let c = columns.next().ok_or("fewer columns than the schema has")?;
        let rep = c.rep.as_deref();
        match &c.values {
            Values::Text(v) => {
                let v: Vec<ByteArray> = v.iter().map(|s| ByteArray::from(s.as_str())).collect();
                out.typed::<ByteArrayType>()
                    .write_batch(&v, Some(&c.def), rep)
            }
            Values::Int64(v) => out.typed::<Int64Type>().write_batch(v, Some(&c.def), rep),
        }
        .map_err(|e| e.to_string())?;
        out.close().map_err(|e| e.to_string())?;
    }
    if columns.next().is_some() {
        return Err("more columns than the schema has".into());
    }
    group.close().map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(())
}
