//! Many sessions at once: writes to one table are serialized and none is
//! lost; a failing statement or a dropped connection affects nobody else.

use crate::support::{Server, rows, sqlstate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing() {
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute("CREATE TABLE hits (session INT, n INT)")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for s in 0..8 {
        let client = server.client().await;
        tasks.push(tokio::spawn(async move {
            for n in 0..15 {
                client
                    .execute("INSERT INTO hits VALUES ($1, $2)", &[&s, &n])
                    .await
                    .unwrap();
            }
        }));
    }
    // Meanwhile another session keeps failing, and one client vanishes.
    let bad = server.client().await;
    for _ in 0..5 {
        assert_eq!(sqlstate(&bad, "SELECT * FROM missing_table").await, "42P01");
    }
    {
        let gone = server.client().await;
        let _ = gone.simple_query("SELECT count(*) FROM hits").await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        rows(
            &c,
            "SELECT count(*), count(DISTINCT session), sum(n) FROM hits"
        )
        .await,
        vec![vec!["120", "8", "840"]]
    );
    // The session that failed is still usable.
    assert_eq!(rows(&bad, "SELECT 1").await, vec![vec!["1"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_inserts_are_compacted() {
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute("CREATE TABLE small (id INT)")
        .await
        .unwrap();
    for i in 0..40 {
        c.execute("INSERT INTO small VALUES ($1)", &[&i])
            .await
            .unwrap();
    }
    assert_eq!(
        rows(&c, "SELECT count(*), sum(id) FROM small").await,
        vec![vec!["40", "780"]]
    );
    let data_dir = server.warehouse_dir().join("public/small/data");
    let live = crate::support::run_python(
        "live_files.py",
        &[server.catalog_db().to_str().unwrap(), "public.small"],
        &[],
    );
    let n: usize = live.trim().parse().unwrap();
    assert!(
        n < 16,
        "expected compaction, found {n} live data files in {}",
        data_dir.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_with_tokio_postgres_then_more_statements() {
    use futures::SinkExt;
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute("CREATE TABLE loaded (id BIGINT, g INT, x BIGINT)")
        .await
        .unwrap();
    let sink = c.copy_in("COPY loaded FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    let mut buf = String::new();
    for i in 0..200_000 {
        buf.push_str(&format!("{i}\t{}\t{}\n", i % 100, i % 7));
        if buf.len() > 1 << 16 {
            sink.send(bytes::Bytes::from(std::mem::take(&mut buf)))
                .await
                .unwrap();
        }
    }
    sink.send(bytes::Bytes::from(buf)).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 200_000);
    let next = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        c.batch_execute(
            "CREATE TABLE after_copy (id BIGINT); INSERT INTO after_copy VALUES (1), (2)",
        ),
    )
    .await
    .expect("statement after COPY hung");
    next.unwrap();
    assert_eq!(
        rows(&c, "SELECT count(*) FROM loaded").await,
        vec![vec!["200000"]]
    );
}

/// One SELECT over two views of the same table sees both as of one epoch,
/// while a writer inserts and FLUSH ends epochs as fast as it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_sees_every_view_at_one_epoch() {
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute(
        "CREATE TABLE ticks (x BIGINT);
         CREATE MATERIALIZED VIEW tick_count AS SELECT count(*) AS n FROM ticks;
         CREATE MATERIALIZED VIEW tick_sum AS SELECT sum(x) AS s, count(*) AS n FROM ticks",
    )
    .await
    .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let client = server.client().await;
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                client
                    .batch_execute("INSERT INTO ticks VALUES (1)")
                    .await
                    .unwrap();
            }
        })
    };
    let flusher = {
        let client = server.client().await;
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                client.batch_execute("FLUSH").await.unwrap();
            }
        })
    };
    // Thousands of reads, within a bounded time on a busy machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(45);
    let mut reads = 0;
    let seen = tokio::time::timeout(std::time::Duration::from_secs(90), async {
        let mut seen = std::collections::BTreeSet::new();
        while reads < 3000 && std::time::Instant::now() < deadline {
            reads += 1;
            let r = rows(
                &c,
                "SELECT a.n, b.n, coalesce(b.s, 0) FROM tick_count a, tick_sum b",
            )
            .await;
            assert_eq!(r.len(), 1, "{r:?}");
            assert_eq!(r[0][0], r[0][1], "two views at different epochs: {r:?}");
            assert_eq!(r[0][1], r[0][2], "{r:?}");
            seen.insert(r[0][0].parse::<u64>().unwrap());
        }
        seen
    })
    .await
    .expect("reads did not finish in time");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.await.unwrap();
    flusher.await.unwrap();
    assert!(reads >= 300, "only {reads} reads");
    // The views moved while they were read.
    assert!(seen.len() > 10, "only {} distinct counts seen", seen.len());
}

/// A COPY that is still streaming holds its table's writer lock, but not
/// the epochs: FLUSH on another session returns meanwhile, and the COPY's
/// rows reach the view once it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_copy_does_not_block_flush() {
    use futures::SinkExt;
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute(
        "CREATE TABLE slow (id BIGINT);
         CREATE MATERIALIZED VIEW slow_count AS SELECT count(*) AS n FROM slow;
         CREATE TABLE other (id BIGINT);
         CREATE MATERIALIZED VIEW other_count AS SELECT count(*) AS n FROM other",
    )
    .await
    .unwrap();
    let sink = c.copy_in("COPY slow FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from("1\n2\n")).await.unwrap();
    let other = server.client().await;
    let flushed = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        other.batch_execute("INSERT INTO other VALUES (1); FLUSH"),
    )
    .await
    .expect("FLUSH waited for another session's COPY");
    flushed.unwrap();
    assert_eq!(
        rows(&other, "SELECT n FROM other_count").await,
        vec![vec!["1"]]
    );
    assert_eq!(
        rows(&other, "SELECT n FROM slow_count").await,
        vec![vec!["0"]]
    );
    sink.send(bytes::Bytes::from("3\n")).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 3);
    other.batch_execute("FLUSH").await.unwrap();
    assert_eq!(
        rows(&other, "SELECT n FROM slow_count").await,
        vec![vec!["3"]]
    );
}

/// A statement too big to keep in memory feeds its views from the files it
/// committed (here every statement is "too big": the limit is one byte).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_statements_feed_views_from_their_committed_files() {
    use futures::SinkExt;
    let server = Server::start_with(crate::support::ServerOptions {
        env: vec![("STREAMLAKE_REPORT_MEMORY_BYTES".into(), "1".into())],
        ..Default::default()
    });
    let c = server.client().await;
    c.batch_execute(
        "CREATE TABLE big (id BIGINT, g INT);
         CREATE MATERIALIZED VIEW big_by_g AS SELECT g, count(*) AS n, sum(id) AS s FROM big GROUP BY g;
         INSERT INTO big VALUES (1, 0), (2, 1), (3, 0);",
    )
    .await
    .unwrap();
    let sink = c.copy_in("COPY big FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    let mut buf = String::new();
    for i in 10..50_010 {
        buf.push_str(&format!("{i}\t{}\n", i % 3));
    }
    sink.send(bytes::Bytes::from(buf)).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 50_000);
    c.batch_execute("UPDATE big SET g = 2 WHERE id = 1; FLUSH")
        .await
        .unwrap();
    let expected = rows(
        &c,
        "SELECT g, count(*), sum(id) FROM big GROUP BY g ORDER BY g",
    )
    .await;
    assert_eq!(expected.len(), 3);
    assert_eq!(
        rows(&c, "SELECT g, n, s FROM big_by_g ORDER BY g").await,
        expected
    );
}
