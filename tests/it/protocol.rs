//! Statements streamlake answers itself (DDL, materialized views, FLUSH,
//! SHOW …, COPY) behave the same over the extended protocol — Parse, Bind,
//! Execute, as tokio-postgres `execute`/`query` and pgjdbc send them — as
//! over the simple one: same effect, same rows, same SQLSTATE.

use bytes::Bytes;
use futures::{SinkExt, TryStreamExt};

use crate::support::{Server, rows};

fn code(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| panic!("not a db error: {e}"))
}

/// Issue 7: CREATE MATERIALIZED VIEW sent with tokio-postgres `execute`
/// reported success and created nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_materialized_view_over_the_extended_protocol_creates_the_view() {
    let server = Server::start();
    let c = server.client().await;
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, g TEXT)", &[])
        .await
        .unwrap();
    assert_eq!(
        c.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')", &[])
            .await
            .unwrap(),
        2
    );
    c.execute(
        "CREATE MATERIALIZED VIEW v AS SELECT g, count(*) AS n FROM t GROUP BY g",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        rows(&c, "SELECT g, n FROM v ORDER BY g").await,
        vec![vec!["a", "1"], vec!["b", "1"]]
    );

    // The view follows its table; FLUSH prepared ends the epoch.
    assert_eq!(
        c.execute("INSERT INTO t VALUES ($1, $2)", &[&3i32, &"a"])
            .await
            .unwrap(),
        1
    );
    c.execute("FLUSH", &[]).await.unwrap();
    let n: i64 = c
        .query_one("SELECT n FROM v WHERE g = $1", &[&"a"])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);

    // SHOW … prepared, with binary results.
    let names = |rs: Vec<tokio_postgres::Row>| -> Vec<String> {
        rs.iter().map(|r| r.get::<_, String>(0)).collect()
    };
    assert_eq!(
        names(c.query("SHOW MATERIALIZED VIEWS", &[]).await.unwrap()),
        vec!["v"]
    );
    assert_eq!(names(c.query("SHOW TABLES", &[]).await.unwrap()), vec!["t"]);
    let create: String = c
        .query_one("SHOW CREATE MATERIALIZED VIEW v", &[])
        .await
        .unwrap()
        .get(1);
    assert!(
        create.starts_with("CREATE MATERIALIZED VIEW v AS"),
        "{create}"
    );

    // Errors carry the SQLSTATE the simple protocol gives.
    let dup = c
        .execute("CREATE MATERIALIZED VIEW v AS SELECT g FROM t", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&dup), "42P07");
    let dup = c.execute("CREATE TABLE t (x INT)", &[]).await.unwrap_err();
    assert_eq!(code(&dup), "42P07");

    // DROP prepared drops.
    c.execute("DROP MATERIALIZED VIEW v", &[]).await.unwrap();
    assert!(names(c.query("SHOW MATERIALIZED VIEWS", &[]).await.unwrap()).is_empty());
    let gone = c
        .execute("DROP MATERIALIZED VIEW v", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&gone), "42P01");
    c.execute("DROP TABLE t", &[]).await.unwrap();
    let gone = c.query("SELECT * FROM t", &[]).await.unwrap_err();
    assert_eq!(code(&gone), "42P01");
}

/// COPY in both directions over the extended protocol (tokio-postgres
/// always sends COPY that way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_over_the_extended_protocol_loads_and_unloads() {
    let server = Server::start();
    let c = server.client().await;
    c.execute("CREATE TABLE t (id INT PRIMARY KEY, g TEXT)", &[])
        .await
        .unwrap();
    let sink = c.copy_in::<_, Bytes>("COPY t FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(Bytes::from_static(b"1\ta\n2\tb\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    let out: Vec<Bytes> = c
        .copy_out("COPY (SELECT id, g FROM t ORDER BY id) TO STDOUT")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(out.concat(), b"1\ta\n2\tb\n");
    // A duplicate key fails the whole COPY with 23505, as over simple.
    let sink = c.copy_in::<_, Bytes>("COPY t FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(Bytes::from_static(b"3\tc\n1\tdup\n"))
        .await
        .unwrap();
    assert_eq!(code(&sink.finish().await.unwrap_err()), "23505");
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, vec![vec!["2"]]);
}

