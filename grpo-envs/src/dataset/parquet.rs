//! Parquet task files (feature `parquet`), read through the `parquet` crate's
//! row/record API: each row's mapped columns become one `serde_json` object
//! (strings, integers, floats, booleans, lists and structs, nested as deep as
//! the file goes) and then go through the same column mapping as a JSONL line.
//!
//! Only the columns the [`ColumnMap`] names are decoded (a projection), so
//! wide Hugging Face shards with image or audio columns cost nothing extra.
//! Errors name the file and, where there is one, the 1-based row (counted
//! across row groups) and the column.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{ConvertedType, Type as PhysicalType};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::reader::RowIter;
use parquet::record::{Field, Row};
use parquet::schema::types::{Type, TypePtr};
use serde_json::{Map, Number, Value};

use super::{ColumnMap, TaskRecord, map_fields};
use crate::error::{EnvError, Result};

/// Reads a Parquet task file (Snappy, Zstd or uncompressed pages).
///
/// Errors: [`EnvError::BadFile`] for a file that is not readable Parquet
/// (truncated, corrupt footer or pages), [`EnvError::MissingColumn`] for a
/// mapped column the file lacks, [`EnvError::ColumnType`] for a prompt column
/// that cannot hold text, and [`EnvError::BadRow`] for a row whose value does
/// not fit (null prompt, no `####` answer, non-UTF-8 bytes…).
pub fn load_parquet(path: impl AsRef<Path>, map: &ColumnMap) -> Result<Vec<TaskRecord>> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| EnvError::Io {
        context: format!("opening {name}"),
        source: e,
    })?;
    // The decoder is third-party code fed with user bytes; a panic inside it on a
    // corrupt file must still come back as an error naming the file.
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_records(file, map, &name)
    }))
    .unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "decoder panicked".to_string());
        Err(EnvError::BadFile {
            path: name.clone(),
            reason: format!("corrupt Parquet data ({what})"),
        })
    })?;
    tracing::debug!(path = %name, records = out.len(), "loaded parquet task file");
    Ok(out)
}

fn read_records(file: File, map: &ColumnMap, name: &str) -> Result<Vec<TaskRecord>> {
    let file_len = file.metadata().map(|m| m.len()).map_err(|e| EnvError::Io {
        context: format!("reading {name}"),
        source: e,
    })?;
    let reader = SerializedFileReader::new(file).map_err(|e| EnvError::BadFile {
        path: name.to_string(),
        reason: format!("not a readable Parquet file: {e}"),
    })?;
    check_chunk_ranges(reader.metadata(), file_len, name)?;
    let root = reader.metadata().file_metadata().schema();
    let projection = project(root, map, name)?;
    let mut out = Vec::with_capacity(
        usize::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0),
    );
    let mut row_no = 0usize;
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g).map_err(|e| EnvError::BadFile {
            path: name.to_string(),
            reason: format!("row group {g}: {e}"),
        })?;
        let rows =
            RowIter::from_row_group(Some(projection.clone()), group.as_ref()).map_err(|e| {
                EnvError::BadFile {
                    path: name.to_string(),
                    reason: format!("row group {g}: {e}"),
                }
            })?;
        for row in rows {
            row_no += 1;
            let row = row.map_err(|e| EnvError::BadFile {
                path: name.to_string(),
                reason: format!("row {row_no} (row group {g}): {e}"),
            })?;
            let value = row_to_json(&row).map_err(|(column, reason)| EnvError::BadRow {
                path: name.to_string(),
                row: row_no,
                column,
                reason,
            })?;
            let n = row_no;
            let rec =
                map_fields(&value, map, || format!("row-{n}")).map_err(|(column, reason)| {
                    EnvError::BadRow {
                        path: name.to_string(),
                        row: n,
                        column,
                        reason,
                    }
                })?;
            out.push(rec);
        }
    }
    Ok(out)
}

