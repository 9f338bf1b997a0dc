//! Translation of `CREATE TABLE` column lists into Iceberg schemas.
//!
//! The column types are those of docs/guide.md (Tables). Iceberg has no 16-bit integer,
//! so SMALLINT is stored as INTEGER (PostgreSQL would widen on read too);
//! JSON/JSONB and UUID are stored as text. NUMERIC without a precision
//! becomes DECIMAL(38,10): Iceberg decimals are bounded.

use datafusion::sql::sqlparser::ast::{
    ColumnDef, ColumnOption, CreateTable, Ident, ObjectName, TableConstraint,
};
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};

use crate::error::{Error, Result};

/// Folds an identifier as PostgreSQL does: unquoted names are lower-cased.
pub fn ident_name(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// Splits `[schema.]name`; the schema defaults to `public`.
pub fn table_name(name: &ObjectName) -> Result<(String, String)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p.as_ident() {
            Some(i) => Ok(ident_name(i)),
            None => Err(Error::Syntax(format!("invalid table name {name}"))),
        })
        .collect::<Result<_>>()?;
    match parts.as_slice() {
        [t] => Ok(("public".into(), t.clone())),
        [s, t] => Ok((s.clone(), t.clone())),
        [_db, s, t] => Ok((s.clone(), t.clone())),
        _ => Err(Error::Syntax(format!("invalid table name {name}"))),
    }
}

/// Maps a SQL type name to an Iceberg primitive type.
pub fn iceberg_type(sql_type: &str) -> Result<PrimitiveType> {
    let t = sql_type.trim().to_lowercase();
    let (base, args) = match t.find('(') {
        Some(i) => (t[..i].trim().to_string(), Some(t[i..].to_string())),
        None => (t.clone(), None),
    };
    let unsupported = || Error::FeatureNotSupported(format!("type {sql_type} is not supported"));
    Ok(match base.as_str() {
        "smallint" | "int2" | "int" | "integer" | "int4" | "serial" => PrimitiveType::Int,
        "bigint" | "int8" | "bigserial" => PrimitiveType::Long,
        "real" | "float4" => PrimitiveType::Float,
        "double precision" | "double" | "float8" | "float" => PrimitiveType::Double,
        "boolean" | "bool" => PrimitiveType::Boolean,
        "text" | "varchar" | "character varying" | "char" | "character" | "string" | "bpchar"
        | "json" | "jsonb" | "uuid" | "name" => PrimitiveType::String,
        "bytea" => PrimitiveType::Binary,
        "date" => PrimitiveType::Date,
        "time" | "time without time zone" => PrimitiveType::Time,
        "timestamp" | "timestamp without time zone" => PrimitiveType::Timestamp,
        "timestamptz" | "timestamp with time zone" => PrimitiveType::Timestamptz,
        "numeric" | "decimal" => {
            let (precision, scale) = match args {
                None => (38, 10),
                Some(a) => {
                    let inner = a.trim_start_matches('(').trim_end_matches(')');
                    let mut it = inner.split(',').map(|s| s.trim().parse::<u32>());
                    let p = it.next().and_then(|r| r.ok()).ok_or_else(unsupported)?;
                    let s = match it.next() {
                        Some(r) => r.map_err(|_| unsupported())?,
                        None => 0,
                    };
                    (p, s)
                }
            };
            if precision == 0 || precision > 38 || scale > precision {
                return Err(Error::FeatureNotSupported(format!(
                    "NUMERIC({precision},{scale}) is not supported: precision must be 1..38"
                )));
            }
            PrimitiveType::Decimal { precision, scale }
        }
        _ => {
            // `timestamp(3) with time zone` and friends.
            if base.starts_with("timestamp") {
                if t.contains("with time zone") {
                    PrimitiveType::Timestamptz
                } else {
                    PrimitiveType::Timestamp
                }
            } else {
                return Err(unsupported());
            }
        }
    })
}

/// A column list with its primary key, ready to become an Iceberg schema.
#[derive(Debug)]
pub struct TableDef {
    pub schema_name: String,
    pub name: String,
    pub schema: Schema,
}

