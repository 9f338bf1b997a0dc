//! Real Python clients: psycopg 3 (extended protocol, binary, COPY),
//! SQLAlchemy's inspector, and pyiceberg reading what streamlake wrote.

use crate::support::{Server, rows, run_python};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_parameters_prepared_binary_copy_and_errors() {
    let server = Server::start();
    let out = run_python("psycopg_check.py", &[&server.conn_string()], &[]);
    assert!(out.contains("psycopg checks passed"), "{out}");
    assert!(out.contains("prepared statement checks passed"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlalchemy_inspector_sees_tables_and_columns() {
    let server = Server::start();
    let out = run_python("sqlalchemy_inspect.py", &[&server.port.to_string()], &[]);
    assert!(out.contains("sqlalchemy checks passed"), "{out}");
}

/// Rows of a table as pyiceberg reads them (JSON arrays, sorted).
pub fn iceberg_rows(
    catalog_db: &str,
    table: &str,
    env: &[(&str, &str)],
) -> Vec<Vec<Option<String>>> {
    run_python("pyiceberg_read.py", &[catalog_db, table], env)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The same rows over pgwire, in pyiceberg's text form, sorted.
pub async fn pgwire_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let mut out: Vec<Vec<Option<String>>> = rows(client, sql)
        .await
        .into_iter()
        .map(|r| r.into_iter().map(|v| (v != "NULL").then_some(v)).collect())
        .collect();
    out.sort_by_key(|r| {
        r.iter()
            .map(|v| v.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    });
    out
}

/// A workload touching every write path, then pyiceberg must see exactly
/// the rows SELECT returns.
pub async fn write_and_compare(server: &Server, env: &[(&str, &str)]) {
    let c = server.client().await;
    c.batch_execute(
        "CREATE TABLE people (id INT PRIMARY KEY, name TEXT, score BIGINT);
         INSERT INTO people VALUES (1, 'ann', 10), (2, 'bob', 20), (3, 'cy', 30), (4, 'di', NULL);
         INSERT INTO people SELECT id + 10, name || '2', score * 2 FROM people;
         UPDATE people SET score = score + 1 WHERE id IN (2, 12);
         DELETE FROM people WHERE name = 'cy' OR id = 14;
         CREATE TABLE notes (body TEXT);
         INSERT INTO notes VALUES ('a'), (NULL), ('');
         DELETE FROM notes WHERE body = 'zzz';",
    )
    .await
    .unwrap();
    for i in 0..20 {
        c.execute("INSERT INTO notes VALUES ($1)", &[&format!("n{i}")])
            .await
            .unwrap();
    }
    let catalog = server.catalog_db();
    let catalog = catalog.to_str().unwrap();
    for (table, select) in [
        (
            "public.people",
            "SELECT id::text, name, score::text FROM people",
        ),
        ("public.notes", "SELECT body FROM notes"),
    ] {
        let expected = pgwire_rows(&c, select).await;
        let got = iceberg_rows(catalog, table, env);
        assert_eq!(got, expected, "pyiceberg disagrees with SELECT on {table}");
    }
    assert_eq!(
        rows(&c, "SELECT count(*) FROM people").await,
        vec![vec!["6"]],
        "people after the workload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyiceberg_reads_exactly_what_was_written_on_local_disk() {
    let mut server = Server::start();
    write_and_compare(&server, &[]).await;
    // And after a restart the same.
    server.stop();
    server.restart();
    let c = server.client().await;
    assert_eq!(
        rows(&c, "SELECT count(*) FROM notes").await,
        vec![vec!["23"]]
    );
}

/// psycopg 3 and SQLAlchemy against streamlake and the PostgreSQL oracle:
/// the same calls must return the same answers (issue 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_and_sqlalchemy_answers_match_postgres() {
    let server = Server::start();
    let pg = crate::oracle::Postgres::start();
    let pg_dsn = format!(
        "host=127.0.0.1 port={} dbname=postgres user=postgres",
        pg.port
    );
    let out = run_python("client_compat.py", &[&server.conn_string(), &pg_dsn], &[]);
    assert!(out.contains("client compat checks passed"), "{out}");
}
