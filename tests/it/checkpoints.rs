//! Epochs vs checkpoints, and bounded history (issue 9, item 3): barriers
//! end epochs often and reads follow them, but views commit to Iceberg only
//! at checkpoints; every table and view expires old snapshots and old
//! metadata files as it commits, and pyiceberg still reads all of it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::{Server, ServerOptions, rows, run_python};

/// A table's history as pyiceberg sees it (tests/python/iceberg_history.py).
#[derive(Debug)]
struct History {
    /// (snapshot id, streamlake.epoch, row count), oldest first.
    snapshots: Vec<(i64, Option<u64>, u64)>,
    metadata_log: usize,
    /// Every file a kept snapshot reaches, as local paths.
    reachable: std::collections::BTreeSet<String>,
    /// The current rows, as text, sorted (as `python::iceberg_rows`).
    rows: Vec<Vec<Option<String>>>,
    /// The current snapshot's sequence number: how many commits so far.
    sequence: u64,
}

/// The histories of `tables` (`public.name`), in order, read by one
/// pyiceberg run.
fn histories(server: &Server, tables: &[&str]) -> Vec<History> {
    let mut args = vec![server.catalog_db().to_str().unwrap().to_string()];
    args.extend(tables.iter().map(|t| t.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_python("iceberg_history.py", &args, &[]);
    out.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            History {
                snapshots: v["snapshots"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| {
                        (
                            s["id"].as_i64().unwrap(),
                            s["epoch"].as_str().map(|e| e.parse().unwrap()),
                            s["rows"].as_u64().unwrap(),
                        )
                    })
                    .collect(),
                metadata_log: v["metadata_log"].as_u64().unwrap() as usize,
                reachable: v["reachable"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        p.as_str()
                            .unwrap()
                            .trim_start_matches("file://")
                            .to_string()
                    })
                    .collect(),
                rows: serde_json::from_value(v["rows"].clone()).unwrap(),
                sequence: v["sequence"].as_u64().unwrap_or(0),
            }
        })
        .collect()
}

/// Every view's Iceberg table holds exactly what SELECT returns.
fn views_match(server: &Server) {
    let out = run_python(
        "views_match.py",
        &[
            &server.port.to_string(),
            server.catalog_db().to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.contains("views match"), "{out}");
}

/// Paths of the files in a directory whose names end with `suffix`.
fn files(dir: &Path, suffix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
                .map(|e| e.path().canonicalize().unwrap().display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The table, a count per group, and the rows of the filtering view.
async fn contents(c: &tokio_postgres::Client) -> Vec<Vec<Vec<String>>> {
    vec![
        rows(c, "SELECT count(*), sum(id), sum(g) FROM t").await,
        rows(c, "SELECT g, n, s FROM by_g ORDER BY g").await,
        rows(c, "SELECT id, g FROM thirds ORDER BY id").await,
    ]
}

/// Each table's history is the last 5 snapshots and at most 3 previous
/// metadata files, and nothing on disk is left that no kept snapshot
/// reaches: every manifest list, manifest, data and delete file in its
/// directory is listed by a kept snapshot. And pyiceberg reads table `t`
/// exactly as SELECT does (the views: [`views_match`]).
async fn check_histories(server: &Server, c: &tokio_postgres::Client) {
    let names = ["t", "by_g", "thirds"];
    let tables: Vec<String> = names.iter().map(|n| format!("public.{n}")).collect();
    let tables: Vec<&str> = tables.iter().map(String::as_str).collect();
    let histories = histories(server, &tables);
    for (name, h) in names.iter().zip(&histories) {
        check_history(server, name, h);
    }
    // Many commits went by: 144 statements (and compactions) on the
    // table, a checkpoint after most of them on the views.
    let commits: Vec<u64> = histories.iter().map(|h| h.sequence).collect();
    assert!(
        commits[0] >= 144 && commits[1] >= 30 && commits[2] >= 10,
        "commits of t, by_g, thirds: {commits:?}"
    );
    assert_eq!(
        histories[0].rows,
        crate::python::pgwire_rows(c, "SELECT id::text, g::text FROM t").await
    );
}

fn check_history(server: &Server, name: &str, h: &History) {
    assert_eq!(h.snapshots.len(), 5, "{name}: {:?}", h.snapshots);
    assert!(
        h.metadata_log <= 3,
        "{name}: metadata log {}",
        h.metadata_log
    );
    let dir = server.warehouse_dir().join("public").join(name);
    let versions = files(&dir.join("metadata"), ".metadata.json");
    assert!(versions.len() <= 4, "{name}: {versions:?}");
    let mut on_disk = files(&dir.join("metadata"), ".avro");
    on_disk.extend(files(&dir.join("data"), ".parquet"));
    let left: Vec<&String> = on_disk
        .iter()
        .filter(|p| !h.reachable.contains(*p))
        .collect();
    assert!(
        left.is_empty(),
        "{name}: {} of {} files no kept snapshot reaches: {left:?}",
        left.len(),
        on_disk.len()
    );
    assert_eq!(
        on_disk.len(),
        h.reachable.len(),
        "{name}: a reachable file is gone"
    );
}

/// Small INSERTs for 20 s with a barrier every 200 ms and a checkpoint
/// every 2 s: reads follow the epochs (and see both views at one epoch),
/// but each view's table grows by a snapshot per checkpoint, not per epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_commit_once_per_checkpoint_not_once_per_epoch() {
    let server = Server::start_with(ServerOptions {
        flags: vec![
            ("barrier_interval".into(), "200ms".into()),
            ("checkpoint_interval".into(), "2s".into()),
        ],
        ..Default::default()
    });
    let c = server.client().await;
    c.batch_execute(
        "CREATE TABLE ticks (x BIGINT);
         CREATE MATERIALIZED VIEW tick_count AS SELECT count(*) AS n FROM ticks;
         CREATE MATERIALIZED VIEW tick_sum AS SELECT sum(x) AS s, count(*) AS n FROM ticks",
    )
    .await
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let client = server.client().await;
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                client
                    .batch_execute("INSERT INTO ticks VALUES (1)")
                    .await
                    .unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            n
        })
    };
    let start = Instant::now();
    let run = Duration::from_secs(20);
    let mut seen = std::collections::BTreeSet::new();
    while start.elapsed() < run {
        let r = rows(
            &c,
            "SELECT a.n, b.n, coalesce(b.s, 0) FROM tick_count a, tick_sum b",
        )
        .await;
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0][0], r[0][1], "two views at different epochs: {r:?}");
        assert_eq!(r[0][1], r[0][2], "{r:?}");
        seen.insert(r[0][0].parse::<u64>().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let inserted = writer.await.unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    // Reads moved with the epochs, many times per checkpoint.
    assert!(
        seen.len() as f64 > elapsed,
        "reads saw only {} distinct counts in {elapsed:.0} s",
        seen.len()
    );
    let views = ["public.tick_count", "public.tick_sum"];
    for (view, h) in views.iter().zip(histories(&server, &views)) {
        let epochs: Vec<u64> = h.snapshots.iter().filter_map(|s| s.1).collect();
        // One snapshot per checkpoint (every 2 s, a few more on a slow
        // machine), far from one per epoch (every 200 ms).
        let most = (elapsed / 2.0).ceil() as usize + 3;
        assert!(
            (3..=most).contains(&epochs.len()),
            "{view}: {} snapshots in {elapsed:.0} s (at most {most}): {epochs:?}",
            epochs.len()
        );
        let span = epochs.last().unwrap() - epochs.first().unwrap();
        assert!(
            span >= 3 * (epochs.len() as u64 - 1),
            "{view}: committed epochs {epochs:?} are not checkpoints several epochs apart"
        );
    }
    // FLUSH forces a checkpoint: the tables then equal SELECT.
    c.batch_execute("FLUSH").await.unwrap();
    assert_eq!(
        rows(&c, "SELECT n FROM tick_count").await,
        vec![vec![inserted.to_string()]]
    );
    views_match(&server);
}