/// Builds the Iceberg schema of a `CREATE TABLE` statement.
pub fn table_def(create: &CreateTable) -> Result<TableDef> {
    let (schema_name, name) = table_name(&create.name)?;
    if create.columns.is_empty() {
        return Err(Error::FeatureNotSupported(
            "tables without columns are not supported".into(),
        ));
    }
    let mut primary_key: Vec<String> = Vec::new();
    for c in &create.constraints {
        match c {
            TableConstraint::PrimaryKey(pk) => {
                for col in &pk.columns {
                    primary_key.push(expr_column_name(&col.column.expr)?);
                }
            }
            other => {
                return Err(Error::FeatureNotSupported(format!(
                    "table constraint {other} is not supported"
                )));
            }
        }
    }
    let mut not_null: Vec<bool> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut types: Vec<PrimitiveType> = Vec::new();
    for col in &create.columns {
        let (column_name, ty, required, is_pk) = column(col)?;
        if names.contains(&column_name) {
            return Err(Error::Syntax(format!(
                "column \"{column_name}\" specified more than once"
            )));
        }
        if is_pk {
            primary_key.push(column_name.clone());
        }
        names.push(column_name);
        types.push(ty);
        not_null.push(required);
    }
    let mut identifier_ids = Vec::new();
    for key in &primary_key {
        let pos = names.iter().position(|n| n == key).ok_or_else(|| {
            Error::Syntax(format!("column \"{key}\" named in key does not exist"))
        })?;
        not_null[pos] = true;
        identifier_ids.push(pos as i32 + 1);
    }
    let fields = names
        .into_iter()
        .zip(types)
        .zip(not_null)
        .enumerate()
        .map(|(i, ((n, t), req))| {
            let id = i as i32 + 1;
            let f = if req {
                NestedField::required(id, n, Type::Primitive(t))
            } else {
                NestedField::optional(id, n, Type::Primitive(t))
            };
            f.into()
        })
        .collect::<Vec<_>>();
    let schema = Schema::builder()
        .with_fields(fields)
        .with_identifier_field_ids(identifier_ids)
        .build()?;
    Ok(TableDef {
        schema_name,
        name,
        schema,
    })
}

fn expr_column_name(expr: &datafusion::sql::sqlparser::ast::Expr) -> Result<String> {
    match expr {
        datafusion::sql::sqlparser::ast::Expr::Identifier(i) => Ok(ident_name(i)),
        other => Err(Error::FeatureNotSupported(format!(
            "key expression {other} is not supported"
        ))),
    }
}

fn column(col: &ColumnDef) -> Result<(String, PrimitiveType, bool, bool)> {
    let name = ident_name(&col.name);
    let ty = iceberg_type(&col.data_type.to_string())?;
    let mut required = false;
    let mut pk = false;
    for opt in &col.options {
        match &opt.option {
            ColumnOption::NotNull => required = true,
            ColumnOption::Null => required = false,
            ColumnOption::PrimaryKey(_) => {
                pk = true;
                required = true;
            }
            other => {
                return Err(Error::FeatureNotSupported(format!(
                    "column option {other} is not supported"
                )));
            }
        }
    }
    Ok((name, ty, required, pk))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_documented_types() {
        assert_eq!(iceberg_type("INTEGER").unwrap(), PrimitiveType::Int);
        assert_eq!(iceberg_type("BIGINT").unwrap(), PrimitiveType::Long);
        assert_eq!(
            iceberg_type("double precision").unwrap(),
            PrimitiveType::Double
        );
        assert_eq!(iceberg_type("VARCHAR(20)").unwrap(), PrimitiveType::String);
        assert_eq!(
            iceberg_type("NUMERIC(10, 2)").unwrap(),
            PrimitiveType::Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(
            iceberg_type("TIMESTAMP WITH TIME ZONE").unwrap(),
            PrimitiveType::Timestamptz
        );
        assert!(matches!(
            iceberg_type("INTERVAL"),
            Err(Error::FeatureNotSupported(_))
        ));
    }
}
