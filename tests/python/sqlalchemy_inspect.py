"""SQLAlchemy's inspector over streamlake: table names, columns with types
and nullability, primary keys (pg_constraint and pg_index rows built from
the tables' keys; the key columns come in column order), the index,
unique and foreign key reflection that finds none, whole-table reflection
and materialized view names and definitions. Usage:
sqlalchemy_inspect.py PORT"""
import sys

import sqlalchemy as sa

engine = sa.create_engine(f"postgresql+psycopg://tester@127.0.0.1:{sys.argv[1]}/dev")
with engine.connect() as conn:
    conn.execute(sa.text("CREATE TABLE inventory (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL, price DOUBLE PRECISION)"))
    conn.execute(sa.text("CREATE TABLE stock (warehouse TEXT, note TEXT, sku TEXT, qty INTEGER, PRIMARY KEY (warehouse, sku))"))
    conn.execute(sa.text("CREATE TABLE notes (body TEXT)"))
    conn.commit()
insp = sa.inspect(engine)
names = insp.get_table_names()
assert "inventory" in names, names
cols = {c["name"]: c for c in insp.get_columns("inventory")}
assert list(cols) == ["sku", "qty", "price"], list(cols)
assert isinstance(cols["sku"]["type"], sa.TEXT), cols["sku"]["type"]
assert isinstance(cols["qty"]["type"], sa.INTEGER), cols["qty"]["type"]
assert cols["qty"]["nullable"] is False
assert cols["price"]["nullable"] is True

pk = insp.get_pk_constraint("inventory")
assert pk["constrained_columns"] == ["sku"], pk
assert pk["name"] == "inventory_pkey", pk
pk = insp.get_pk_constraint("stock")
assert pk["constrained_columns"] == ["warehouse", "sku"], pk
assert pk["name"] == "stock_pkey", pk
pk = insp.get_pk_constraint("notes")
assert pk["constrained_columns"] == [] and pk["name"] is None, pk
for table in ["inventory", "stock", "notes"]:
    # The key's own index is not listed (as in PostgreSQL); no others exist.
    assert insp.get_indexes(table) == [], insp.get_indexes(table)
    assert insp.get_unique_constraints(table) == [], table
    assert insp.get_foreign_keys(table) == [], table
    assert insp.get_check_constraints(table) == [], table

# A table dropped and created again under its name shows its new key.
with engine.connect() as conn:
    conn.execute(sa.text("DROP TABLE stock"))
    conn.execute(sa.text("CREATE TABLE stock (id BIGINT PRIMARY KEY, sku TEXT)"))
    conn.commit()
insp = sa.inspect(engine)
pk = insp.get_pk_constraint("stock")
assert pk["constrained_columns"] == ["id"], pk

# Whole-table reflection (it also reads table options via current_setting).
stock = sa.Table("stock", sa.MetaData(), autoload_with=engine)
assert [c.name for c in stock.columns] == ["id", "sku"], stock.columns
assert [c.name for c in stock.primary_key] == ["id"], stock.primary_key

# Materialized views are listed as such, not as tables.
with engine.connect() as conn:
    conn.execute(sa.text("CREATE MATERIALIZED VIEW stock_count AS SELECT count(*) AS n FROM stock"))
    conn.commit()
insp = sa.inspect(engine)
assert insp.get_materialized_view_names() == ["stock_count"], insp.get_materialized_view_names()
assert "stock_count" not in insp.get_table_names(), insp.get_table_names()
# Its definition (pg_get_viewdef) and columns.
definition = insp.get_view_definition("stock_count")
assert definition == "SELECT count(*) AS n FROM stock", definition
assert [c["name"] for c in insp.get_columns("stock_count")] == ["n"]
# information_schema's own views are not on the search path.
assert insp.get_view_names() == [], insp.get_view_names()
print("sqlalchemy checks passed")