/// PostgreSQL refuses a prepared statement holding several commands
/// rather than running only the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_commands_cannot_be_prepared_as_one() {
    let server = Server::start();
    let c = server.client().await;
    c.execute("CREATE TABLE t (id INT)", &[]).await.unwrap();
    let e = c
        .execute("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42601");
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, vec![vec!["0"]]);
    // A trailing semicolon and comments are one command.
    c.execute("INSERT INTO t VALUES (1); -- done", &[])
        .await
        .unwrap();
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, vec![vec!["1"]]);
}

/// psycopg sends `DEALLOCATE ALL` after any DROP once it has prepared
/// statements, and `DEALLOCATE name` to evict one; DataFusion's DEALLOCATE
/// only knew SQL PREPARE and failed both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deallocate_answers_for_statements_prepared_with_parse() {
    let server = Server::start();
    let c = server.client().await;
    let one = c.prepare("SELECT 1::INT").await.unwrap();
    c.batch_execute("DEALLOCATE ALL").await.unwrap();
    let e = c.batch_execute("DEALLOCATE nope").await.unwrap_err();
    assert_eq!(code(&e), "26000");
    // Prepared over the extended protocol too.
    c.execute("DEALLOCATE ALL", &[]).await.unwrap();
    // DEALLOCATE ALL leaves the session's statements in place (see
    // hook::deallocate), so what the client still holds keeps working.
    let v: i32 = c.query_one(&one, &[]).await.unwrap().get(0);
    assert_eq!(v, 1);
}

/// A prepared SHOW … answers as of its execution, not of its Parse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_show_statements_answer_as_of_execution() {
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute(
        "CREATE TABLE t (id INT, g TEXT);
         CREATE MATERIALIZED VIEW v AS SELECT g FROM t",
    )
    .await
    .unwrap();
    let show_create = c.prepare("SHOW CREATE MATERIALIZED VIEW v").await.unwrap();
    let show_views = c.prepare("SHOW MATERIALIZED VIEWS").await.unwrap();
    let definition = |rows: Vec<tokio_postgres::Row>| -> String { rows[0].get(1) };
    assert_eq!(
        definition(c.query(&show_create, &[]).await.unwrap()),
        "CREATE MATERIALIZED VIEW v AS SELECT g FROM t"
    );
    c.batch_execute(
        "DROP MATERIALIZED VIEW v;
         CREATE MATERIALIZED VIEW v AS SELECT id FROM t;
         CREATE MATERIALIZED VIEW w AS SELECT id FROM t",
    )
    .await
    .unwrap();
    assert_eq!(
        definition(c.query(&show_create, &[]).await.unwrap()),
        "CREATE MATERIALIZED VIEW v AS SELECT id FROM t"
    );
    let names: Vec<String> = c
        .query(&show_views, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, vec!["v", "w"]);
}

/// Schemas and databases other than `public`/`dev` would live only in
/// DataFusion's memory (and DROP SCHEMA public would unhook every table):
/// both protocols refuse them alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_ddl_is_refused_alike_over_both_protocols() {
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute("CREATE TABLE t (id INT); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    for sql in ["CREATE SCHEMA s", "DROP SCHEMA public", "CREATE DATABASE d"] {
        let simple = c.batch_execute(sql).await.unwrap_err();
        let extended = c.execute(sql, &[]).await.unwrap_err();
        assert_eq!(code(&simple), "0A000", "{sql}");
        assert_eq!(code(&extended), "0A000", "{sql}");
    }
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, vec![vec!["1"]]);
}

/// SQL PREPARE/EXECUTE/DEALLOCATE still reach DataFusion: only names
/// prepared with Parse are streamlake's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_prepare_and_deallocate_still_work() {
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute("PREPARE sql_prepared AS SELECT 1")
        .await
        .unwrap();
    assert_eq!(rows(&c, "EXECUTE sql_prepared").await, vec![vec!["1"]]);
    // Over the extended protocol the rows come with their description.
    let one: i64 = c
        .query_one("EXECUTE sql_prepared", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(one, 1);
    c.execute("DEALLOCATE sql_prepared", &[]).await.unwrap();
    c.execute("PREPARE sql_prepared AS SELECT 2", &[])
        .await
        .unwrap();
    c.batch_execute("DEALLOCATE sql_prepared").await.unwrap();
    let e = c
        .batch_execute("DEALLOCATE sql_prepared")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "26000");
}