/// A table and two views commit about 150 times each (single-row
/// statements, FLUSH in a loop) with snapshots expired at once
/// (snapshot_min_age 0): their history stays at the last 5
/// snapshots and 3 previous metadata files, every kept snapshot still
/// reads in full, pyiceberg reads exactly what SELECT returns, and a
/// restart restores everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_stays_bounded_over_many_commits_and_after_a_restart() {
    let mut server = Server::start_with(ServerOptions {
        config: Some(
            "snapshot_retain_last = 5\n\
             snapshot_min_age = \"0s\"\n\
             metadata_previous_versions_max = 3\n\
             checkpoint_interval = \"1h\"\n"
                .into(),
        ),
        ..Default::default()
    });
    let c = server.client().await;
    c.batch_execute(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, g INT);
         CREATE MATERIALIZED VIEW by_g AS SELECT g, count(*) AS n, sum(id) AS s FROM t GROUP BY g;
         CREATE MATERIALIZED VIEW thirds AS SELECT id, g FROM t WHERE id % 3 = 0;",
    )
    .await
    .unwrap();
    // A writer commits to the table ~150 times (120 INSERTs, 24 UPDATEs
    // and DELETEs, compactions) while FLUSH commits the views.
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let w = server.client().await;
        let written = written.clone();
        tokio::spawn(async move {
            for i in 0..120i64 {
                w.execute("INSERT INTO t VALUES ($1, $2)", &[&i, &((i % 7) as i32)])
                    .await
                    .unwrap();
                if i % 10 == 9 {
                    // Copy-on-write: data files leave the table.
                    w.batch_execute(&format!(
                        "UPDATE t SET g = g + 1 WHERE id = {}; DELETE FROM t WHERE id = {}",
                        i - 3,
                        i - 6
                    ))
                    .await
                    .unwrap();
                }
                written.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // A checkpoint after each change, as fast as they come.
    let mut flushed = 0;
    while flushed < 120 {
        let now = written.load(Ordering::SeqCst);
        if now == flushed {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        c.batch_execute("FLUSH").await.unwrap();
        flushed = now;
    }
    writer.await.unwrap();
    let before = contents(&c).await;
    assert_eq!(before[0][0][0], "108");
    // The views equal their queries.
    assert_eq!(
        before[1],
        rows(
            &c,
            "SELECT g, count(*), sum(id) FROM t GROUP BY g ORDER BY g"
        )
        .await
    );
    assert_eq!(
        before[2],
        rows(&c, "SELECT id, g FROM t WHERE id % 3 = 0 ORDER BY id").await
    );
    check_histories(&server, &c).await;
    views_match(&server);

    // A restart restores the table and both views, which go on.
    drop(c);
    server.stop();
    server.restart();
    let c = server.client().await;
    assert_eq!(contents(&c).await, before);
    c.batch_execute("INSERT INTO t VALUES (1000, 1), (1002, 2); FLUSH")
        .await
        .unwrap();
    assert_eq!(
        rows(&c, "SELECT count(*) FROM thirds").await,
        vec![vec![(before[2].len() + 1).to_string()]]
    );
    check_histories(&server, &c).await;
    views_match(&server);
}