/// Every column chunk must lie inside the file (the decoder asserts on
/// negative offsets, so a corrupt footer is refused here first).
fn check_chunk_ranges(meta: &ParquetMetaData, file_len: u64, name: &str) -> Result<()> {
    for (g, rg) in meta.row_groups().iter().enumerate() {
        for c in rg.columns() {
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let len = c.compressed_size();
            let inside = start >= 0
                && len >= 0
                && (start as u64)
                    .checked_add(len as u64)
                    .is_some_and(|end| end <= file_len);
            if !inside {
                return Err(EnvError::BadFile {
                    path: name.to_string(),
                    reason: format!(
                        "corrupt footer: row group {g}, column `{}`: chunk at {start}+{len} \
                         is outside the {file_len}-byte file",
                        c.column_path()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The projected schema holding only the mapped columns (each once), after
/// checking they exist and that the prompt column can hold text.
fn project(root: &Type, map: &ColumnMap, name: &str) -> Result<Type> {
    let fields = root.get_fields();
    let mut wanted: Vec<(&str, &str)> = vec![("prompt", &map.prompt), ("answer", &map.answer)];
    if let Some(id) = &map.id {
        wanted.push(("id", id));
    }
    wanted.extend(map.extra.iter().map(|c| ("extra", c.as_str())));
    let mut picked: Vec<TypePtr> = Vec::new();
    for (role, column) in wanted {
        let Some(field) = fields.iter().find(|f| f.name() == column) else {
            return Err(EnvError::MissingColumn {
                path: name.to_string(),
                column: column.to_string(),
                role: role.to_string(),
                available: fields
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let text = field.is_primitive() && field.get_physical_type() == PhysicalType::BYTE_ARRAY;
        let list =
            field.is_group() && field.get_basic_info().converted_type() == ConvertedType::LIST;
        if role == "prompt" && !text && !list {
            return Err(EnvError::ColumnType {
                path: name.to_string(),
                column: column.to_string(),
                found: describe(field),
                expected: "the prompt column must hold strings or lists of chat messages"
                    .to_string(),
            });
        }
        if !picked.iter().any(|p| p.name() == column) {
            picked.push(Arc::clone(field));
        }
    }
    Type::group_type_builder(root.name())
        .with_fields(picked)
        .build()
        .map_err(|e| EnvError::BadFile {
            path: name.to_string(),
            reason: format!("cannot project the mapped columns: {e}"),
        })
}

/// A short human description of a column's type.
fn describe(t: &Type) -> String {
    if t.is_primitive() {
        match t.get_basic_info().logical_type_ref() {
            Some(l) => format!("{} ({l:?})", t.get_physical_type()),
            None => format!("{}", t.get_physical_type()),
        }
    } else {
        match t.get_basic_info().converted_type() {
            ConvertedType::LIST => "a list".to_string(),
            ConvertedType::MAP | ConvertedType::MAP_KEY_VALUE => "a map".to_string(),
            _ => "a struct".to_string(),
        }
    }
}

/// One row as a JSON object; `Err((column, reason))` for a value JSON cannot hold.
fn row_to_json(row: &Row) -> std::result::Result<Value, (String, String)> {
    let mut obj = Map::new();
    for (column, field) in row.get_column_iter() {
        let v = field_to_json(field).map_err(|reason| (column.clone(), reason))?;
        obj.insert(column.clone(), v);
    }
    Ok(Value::Object(obj))
}

/// Converts one Parquet value to JSON the way a JSONL dump of the same data
/// reads: strings, numbers, booleans, null, lists as arrays, structs as
/// objects, maps as objects keyed by the key's text. Binary values must be
/// UTF-8 text; dates, times, timestamps and decimals become their display
/// strings. Non-finite floats are errors (JSON has no NaN).
pub fn field_to_json(f: &Field) -> std::result::Result<Value, String> {
    Ok(match f {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(n) => Value::from(*n),
        Field::Short(n) => Value::from(*n),
        Field::Int(n) => Value::from(*n),
        Field::Long(n) => Value::from(*n),
        Field::UByte(n) => Value::from(*n),
        Field::UShort(n) => Value::from(*n),
        Field::UInt(n) => Value::from(*n),
        Field::ULong(n) => Value::from(*n),
        Field::Float16(x) => finite(f64::from(*x))?,
        Field::Float(x) => finite(f64::from(*x))?,
        Field::Double(x) => finite(*x)?,
        Field::Str(s) => Value::String(s.clone()),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::String(s.to_string()),
            Err(e) => return Err(format!("binary value is not UTF-8 text ({e})")),
        },
        Field::Decimal(_)
        | Field::Date(_)
        | Field::TimeMillis(_)
        | Field::TimeMicros(_)
        | Field::TimestampMillis(_)
        | Field::TimestampMicros(_) => Value::String(f.to_string()),
        Field::Group(row) => {
            let mut obj = Map::new();
            for (k, v) in row.get_column_iter() {
                let v = field_to_json(v).map_err(|e| format!(".{k}: {e}"))?;
                obj.insert(k.clone(), v);
            }
            Value::Object(obj)
        }
        Field::ListInternal(list) => Value::Array(
            list.elements()
                .iter()
                .enumerate()
                .map(|(i, e)| field_to_json(e).map_err(|err| format!("[{i}]{err}")))
                .collect::<std::result::Result<_, _>>()?,
        ),
        Field::MapInternal(m) => {
            let mut obj = Map::new();
            for (k, v) in m.entries() {
                let key = match field_to_json(k)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                let v = field_to_json(v).map_err(|e| format!("[{key}]: {e}"))?;
                obj.insert(key, v);
            }
            Value::Object(obj)
        }
    })
}

fn finite(x: f64) -> std::result::Result<Value, String> {
    Number::from_f64(x)
        .map(Value::Number)
        .ok_or_else(|| format!("non-finite float {x} (JSON cannot hold it)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_and_nesting_convert_like_json() {
        assert_eq!(field_to_json(&Field::Long(-3)).unwrap(), Value::from(-3));
        assert_eq!(field_to_json(&Field::UInt(7)).unwrap(), Value::from(7));
        assert_eq!(
            field_to_json(&Field::Double(0.5)).unwrap(),
            Value::from(0.5)
        );
        assert_eq!(
            field_to_json(&Field::Bool(true)).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(field_to_json(&Field::Null).unwrap(), Value::Null);
        assert!(
            field_to_json(&Field::Double(f64::NAN))
                .unwrap_err()
                .contains("non-finite")
        );
        let bytes = Field::Bytes(vec![0xff, 0xfe].into());
        assert!(field_to_json(&bytes).unwrap_err().contains("UTF-8"));
        let text = Field::Bytes(b"hi".to_vec().into());
        assert_eq!(field_to_json(&text).unwrap(), Value::from("hi"));
    }
}
