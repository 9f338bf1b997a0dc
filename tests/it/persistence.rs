//! Durability: tables and acknowledged rows survive a clean stop and a
//! kill -9 at an arbitrary moment.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::{Server, rows, sqlstate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_and_rows_survive_a_clean_restart() {
    let mut server = Server::start();
    let c = server.client().await;
    c.batch_execute(
        "CREATE TABLE accounts (id INT PRIMARY KEY, owner TEXT NOT NULL, balance NUMERIC(12,2));
         INSERT INTO accounts VALUES (1, 'ann', 10.50), (2, 'bob', 20), (3, 'cy', NULL);
         UPDATE accounts SET balance = balance + 1 WHERE id = 2;
         DELETE FROM accounts WHERE id = 3;
         CREATE TABLE empty_one (x BIGINT);",
    )
    .await
    .unwrap();
    drop(c);
    server.stop();
    server.restart();
    let c = server.client().await;
    assert_eq!(
        rows(&c, "SELECT id, owner, balance FROM accounts ORDER BY id").await,
        vec![vec!["1", "ann", "10.50"], vec!["2", "bob", "21.00"]]
    );
    assert_eq!(
        rows(&c, "SELECT count(*) FROM empty_one").await,
        vec![vec!["0"]]
    );
    // The primary key is still enforced after the restart.
    assert_eq!(
        sqlstate(&c, "INSERT INTO accounts VALUES (1, 'dup', 0)").await,
        "23505"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_row_is_lost_over_kill_9() {
    let mut server = Server::start();
    let c = server.client().await;
    c.batch_execute("CREATE TABLE events (id BIGINT PRIMARY KEY, payload TEXT)")
        .await
        .unwrap();
    let acked = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3i64 {
        let client = server.client().await;
        let acked = acked.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let id = w * 1_000_000 + i;
                let sql = format!(
                    "INSERT INTO events VALUES ({id}, 'w{w}'), ({}, 'w{w}')",
                    id + 500_000
                );
                match client.simple_query(&sql).await {
                    Ok(_) => acked.lock().unwrap().extend([id, id + 500_000]),
                    Err(_) => break, // the server died mid-statement
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "too few inserts before the kill: {}",
        acked.len()
    );
    server.restart();
    let c = server.client().await;
    let stored: std::collections::HashSet<i64> = rows(&c, "SELECT id FROM events")
        .await
        .into_iter()
        .map(|r| r[0].parse().unwrap())
        .collect();
    let missing: Vec<_> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(missing.is_empty(), "acknowledged rows lost: {missing:?}");
    // Statements are atomic: both rows of each INSERT or neither.
    for id in &stored {
        let pair = if id % 1_000_000 >= 500_000 {
            id - 500_000
        } else {
            id + 500_000
        };
        assert!(stored.contains(&pair), "half of a statement survived: {id}");
    }
    // And the table keeps working.
    c.batch_execute("INSERT INTO events VALUES (-1, 'after')")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_commit_writes_a_new_metadata_file() {
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute("CREATE TABLE m (x INT); INSERT INTO m VALUES (1); INSERT INTO m VALUES (2); DELETE FROM m WHERE x = 1;")
        .await
        .unwrap();
    let dir = server.warehouse_dir().join("public/m/metadata");
    let mut versions: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".metadata.json"))
        .collect();
    versions.sort();
    // create + three commits: four files, versions 0..=3, none overwritten.
    assert_eq!(versions.len(), 4, "{versions:?}");
    for (i, v) in versions.iter().enumerate() {
        assert!(v.starts_with(&format!("{i:05}-")), "{versions:?}");
    }
    assert_eq!(rows(&c, "SELECT x FROM m").await, vec![vec!["2"]]);
}

/// Epochs keep increasing across a kill -9: the snapshots a view commits
/// after the restart carry epochs above every one committed before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epochs_continue_above_the_last_run_after_kill9() {
    let epochs = |server: &Server| -> Vec<u64> {
        crate::support::run_python(
            "view_epochs.py",
            &[server.catalog_db().to_str().unwrap(), "public.ev_count"],
            &[],
        )
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
    };
    let mut server = Server::start();
    let c = server.client().await;
    c.batch_execute(
        "CREATE TABLE ev (x INT);
         CREATE MATERIALIZED VIEW ev_count AS SELECT count(*) AS n FROM ev;
         INSERT INTO ev VALUES (1); FLUSH;
         INSERT INTO ev VALUES (2); FLUSH;",
    )
    .await
    .unwrap();
    let before = epochs(&server);
    assert!(before.len() >= 2, "{before:?}");
    drop(c);
    server.kill9();
    server.restart();
    let c = server.client().await;
    c.batch_execute("INSERT INTO ev VALUES (3); FLUSH;")
        .await
        .unwrap();
    assert_eq!(rows(&c, "SELECT n FROM ev_count").await, vec![vec!["3"]]);
    let after = epochs(&server);
    assert!(after.len() > before.len(), "{before:?} then {after:?}");
    assert!(
        after.windows(2).all(|w| w[0] < w[1]),
        "epochs went back after the restart: {after:?}"
    );
}
