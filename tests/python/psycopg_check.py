"""psycopg 3 against streamlake: parameters, named prepared statements,
binary results, COPY, and errors with SQLSTATEs. Usage: psycopg_check.py CONNINFO"""
import datetime
import decimal
import sys

import psycopg
from psycopg import sql

conninfo = sys.argv[1]

with psycopg.connect(conninfo, autocommit=True) as conn:
    conn.execute(
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer TEXT NOT NULL, "
        "amount NUMERIC(10,2), paid BOOLEAN, placed TIMESTAMPTZ, note TEXT)"
    )
    # Parameters with inferred types, many rows.
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (i, f"c{i % 3}", decimal.Decimal(i) / 4, i % 2 == 0,
                 datetime.datetime(2026, 11, 22, 9, i, tzinfo=datetime.timezone.utc),
                 None if i % 5 == 0 else f"n{i}")
                for i in range(1, 21)
            ],
        )
    # Text parameter, int parameter, result rows.
    cur = conn.execute(
        "SELECT id, customer FROM orders WHERE customer = %s AND id > %s ORDER BY id",
        ("c1", 5),
    )
    got = cur.fetchall()
    assert got == [(7, "c1"), (10, "c1"), (13, "c1"), (16, "c1"), (19, "c1")], got

    # Named prepared statement reused with different parameters.
    for n in (3, 7, 11):
        cur = conn.execute("SELECT count(*) FROM orders WHERE id <= %s", (n,), prepare=True)
        assert cur.fetchone()[0] == n

    # Binary results.
    with conn.cursor(binary=True) as bcur:
        bcur.execute("SELECT id, customer, paid, amount FROM orders WHERE id = %s", (4,))
        row = bcur.fetchone()
        assert row == (4, "c1", True, decimal.Decimal("1.00")), row
        bcur.execute("SELECT placed FROM orders WHERE id = 2")
        assert bcur.fetchone()[0] == datetime.datetime(2026, 11, 22, 9, 2, tzinfo=datetime.timezone.utc)

    # UPDATE/DELETE with parameters report their row counts.
    cur = conn.execute("UPDATE orders SET note = %s WHERE customer = %s", ("vip", "c0"))
    assert cur.rowcount == 6, cur.rowcount
    cur = conn.execute("DELETE FROM orders WHERE id > %s", (18,))
    assert cur.rowcount == 2, cur.rowcount

    # Errors carry SQLSTATEs and leave the connection usable.
    for stmt, code in [
        ("INSERT INTO orders (id, customer) VALUES (1, 'x')", "23505"),
        ("SELECT * FROM no_such_table", "42P01"),
        ("SELEC 1", "42601"),
        ("CREATE TABLE orders (x INT)", "42P07"),
    ]:
        try:
            conn.execute(stmt)
        except psycopg.Error as e:
            assert e.sqlstate == code, (stmt, e.sqlstate, str(e))
        else:
            raise AssertionError(f"{stmt} should fail")
    assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 18

    # COPY in (text and CSV) and out.
    conn.execute("CREATE TABLE bulk (id INT, label TEXT)")
    with conn.cursor() as cur:
        with cur.copy("COPY bulk FROM STDIN") as copy:
            for i in range(1000):
                copy.write_row((i, None if i % 100 == 0 else f"l{i}"))
        with cur.copy("COPY bulk (id, label) FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write('1000,"with, comma"\n1001,\n1002,""\n')
    assert conn.execute("SELECT count(*), count(label) FROM bulk").fetchone() == (1003, 992)
    assert conn.execute("SELECT label FROM bulk WHERE id = 1000").fetchone()[0] == "with, comma"
    assert conn.execute("SELECT label FROM bulk WHERE id = 1002").fetchone()[0] == ""
    with conn.cursor() as cur:
        with cur.copy("COPY (SELECT id, label FROM bulk WHERE id < 3 ORDER BY id) TO STDOUT") as copy:
            out = [r for r in copy.rows()]
        assert out == [("0", None), ("1", "l1"), ("2", "l2")], out
        with cur.copy("COPY (SELECT id, label FROM bulk WHERE id IN (1, 2) ORDER BY id) TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(["int4", "text"])
            out = [r for r in copy.rows()]
        assert out == [(1, "l1"), (2, "l2")], out
    # A COPY with a bad row loads nothing.
    with conn.cursor() as cur:
        try:
            with cur.copy("COPY bulk FROM STDIN") as copy:
                copy.write("5000\tok\nnot-a-number\tbad\n")
        except psycopg.Error as e:
            assert e.sqlstate.startswith("22"), e.sqlstate
        else:
            raise AssertionError("bad COPY should fail")
    assert conn.execute("SELECT count(*) FROM bulk WHERE id = 5000").fetchone()[0] == 0

print("psycopg checks passed")

# Ten or more parameters keep their order (datafusion-postgres sorts them as
# strings; the front door pads their names).
with psycopg.connect(conninfo, autocommit=True) as conn:
    conn.execute("CREATE TABLE wide (a INT, b TEXT, c INT, d TEXT, e INT, f TEXT, g INT, h TEXT, i INT, j TEXT, k INT, l TEXT)")
    vals = (1, "b", 3, "d", 5, "f", 7, "h", 9, "j", 11, "l")
    conn.execute("INSERT INTO wide VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", vals)
    got = conn.execute("SELECT * FROM wide WHERE k = %s AND l = %s AND a = %s", (11, "l", 1)).fetchone()
    assert got == vals, got
print("wide parameter checks passed")

# Issue 7: statements streamlake runs itself, prepared (prepare=True sends
# Parse/Bind/Execute), do what they do unprepared.
with psycopg.connect(conninfo, autocommit=True) as conn:
    for stmt in [
        "CREATE TABLE sales (id INT PRIMARY KEY, region TEXT, amount INT)",
        "INSERT INTO sales VALUES (1, 'eu', 10), (2, 'us', 5)",
        "CREATE MATERIALIZED VIEW by_region AS SELECT region, sum(amount) AS total FROM sales GROUP BY region",
    ]:
        conn.execute(stmt, prepare=True)
    assert conn.execute("SHOW MATERIALIZED VIEWS", prepare=True).fetchall() == [("by_region",)]
    conn.execute("INSERT INTO sales VALUES (%s, %s, %s)", (3, "eu", 7), prepare=True)
    conn.execute("FLUSH", prepare=True)
    got = conn.execute("SELECT region, total FROM by_region ORDER BY region", prepare=True).fetchall()
    assert got == [("eu", 17), ("us", 5)], got
    try:
        conn.execute("CREATE MATERIALIZED VIEW by_region AS SELECT 1 FROM sales", prepare=True)
    except psycopg.Error as e:
        assert e.sqlstate == "42P07", e.sqlstate
    else:
        raise AssertionError("duplicate view should fail")
    conn.execute("DROP MATERIALIZED VIEW by_region", prepare=True)
    assert conn.execute("SHOW MATERIALIZED VIEWS", prepare=True).fetchall() == []
print("prepared statement checks passed")
