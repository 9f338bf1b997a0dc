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
