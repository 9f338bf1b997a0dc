//! What real clients ask of the server, answered as PostgreSQL answers it:
//! the same statements run against streamlake and the PostgreSQL oracle,
//! and the answers (values as text, and column names where clients read
//! them) must be equal. Issue 8.

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::oracle::Postgres;
use crate::support::Server;

/// Column names and rows (NULL as "NULL") of every result of a script.
async fn answer(client: &Client, sql: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let msgs = client
        .simple_query(sql)
        .await
        .map_err(|e| match e.as_db_error() {
            Some(d) => format!("{}: {}", d.code().code(), d.message()),
            None => e.to_string(),
        })?;
    let mut names = Vec::new();
    let mut rows = Vec::new();
    for m in msgs {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                names = cols.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(r) => rows.push(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            _ => {}
        }
    }
    Ok((names, rows))
}

/// Both engines with the same schema and rows.
struct Pair {
    server: Server,
    _pg: Postgres,
    lake: Client,
    pg: Client,
}

impl Pair {
    async fn new(setup: &str) -> Pair {
        let server = Server::start();
        let pg_server = Postgres::start();
        let lake = server.client().await;
        let pg = pg_server.client().await;
        for c in [&lake, &pg] {
            c.batch_execute(setup)
                .await
                .unwrap_or_else(|e| panic!("setup: {e:?}"));
        }
        Pair {
            server,
            _pg: pg_server,
            lake,
            pg,
        }
    }

    /// The rows of `sql` must be equal on both; with `names`, the column
    /// names too.
    async fn same(&self, sql: &str, names: bool) {
        let lake = answer(&self.lake, sql).await;
        let pg = answer(&self.pg, sql).await;
        let (lake, pg) = match (lake, pg) {
            (Ok(l), Ok(p)) => (l, p),
            (l, p) => panic!(
                "{sql}\nstreamlake: {l:?}\npostgres:   {p:?}\n--- server log ---\n{}",
                self.server.log()
            ),
        };
        assert_eq!(lake.1, pg.1, "rows of {sql}");
        if names {
            assert_eq!(lake.0, pg.0, "column names of {sql}");
        }
    }

    /// Both must fail with the same SQLSTATE.
    async fn same_error(&self, sql: &str) {
        let code = |r: Result<_, String>| match r {
            Ok(_) => panic!("{sql}: expected an error"),
            Err(e) => e.split(':').next().unwrap_or_default().to_string(),
        };
        let lake = code(answer(&self.lake, sql).await);
        let pg = code(answer(&self.pg, sql).await);
        assert_eq!(lake, pg, "SQLSTATE of {sql}");
    }
}

