//! A view whose operator panics: the server goes on, the view says it
//! failed (XX000 on read and on FLUSH, never stale rows as current), and it
//! rebuilds itself from its inputs (issue 7, item 5).

use std::time::{Duration, Instant};

use crate::support::{Server, ServerOptions, rows, sqlstate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_view_fails_loudly_and_rebuilds_itself() {
    let server = Server::start_with(ServerOptions {
        env: vec![("STREAMLAKE_FAULTS".into(), "view-panic:boom".into())],
        ..Default::default()
    });
    let c = server.client().await;
    c.batch_execute(
        "CREATE TABLE t (id INT PRIMARY KEY, x INT);
         CREATE MATERIALIZED VIEW boom AS SELECT count(*) AS n, sum(x) AS s FROM t;
         CREATE MATERIALIZED VIEW fine AS SELECT count(*) AS n FROM t;
         CREATE MATERIALIZED VIEW over_boom AS SELECT n * 10 AS n10 FROM boom;
         INSERT INTO t VALUES (1, 10), (2, 20);",
    )
    .await
    .unwrap();
    // The panic happens at the first barrier that carries the rows.
    assert_eq!(sqlstate(&c, "FLUSH").await, "XX000");
    assert_eq!(sqlstate(&c, "SELECT * FROM boom").await, "XX000");
    // Other views and tables go on.
    assert_eq!(rows(&c, "SELECT n FROM fine").await, vec![vec!["2"]]);
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, vec![vec!["2"]]);
    let log = server.log();
    assert!(log.contains("injected fault"), "the panic is logged");
    assert!(log.contains("backtrace"), "with its backtrace");
    // The view rebuilds from its inputs, and the view over it too.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if c.simple_query("FLUSH").await.is_ok()
            && let Ok(r) = c.simple_query("SELECT n, s FROM boom").await
            && !r.is_empty()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the view did not rebuild");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        rows(&c, "SELECT n, s FROM boom").await,
        vec![vec!["2", "30"]]
    );
    c.batch_execute("INSERT INTO t VALUES (3, 5); FLUSH")
        .await
        .unwrap();
    assert_eq!(
        rows(&c, "SELECT n, s FROM boom").await,
        vec![vec!["3", "35"]]
    );
    assert_eq!(
        rows(&c, "SELECT n10 FROM over_boom").await,
        vec![vec!["30"]]
    );
}
