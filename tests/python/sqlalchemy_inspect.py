"""SQLAlchemy's inspector over streamlake: table names, columns with types
and nullability. (Primary-key reflection needs pg_constraint rows, which
the catalog emulation does not have yet.) Usage: sqlalchemy_inspect.py PORT"""
import sys

import sqlalchemy as sa

engine = sa.create_engine(f"postgresql+psycopg://tester@127.0.0.1:{sys.argv[1]}/dev")
with engine.connect() as conn:
    conn.execute(sa.text("CREATE TABLE inventory (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL, price DOUBLE PRECISION)"))
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
print("sqlalchemy checks passed")
