//! Failures part-way through a statement leave nothing half-done: an
//! abandoned COPY, an UPDATE that fails after reading, a commit whose
//! acknowledgment is lost, a view that cannot be created or restored.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures::SinkExt;

use crate::support::{Server, ServerOptions, rows, sqlstate};

/// Deletes the data files of table `name` from a local warehouse, so that
/// reading the table fails.
fn delete_data_files(dir: &Path, name: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            n += delete_data_files(&p, name);
        } else if p.extension().is_some_and(|x| x == "parquet")
            && p.to_string_lossy().contains(&format!("/{name}/"))
        {
            std::fs::remove_file(&p).unwrap();
            n += 1;
        }
    }
    n
}

/// Issue 7 (8a): rows of a COPY whose client went away before CopyDone
/// were committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_a_client_that_disconnects_commits_nothing() {
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (0, 'x')")
        .await
        .unwrap();

    let (c2, conn) = tokio_postgres::connect(&server.conn_string(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(conn);
    let sink = c2.copy_in::<_, Bytes>("COPY t FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    // More than the 4 MiB the server decodes into one batch, so that rows
    // have reached the table writer before the client disappears.
    let pad = "p".repeat(100);
    let mut data = String::new();
    for id in 1..=60_000 {
        data.push_str(&format!("{id}\t{pad}\n"));
    }
    sink.send(Bytes::from(data)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The socket closes with the COPY open: no CopyDone, no CopyFail.
    connection.abort();
    let _ = connection.await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, vec![vec!["1"]]);
    // The server still serves, and no key of the lost rows is taken.
    let c3 = server.client().await;
    c3.batch_execute("INSERT INTO t VALUES (1, 'one')")
        .await
        .unwrap();
    assert_eq!(rows(&c3, "SELECT count(*) FROM t").await, vec![vec!["2"]]);
}

/// Issue 7 (8b): UPDATE and DELETE took the old keys out of the
/// primary-key index before writing their files, and an error there
/// returned with the keys gone: a later INSERT of a key that still exists
/// was accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_update_or_delete_leaves_the_primary_key_index_as_it_was() {
    let server = Server::start_with(ServerOptions {
        env: vec![(
            "STREAMLAKE_FAULTS".into(),
            "rewrite-write:k,rewrite-write:d".into(),
        )],
        ..Default::default()
    });
    let c = server.client().await;
    c.batch_execute(
        "CREATE TABLE k (id INT PRIMARY KEY, v TEXT NOT NULL);
         INSERT INTO k VALUES (1, 'a'), (2, 'b');
         CREATE TABLE d (id INT PRIMARY KEY);
         INSERT INTO d VALUES (1);",
    )
    .await
    .unwrap();
    // Fails writing its files, after the keys were checked.
    assert_eq!(sqlstate(&c, "UPDATE k SET id = id + 10").await, "58030");
    assert_eq!(sqlstate(&c, "DELETE FROM d WHERE id = 1").await, "58030");
    // Keys 1 and 2 still exist; 11 and 12 never did.
    assert_eq!(
        sqlstate(&c, "INSERT INTO k VALUES (1, 'dup')").await,
        "23505"
    );
    assert_eq!(
        sqlstate(&c, "INSERT INTO k VALUES (2, 'dup')").await,
        "23505"
    );
    assert_eq!(sqlstate(&c, "INSERT INTO d VALUES (1)").await, "23505");
    c.batch_execute("INSERT INTO k VALUES (11, 'c'), (12, 'd')")
        .await
        .unwrap();
    // A failing UPDATE (NOT NULL here) changes nothing either.
    assert_eq!(
        sqlstate(
            &c,
            "UPDATE k SET id = id + 100, v = CASE WHEN id = 2 THEN NULL ELSE v END"
        )
        .await,
        "23502"
    );
    assert_eq!(
        sqlstate(&c, "INSERT INTO k VALUES (12, 'dup')").await,
        "23505"
    );
    c.batch_execute("INSERT INTO k VALUES (101, 'e')")
        .await
        .unwrap();
    assert_eq!(
        rows(&c, "SELECT id, v FROM k ORDER BY id").await,
        vec![
            vec!["1", "a"],
            vec!["2", "b"],
            vec!["11", "c"],
            vec!["12", "d"],
            vec!["101", "e"]
        ]
    );
}

/// Issue 7 (8c): a commit that became durable but reported an error (its
/// acknowledgment lost) skipped the views and left the table one commit
/// behind the catalog, so every later write failed with 40001 until a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_acknowledgment_is_lost_reaches_reads_views_and_later_writes() {
    let server = Server::start_with(ServerOptions {
        env: vec![("STREAMLAKE_FAULTS".into(), "lose-commit-ack:acked".into())],
        ..Default::default()
    });
    let c = server.client().await;
    c.batch_execute(
        "CREATE TABLE acked (id INT PRIMARY KEY, x INT);
         CREATE MATERIALIZED VIEW s AS SELECT count(*) AS n, sum(x) AS total FROM acked;",
    )
    .await
    .unwrap();
    // The first commit to `acked` takes effect but reports an error.
    c.batch_execute("INSERT INTO acked VALUES (1, 10)")
        .await
        .unwrap();
    assert!(
        server.log().contains("took effect"),
        "the fault did not fire"
    );
    c.batch_execute("FLUSH").await.unwrap();
    assert_eq!(
        rows(&c, "SELECT n, total FROM s").await,
        vec![vec!["1", "10"]]
    );
    c.batch_execute("INSERT INTO acked VALUES (2, 20); FLUSH")
        .await
        .unwrap();
    assert_eq!(
        rows(&c, "SELECT n, total FROM s").await,
        vec![vec!["2", "30"]]
    );
    assert_eq!(
        sqlstate(&c, "INSERT INTO acked VALUES (1, 0)").await,
        "23505"
    );
}