const SETUP: &str = "
    SET TIME ZONE 'UTC';
    CREATE TABLE events (id INT PRIMARY KEY, at TIMESTAMPTZ, local TIMESTAMP, amount NUMERIC,
                         price NUMERIC(10,2), note TEXT NOT NULL, score DOUBLE PRECISION, day DATE);
    INSERT INTO events VALUES
      (1, '2024-01-01 10:00:00+00', '2024-01-01 10:00:00', 10.5, 3, 'a', 1.5, '2024-01-01'),
      (2, '2024-01-01 10:00:00.5+00', '2024-01-01 10:00:00.25', 3, 1.5, 'b', 2, '2024-02-29'),
      (3, '2024-06-30 23:59:59.123456+00', '2024-06-30 23:59:59.000001', 0.001, 0, 'c', NULL, NULL);
    CREATE TABLE pairs (a INT, b INT, c INT, PRIMARY KEY (a, c));
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_types_match_postgres() {
    let p = Pair::new(SETUP).await;
    for sql in [
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute \
         WHERE attrelid = 'events'::regclass AND attnum > 0 ORDER BY attnum",
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass('public.pairs') \
         AND attnum > 0 ORDER BY attnum",
        "SELECT to_regclass('no_such_table') IS NULL",
        "SELECT 'numeric'::regtype::oid, 'integer'::regtype::oid, 'timestamptz'::regtype::text",
        // psycopg 3's TypeInfo.fetch, for a scalar and an array type.
        "SELECT typname AS name, oid, typarray AS array_oid, oid::regtype::text AS regtype, \
         typdelim AS delimiter FROM pg_type t WHERE t.oid = to_regtype('numeric') ORDER BY t.oid",
        "SELECT typname AS name, oid, typarray AS array_oid, oid::regtype::text AS regtype, \
         typdelim AS delimiter FROM pg_type t WHERE t.oid = to_regtype('_int4') ORDER BY t.oid",
        "SELECT column_name, data_type, udt_name, is_nullable, numeric_precision, \
         numeric_precision_radix, numeric_scale, datetime_precision \
         FROM information_schema.columns WHERE table_name = 'events' ORDER BY ordinal_position",
        "SELECT table_schema, table_name, table_type FROM information_schema.tables \
         WHERE table_schema = 'public' ORDER BY table_name",
        "SELECT constraint_name, table_name, constraint_type FROM information_schema.table_constraints \
         WHERE table_schema = 'public' AND constraint_type <> 'CHECK' ORDER BY 1",
        "SELECT constraint_name, table_name, column_name, ordinal_position \
         FROM information_schema.key_column_usage WHERE table_schema = 'public' ORDER BY 1, 4",
    ] {
        p.same(sql, true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_print_as_postgres_does() {
    let p = Pair::new(SETUP).await;
    for sql in [
        "SELECT * FROM events ORDER BY id",
        "SELECT id, at::text, local::text, amount::text, price::text FROM events ORDER BY id",
        "SELECT sum(amount), sum(price), max(at), min(local) FROM events",
        "SELECT CAST(2.50 AS NUMERIC(10,2)), CAST(7 AS NUMERIC)",
    ] {
        p.same(sql, true).await;
    }
    // The session's TimeZone.
    for tz in ["America/New_York", "Asia/Kolkata", "UTC"] {
        for c in [&p.lake, &p.pg] {
            c.batch_execute(&format!("SET TIME ZONE '{tz}'"))
                .await
                .unwrap();
        }
        for sql in [
            "SELECT id, at FROM events ORDER BY id",
            "SELECT id, at::text FROM events ORDER BY id",
            "SELECT id FROM events WHERE at > TIMESTAMPTZ '2024-01-01 10:00:00+00' ORDER BY id",
        ] {
            p.same(sql, true).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_settings_match_postgres() {
    let p = Pair::new(SETUP).await;
    for sql in [
        "SHOW transaction_isolation",
        "SHOW standard_conforming_strings",
        "SHOW transaction_read_only",
        "SHOW search_path",
        "SHOW client_encoding",
        "SHOW statement_timeout",
        "SHOW TIME ZONE",
        "SHOW timezone",
        "SELECT current_setting('search_path')",
        "SELECT set_config('search_path', 'public', false)",
        "SHOW search_path",
        "SET search_path TO public, \"$user\"; SHOW search_path",
        "RESET search_path; SHOW search_path",
        "SET timezone = 'Europe/Berlin'; SHOW timezone",
        "SET TIME ZONE 'UTC'; SHOW TimeZone",
        "SET client_encoding TO 'UTF8'; SHOW client_encoding",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED; \
         SHOW transaction_isolation",
        "SET statement_timeout = '2s'; SHOW statement_timeout",
        "SET statement_timeout = 1500; SHOW statement_timeout",
        "SET statement_timeout = 0; SHOW statement_timeout",
        "SELECT name, setting, reset_val FROM pg_settings \
         WHERE name IN ('search_path', 'standard_conforming_strings', \
                        'transaction_isolation', 'client_encoding') ORDER BY name",
    ] {
        p.same(sql, true).await;
    }
    // SHOW ALL: PostgreSQL's columns; the values are each server's own.
    let lake = answer(&p.lake, "SHOW ALL").await.unwrap();
    let pg = answer(&p.pg, "SHOW ALL").await.unwrap();
    assert_eq!(lake.0, pg.0, "SHOW ALL columns");
    assert!(lake.1.iter().any(|r| r[0] == "TimeZone"), "{:?}", lake.1);
    p.same_error("SET TIME ZONE 'Mars/Olympus_Mons'").await;
    p.same_error("SHOW no_such_setting").await;
    // statement_timeout is honoured while the query runs.
    for c in [&p.lake, &p.pg] {
        c.batch_execute("SET statement_timeout = 300")
            .await
            .unwrap();
    }
    p.same_error("SELECT count(*) FROM generate_series(1, 5000000000) AS s(i) WHERE i % 7 = 3")
        .await;
    // A new statement after the timeout runs normally.
    p.same("SELECT count(*) FROM events", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_lists_postgres_accepts() {
    let p = Pair::new(SETUP).await;
    // The database is `dev` here and `postgres` there; compare the shape.
    let lake = answer(
        &p.lake,
        "SELECT current_database(), current_user, session_user",
    )
    .await
    .unwrap();
    let pg = answer(
        &p.pg,
        "SELECT current_database(), current_user, session_user",
    )
    .await
    .unwrap();
    assert_eq!(lake.0[1..], pg.0[1..], "column names");
    assert_eq!(lake.1[0][0], "dev");
    for sql in [
        "INSERT INTO pairs SELECT i, i % 10, i FROM generate_series(1, 5) AS s(i)",
        "SELECT a, b, c FROM pairs ORDER BY a",
        "SELECT a, a FROM pairs ORDER BY 1",
        "SELECT count(*), count(*) FROM pairs",
        // Output names as PostgreSQL gives them, through every query shape.
        "SELECT DISTINCT lower(note) FROM events ORDER BY lower(note)",
        "SELECT lower(note), count(*) FROM events GROUP BY lower(note) \
         HAVING count(*) > 0 ORDER BY count(*) DESC, lower(note)",
        "SELECT note, sum(price) FROM events GROUP BY 1 ORDER BY 2",
        "SELECT id, row_number() OVER (ORDER BY id DESC) FROM events ORDER BY id",
        "SELECT upper(note) FROM (SELECT note FROM events) s ORDER BY 1",
        "WITH c AS (SELECT id * 2 FROM events) SELECT * FROM c ORDER BY 1",
        "SELECT id + 1 FROM events UNION ALL SELECT id FROM events ORDER BY 1",
        "SELECT coalesce(score, 0), score FROM events ORDER BY score NULLS FIRST",
        "SELECT CASE WHEN id > 1 THEN 'big' ELSE 'small' END, id::text FROM events ORDER BY id",
        "SELECT max(price) - min(price), avg(score) FROM events",
        "SELECT id, (SELECT max(id) FROM events) FROM events ORDER BY id",
        "SELECT extract(year FROM DATE '2024-05-01'), \
         date_trunc('month', TIMESTAMP '2024-05-03 10:00:00')",
    ] {
        p.same(sql, true).await;
    }
}

/// psql's output for one command against a server.
fn psql(port: u16, user: &str, db: &str, command: &str) -> String {
    psql_session(port, user, db, &[command])
}

/// psql's output for commands run one after another in one session.
fn psql_session(port: u16, user: &str, db: &str, commands: &[&str]) -> String {
    let port = port.to_string();
    let mut cmd = std::process::Command::new("psql");
    cmd.args(["-X", "-h", "127.0.0.1", "-p", &port, "-U", user, "-d", db])
        .args(["-v", "ON_ERROR_STOP=1"]);
    for c in commands {
        cmd.args(["-c", c]);
    }
    let out = cmd.output().expect("run psql");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describes_and_copies_as_postgres_does() {
    let p = Pair::new(SETUP).await;
    for command in [
        "\\d events",
        "\\d pairs",
        "\\d+ events",
        "\\dT",
        "SELECT * FROM events ORDER BY id",
        "COPY events TO STDOUT",
        "COPY (SELECT id, at, amount, price FROM events ORDER BY id) TO STDOUT WITH (FORMAT csv)",
        "COPY (SELECT id, note, score FROM events ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)",
        "COPY (SELECT id FROM events WHERE id > 100) TO STDOUT WITH (FORMAT csv, HEADER)",
        "\\copy (SELECT id, day FROM events ORDER BY id) TO STDOUT WITH CSV HEADER",
    ] {
        let lake = psql(p.server.port, "tester", "dev", command);
        let pg = psql(p._pg.port, "postgres", "postgres", command);
        assert_eq!(lake, pg, "psql {command}");
    }
    // COPY TO prints timestamptz in the session's TimeZone.
    let session = [
        "SET TIME ZONE 'Asia/Kolkata'",
        "COPY (SELECT id, at FROM events ORDER BY id) TO STDOUT WITH (FORMAT csv)",
    ];
    let lake = psql_session(p.server.port, "tester", "dev", &session);
    let pg = psql_session(p._pg.port, "postgres", "postgres", &session);
    assert_eq!(lake, pg, "COPY TO in a session time zone");
    // \copy … FROM a CSV file with a header line.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pairs.csv");
    std::fs::write(&file, "a,b,c\n7,70,8\n9,,10\n").unwrap();
    let command = format!(
        "\\copy pairs FROM '{}' WITH (FORMAT csv, HEADER)",
        file.display()
    );
    let lake = psql(p.server.port, "tester", "dev", &command);
    let pg = psql(p._pg.port, "postgres", "postgres", &command);
    assert_eq!(lake, pg, "psql {command}");
    p.same("SELECT * FROM pairs ORDER BY a", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_functions_and_sql_clients_send() {
    let p = Pair::new(SETUP).await;
    for sql in [
        "SELECT pg_size_pretty(CAST(123456 AS BIGINT)), pg_size_pretty(CAST(10239 AS BIGINT)), \
         pg_size_pretty(CAST(5000000000 AS BIGINT))",
        "SELECT 'a_b' LIKE 'a/_b' ESCAPE '/', 'axb' LIKE 'a/_b' ESCAPE '/', \
         'a%' LIKE 'a#%' ESCAPE '#'",
        "SELECT relname FROM pg_class WHERE relname LIKE 'pair/_%' ESCAPE '/' OR relname = 'pairs'",
    ] {
        p.same(sql, true).await;
    }
    // A parameter used twice, with different inferred types, and parameters
    // out of textual order (SQLAlchemy's reflection, pandas.read_sql_table).
    for c in [&p.lake, &p.pg] {
        let rows = c
            .query(
                "SELECT id FROM events WHERE id = $1 OR id = $1 + 1 ORDER BY id",
                &[&1i32],
            )
            .await
            .unwrap();
        let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(ids, vec![1, 2]);
        let row = c
            .query_one(
                "SELECT $2::text AS b, $1::int AS a, $2::text || 'x'",
                &[&7i32, &"s"],
            )
            .await
            .unwrap();
        assert_eq!(
            (
                row.get::<_, String>(0),
                row.get::<_, i32>(1),
                row.get::<_, String>(2)
            ),
            ("s".to_string(), 7, "sx".to_string())
        );
    }
    // psql's \dt+ (relation sizes) and \d+ of a materialized view
    // (pg_get_viewdef) run; streamlake's sizes are 0 bytes.
    p.lake
        .batch_execute("CREATE MATERIALIZED VIEW big AS SELECT id, amount FROM events WHERE id > 1")
        .await
        .unwrap();
    let dt = psql(p.server.port, "tester", "dev", "\\dt+");
    assert!(dt.contains("events") && dt.contains("0 bytes"), "{dt}");
    let d = psql(p.server.port, "tester", "dev", "\\d+ big");
    assert!(
        d.contains("Materialized view \"public.big\"")
            && d.contains("View definition:")
            && d.contains("WHERE id > 1"),
        "{d}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_and_row_limits_fetch_in_pieces() {
    let mut p = Pair::new(SETUP).await;
    for sql in [
        "BEGIN; DECLARE c CURSOR FOR SELECT id, amount FROM events ORDER BY id; \
         FETCH 2 FROM c",
        "FETCH NEXT FROM c",
        "FETCH ALL FROM c",
        "CLOSE c; COMMIT",
    ] {
        p.same(sql, true).await;
    }
    // Execute with a row limit: PortalSuspended, then resumed (pgjdbc's
    // setFetchSize).
    for c in [&mut p.lake, &mut p.pg] {
        let tx = c.transaction().await.unwrap();
        let portal = tx
            .bind("SELECT id, at FROM events ORDER BY id", &[])
            .await
            .unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let rows = tx.query_portal(&portal, 2).await.unwrap();
            ids.push(rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>());
        }
        assert_eq!(ids, vec![vec![1, 2], vec![3], vec![]]);
        tx.commit().await.unwrap();
    }
}

/// pgjdbc (Debian's libpostgresql-jdbc-java) as Metabase's sync uses it:
/// DatabaseMetaData getTables/getColumns/getPrimaryKeys/getImportedKeys/
/// getIndexInfo, a type lookup, and a query read with setFetchSize. The
/// program prints every answer; both servers must print the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_metadata_and_fetch_size_match_postgres() {
    let p = Pair::new(
        "CREATE TABLE readings (id INT PRIMARY KEY, at TIMESTAMPTZ NOT NULL, local TIMESTAMP, \
           value NUMERIC, price NUMERIC(12,4), ratio DOUBLE PRECISION, label TEXT);
         INSERT INTO readings VALUES
           (1, '2024-03-10 06:59:59.5+00', '2024-03-10 01:00:00', 10.5, 3, 0.25, 'a'),
           (2, '2024-03-10 07:00:00+00', '2024-03-10 02:30:00.125', 3, 1.2345, 1e20, NULL),
           (3, '1999-12-31 23:59:59.999999+00', NULL, 0.000001, -7.5, NULL, 'c');",
    )
    .await;
    let program =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/JdbcCheck.java");
    let run = |port: u16, db: &str, user: &str| {
        let out = std::process::Command::new("java")
            .args(["-cp", "/usr/share/java/postgresql.jar"])
            .arg(&program)
            .arg(format!("jdbc:postgresql://127.0.0.1:{port}/{db}"))
            .arg(user)
            .output()
            .expect("run java (scripts/setup.sh installs a JDK and pgjdbc)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("jdbc checks done"), "{text}");
        text
    };
    let lake = run(p.server.port, "dev", "tester");
    let pg = run(p._pg.port, "postgres", "postgres");
    assert_eq!(lake, pg);
}

/// node-postgres (npm `pg`) with its default type parsers: the same fields
/// and parsed values from both servers (tests/node/pg_check.js).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres_answers_match_postgres() {
    let server = Server::start();
    let pg = Postgres::start();
    let modules = std::env::var("STREAMLAKE_NODE_MODULES").expect(
        "STREAMLAKE_NODE_MODULES is not set: run the tests with scripts/test.sh, which installs node-postgres",
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/pg_check.js");
    let out = std::process::Command::new("node")
        .arg(&script)
        .arg(format!("postgres://tester@127.0.0.1:{}/dev", server.port))
        .arg(format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            pg.port
        ))
        .env("NODE_PATH", modules)
        .output()
        .expect("run node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("node-postgres checks passed"),
        "{text}\n--- server log ---\n{}",
        server.log()
    );
}

/// Grafana's PostgreSQL data source (its table and column lists, a time
/// series with its macros expanded) and DBeaver's navigator queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_and_dbeaver_queries_match_postgres() {
    let p = Pair::new(SETUP).await;
    for sql in [
        // Grafana: the tables on the search path.
        "SELECT quote_ident(table_name) AS table_name FROM information_schema.tables \
         WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog', \
         '_timescaledb_cache', '_timescaledb_catalog', '_timescaledb_internal', \
         '_timescaledb_config', 'timescaledb_information', 'timescaledb_experimental') \
         AND table_type = 'BASE TABLE' AND quote_ident(table_schema) IN \
         (SELECT CASE WHEN trim(s[i]) = '\"$user\"' THEN user ELSE trim(s[i]) END FROM \
         generate_series(array_lower(string_to_array(current_setting('search_path'),','),1), \
         array_upper(string_to_array(current_setting('search_path'),','),1)) as i, \
         string_to_array(current_setting('search_path'),',') s) ORDER BY table_name",
        // Grafana: a table's columns.
        "SELECT quote_ident(column_name) AS column_name, data_type FROM information_schema.columns \
         WHERE quote_ident(table_name) = 'events' ORDER BY column_name",
        // Grafana: $__timeGroupAlias and $__timeFilter expanded.
        "SELECT date_trunc('minute', at) AS \"time\", count(*) AS value FROM events \
         WHERE at BETWEEN '2024-01-01T00:00:00Z' AND '2024-12-31T00:00:00Z' GROUP BY 1 ORDER BY 1",
        // DBeaver: schemas, relations, columns, indexes, constraints.
        "SELECT n.nspname FROM pg_catalog.pg_namespace n \
         LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid = n.oid AND d.objsubid = 0 \
         WHERE n.nspname = 'public'",
        "SELECT c.relname, c.relkind FROM pg_catalog.pg_class c \
         WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'public') \
         AND c.relkind NOT IN ('i', 'I', 'c') ORDER BY c.relname",
        "SELECT c.relname, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
         pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) AS def_value \
         FROM pg_catalog.pg_attribute a INNER JOIN pg_catalog.pg_class c ON a.attrelid = c.oid \
         LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum \
         WHERE NOT a.attisdropped AND c.oid = 'pairs'::regclass AND a.attnum > 0 ORDER BY a.attnum",
        "SELECT i.indisunique, i.indisprimary, pg_catalog.pg_get_indexdef(i.indexrelid) \
         FROM pg_catalog.pg_index i WHERE i.indrelid = 'pairs'::regclass",
        "SELECT conname, contype, pg_catalog.pg_get_constraintdef(c.oid, true) \
         FROM pg_catalog.pg_constraint c WHERE c.conrelid = 'pairs'::regclass ORDER BY conname",
        "SELECT user = current_user, array_lower(ARRAY[4, 5], 1), array_upper(ARRAY[4, 5], 1)",
    ] {
        p.same(sql, false).await;
    }
}