/// Issue 7 (8d): a view whose restore failed at start left its Iceberg
/// table behind, invisible, so its name could be neither dropped nor
/// created again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_that_cannot_be_restored_can_be_dropped_and_created_again() {
    let mut server = Server::start();
    let c = server.client().await;
    c.batch_execute(
        "CREATE TABLE base (id INT, x INT);
         INSERT INTO base VALUES (1, 1);
         CREATE MATERIALIZED VIEW mv AS SELECT id, x FROM base WHERE x > 0;",
    )
    .await
    .unwrap();
    drop(c);
    server.stop();
    // The view's backfill will fail: its base table's files are gone.
    assert!(delete_data_files(&server.warehouse_dir(), "base") > 0);
    server.restart();
    let c = server.client().await;
    assert!(server.log().contains("could not restore materialized view"));
    // The name is taken until the view is dropped.
    assert_eq!(sqlstate(&c, "CREATE TABLE mv (a INT)").await, "42P07");
    c.batch_execute("DROP MATERIALIZED VIEW mv").await.unwrap();
    c.batch_execute(
        "DROP TABLE base;
         CREATE TABLE base (id INT, x INT);
         INSERT INTO base VALUES (2, 2);
         CREATE MATERIALIZED VIEW mv AS SELECT id, x FROM base WHERE x > 0;",
    )
    .await
    .unwrap();
    assert_eq!(rows(&c, "SELECT id, x FROM mv").await, vec![vec!["2", "2"]]);
}

/// Issue 7 (8d): CREATE MATERIALIZED VIEW failing after its Iceberg table
/// was created left that table behind, holding the name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_that_fails_while_being_created_leaves_no_table_behind() {
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute("CREATE TABLE src (id INT, x INT); INSERT INTO src VALUES (1, 1)")
        .await
        .unwrap();
    assert!(delete_data_files(&server.warehouse_dir(), "src") > 0);
    // The backfill cannot read `src`.
    let failed = c
        .batch_execute("CREATE MATERIALIZED VIEW mv AS SELECT id FROM src")
        .await;
    assert!(failed.is_err());
    // Nothing holds the name.
    c.batch_execute("CREATE TABLE mv (a INT); INSERT INTO mv VALUES (7)")
        .await
        .unwrap();
    assert_eq!(rows(&c, "SELECT a FROM mv").await, vec![vec!["7"]]);
}
