//! Differential tests with adversarial data (issue 7): bigint values near
//! ±2^62 and at the i64 bounds, huge and tiny doubles, NULLs and ties in
//! every ordering column, divisions by zero and overflows that appear and
//! then go away. After every few random statements each view is compared
//! with its query run by PostgreSQL and by DataFusion in the same server:
//! the same rows (numerics exactly, doubles to nine significant digits),
//! the same column types, or the same error (SQLSTATE).

use tokio_postgres::Client;

use crate::oracle::Postgres;
use crate::support::{Rng, Server};

const TABLE: &str = "CREATE TABLE bids (id BIGINT PRIMARY KEY, auction BIGINT, bidder INT, \
     price BIGINT, qty INT, rate DOUBLE PRECISION, dec NUMERIC(20,4), channel TEXT)";

/// Views whose rows are determined by their query (ties broken by id).
const VIEWS: &[(&str, &str)] = &[
    (
        "x_sums",
        "SELECT auction, count(*) AS n, sum(price) AS sp, avg(price) AS ap, sum(qty) AS sq, \
         avg(qty) AS aq, sum(dec) AS sd, avg(dec) AS ad, sum(rate) AS sr, avg(rate) AS ar, \
         min(price) AS lo, max(price) AS hi FROM bids GROUP BY auction",
    ),
    (
        "x_global",
        "SELECT count(*) AS n, sum(price) AS sp, avg(price) AS ap, sum(rate) AS sr, \
         stddev_samp(rate) AS sd, var_pop(rate) AS vp, min(rate) AS lo FROM bids",
    ),
    // Division by zero comes and goes with qty = 0.
    (
        "x_ratio",
        "SELECT id, price / qty AS r FROM bids WHERE bidder IS NOT NULL",
    ),
    (
        "x_ratio_sum",
        "SELECT bidder, count(*) AS n, sum(price / qty) AS s FROM bids GROUP BY bidder",
    ),
    // Overflow comes and goes with the i64/i32 bounds.
    (
        "x_overflow",
        "SELECT id, qty * 2 AS q2, price + 1 AS p1 FROM bids WHERE auction IS NOT NULL",
    ),
    (
        "x_round",
        "SELECT auction, round(avg(price), 2) AS r2, sum(price::numeric / 3) AS s3, \
         sum(price % 10) AS m10, round(avg(dec), 3) AS rd FROM bids GROUP BY auction",
    ),
    (
        "x_dedup",
        "SELECT DISTINCT ON (auction) auction, id, price FROM bids ORDER BY auction, price DESC, id",
    ),
    (
        "x_dedup_asc",
        "SELECT DISTINCT ON (bidder) bidder, id, rate FROM bids ORDER BY bidder, rate, id",
    ),
    (
        "x_top",
        "SELECT bidder, id, rn FROM (SELECT bidder, id, ROW_NUMBER() OVER \
         (PARTITION BY bidder ORDER BY price DESC, id) AS rn FROM bids) AS t WHERE rn <= 2",
    ),
    (
        "x_rank",
        "SELECT * FROM (SELECT auction, id, RANK() OVER (PARTITION BY auction \
         ORDER BY channel NULLS FIRST) AS rk FROM bids) AS t WHERE rk <= 2",
    ),
    (
        "x_limit",
        "SELECT id, rate FROM bids ORDER BY rate DESC, id LIMIT 4",
    ),
    (
        "x_strings",
        "SELECT auction, string_agg(channel, ',' ORDER BY channel DESC, id) AS chans, \
         array_agg(price ORDER BY price, id) AS prices FROM bids GROUP BY auction",
    ),
    (
        "x_by_channel",
        "SELECT channel, min(rate) AS lo, max(rate) AS hi, count(rate) AS n, sum(rate) AS s, \
         max(dec) AS md FROM bids GROUP BY channel",
    ),
];

/// DISTINCT ON without ORDER BY: any whole row per key. Checked as: one
/// row per key, and each row is a row of the table.
const ANY_ROW: &str = "SELECT DISTINCT ON (auction) auction, id, price, channel FROM bids";

fn value_row(rng: &mut Rng, id: i64) -> String {
    let auction = rng.pick(&["1", "2", "3", "NULL"]);
    let bidder = rng.pick(&["1", "2", "3", "4", "NULL"]);
    let small = (rng.below(250) as i64 - 50).to_string();
    let near = format!("{}", 4611686018427387904i64 + rng.below(1000) as i64);
    let near_neg = format!("{}", -4611686018427387904i64 - rng.below(1000) as i64);
    let price = match rng.below(12) {
        0 => "NULL",
        1 | 2 => &near,
        3 => &near_neg,
        4 if rng.below(3) == 0 => "9223372036854775807",
        5 if rng.below(3) == 0 => "-9223372036854775808",
        6 => "0",
        _ => &small,
    }
    .to_string();
    let q = (1 + rng.below(9)).to_string();
    let qty = match rng.below(14) {
        0 => "NULL",
        1 => "0",
        2 if rng.below(2) == 0 => "2147483647",
        3 => "-1",
        _ => &q,
    }
    .to_string();
    let normal = format!("{}.{:02}", rng.below(100), rng.below(100));
    let rate = match rng.below(12) {
        0 => "NULL",
        1 => "1e150",
        2 => "1e-150",
        3 => "1000000000000000.3",
        4 => "0.1",
        _ => &normal,
    }
    .to_string();
    let d = format!(
        "{}{}.{:04}",
        if rng.below(4) == 0 { "-" } else { "" },
        rng.below(100_000),
        rng.below(10_000)
    );
    let dec = match rng.below(8) {
        0 => "NULL",
        1 => "0.0001",
        2 => "-99999999.9999",
        _ => &d,
    }
    .to_string();
    let channel = rng.pick(&["'a'", "'b'", "'c'", "NULL"]);
    format!("({id}, {auction}, {bidder}, {price}, {qty}, {rate}, {dec}, {channel})")
}

fn statement(rng: &mut Rng, next_id: &mut i64) -> String {
    match rng.below(12) {
        0..=3 => {
            let n = 1 + rng.below(4);
            let rows: Vec<String> = (0..n)
                .map(|_| {
                    *next_id += 1;
                    value_row(rng, *next_id)
                })
                .collect();
            format!("INSERT INTO bids VALUES {}", rows.join(", "))
        }
        4 => format!("DELETE FROM bids WHERE id % 5 = {}", rng.below(5)),
        // The offending rows go away (errors disappear).
        5 => "DELETE FROM bids WHERE qty = 0 OR qty = 2147483647 \
              OR price = 9223372036854775807"
            .to_string(),
        6 => "UPDATE bids SET qty = 3 WHERE qty = 0 OR qty = 2147483647".to_string(),
        // Huge doubles come and go: sums must come back exactly.
        7 => "DELETE FROM bids WHERE rate > 1e100".to_string(),
        8 => format!(
            "UPDATE bids SET price = {} WHERE id % 4 = {}",
            rng.pick(&[
                "NULL",
                "4611686018427387904",
                "-4611686018427387905",
                "7",
                "0"
            ]),
            rng.below(4)
        ),
        9 => format!(
            "UPDATE bids SET channel = {}, auction = {} WHERE id % 3 = {}",
            rng.pick(&["NULL", "'a'", "'c'"]),
            rng.pick(&["1", "2", "NULL"]),
            rng.below(3)
        ),
        10 => format!(
            "UPDATE bids SET rate = {} WHERE id % 6 = {}",
            rng.pick(&["NULL", "1e150", "2.5", "1e-150"]),
            rng.below(6)
        ),
        _ => format!(
            "UPDATE bids SET qty = 0 WHERE id = {}",
            1 + rng.below(*next_id as u64)
        ),
    }
}

/// A query's outcome: its column types and rows, or its SQLSTATE.
type Outcome = Result<(Vec<String>, Vec<Vec<String>>), String>;

async fn run(c: &Client, sql: &str) -> Outcome {
    let stmt = match c.prepare(sql).await {
        Ok(s) => s,
        Err(e) => return Err(code(&e)),
    };
    let types: Vec<String> = stmt
        .columns()
        .iter()
        .map(|c| c.type_().name().to_string())
        .collect();
    let msgs = match c.simple_query(sql).await {
        Ok(m) => m,
        Err(e) => return Err(code(&e)),
    };
    let mut rows = Vec::new();
    for m in msgs {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            rows.push(
                (0..r.len())
                    .map(|i| normalize(&types[i], r.get(i)))
                    .collect::<Vec<_>>(),
            );
        }
    }
    rows.sort();
    Ok((types, rows))
}

fn code(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| format!("{} ({})", d.code().code(), d.message()))
        .unwrap_or_else(|| e.to_string())
}

/// Values compared the way each type deserves: numerics exactly (up to
/// 16 fractional digits: PostgreSQL shows 20 for small quotients), doubles
/// to nine significant digits (engines sum in different orders).
fn normalize(ty: &str, v: Option<&str>) -> String {
    let Some(v) = v else {
        return "NULL".into();
    };
    match ty {
        "numeric" => numeric(v),
        "float8" | "float4" => match v.parse::<f64>() {
            Ok(0.0) => "0".into(),
            Ok(f) if f.is_finite() => format!("{f:.9e}"),
            _ => v.to_lowercase(),
        },
        _ => v.to_string(),
    }
}

fn numeric(v: &str) -> String {
    let (neg, digits) = match v.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, v),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut int: Vec<u8> = int.bytes().map(|b| b - b'0').collect();
    let mut frac: Vec<u8> = frac.bytes().map(|b| b - b'0').collect();
    if frac.len() > 16 {
        let up = frac[16] >= 5;
        frac.truncate(16);
        if up {
            // Carry through the fraction and the integer part.
            let mut i = frac.len();
            let mut carry = true;
            while carry && i > 0 {
                i -= 1;
                frac[i] += 1;
                carry = frac[i] == 10;
                if carry {
                    frac[i] = 0;
                }
            }
            let mut j = int.len();
            while carry && j > 0 {
                j -= 1;
                int[j] += 1;
                carry = int[j] == 10;
                if carry {
                    int[j] = 0;
                }
            }
            if carry {
                int.insert(0, 1);
            }
        }
    }
    while frac.last() == Some(&0) {
        frac.pop();
    }
    let int: String = int.iter().map(|d| (d + b'0') as char).collect();
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let frac: String = frac.iter().map(|d| (d + b'0') as char).collect();
    let body = if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    };
    if neg && body != "0" {
        format!("-{body}")
    } else {
        body
    }
}

fn same(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => x == y,
        // Errors agree on the SQLSTATE, not the wording.
        (Err(x), Err(y)) => x.get(..5) == y.get(..5),
        _ => false,
    }
}

async fn compare_all(c: &Client, pg: &Client, seed: u64, step: usize) {
    c.batch_execute("FLUSH").await.unwrap();
    for (name, query) in VIEWS {
        let view = run(c, &format!("SELECT * FROM {name}")).await;
        let oracle = run(pg, query).await;
        assert!(
            same(&view, &oracle),
            "seed {seed}, step {step}: view {name} differs from PostgreSQL\nview:   {view:?}\noracle: {oracle:?}"
        );
        let batch = run(c, query).await;
        assert!(
            same(&view, &batch),
            "seed {seed}, step {step}: view {name} differs from its batch query\nview:  {view:?}\nbatch: {batch:?}"
        );
    }
    // DISTINCT ON without ORDER BY: one whole row of the table per key.
    let keys = run(c, "SELECT DISTINCT auction FROM x_any").await;
    let want = run(pg, "SELECT DISTINCT auction FROM bids").await;
    assert!(
        same(&keys, &want),
        "seed {seed}, step {step}: x_any keys {keys:?} vs {want:?}"
    );
    let counts = run(
        c,
        "SELECT count(*), count(DISTINCT auction) FROM x_any WHERE auction IS NOT NULL",
    )
    .await
    .expect("x_any");
    assert_eq!(
        counts.1[0][0], counts.1[0][1],
        "seed {seed}: one row per key"
    );
    let real = run(
        c,
        "SELECT count(*) FROM x_any v JOIN bids b ON v.id = b.id \
         AND (v.auction IS NOT DISTINCT FROM b.auction) AND (v.price IS NOT DISTINCT FROM b.price) \
         AND (v.channel IS NOT DISTINCT FROM b.channel)",
    )
    .await
    .expect("x_any rows");
    let all = run(c, "SELECT count(*) FROM x_any").await.expect("x_any");
    assert_eq!(
        real.1, all.1,
        "seed {seed}, step {step}: x_any rows are table rows"
    );
}

async fn both(c: &Client, pg: &Client, sql: &str, seed: u64, step: usize) {
    let ours = c.batch_execute(sql).await.map_err(|e| code(&e));
    let theirs = pg.batch_execute(sql).await.map_err(|e| code(&e));
    assert_eq!(
        ours.is_ok(),
        theirs.is_ok(),
        "seed {seed}, step {step}: {sql}: streamlake {ours:?}, PostgreSQL {theirs:?}"
    );
}

async fn run_seed(seed: u64, pg: &Client) {
    let server = Server::start();
    let c = server.client().await;
    pg.batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        .await
        .unwrap();
    both(&c, pg, TABLE, seed, 0).await;
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut next_id = 0i64;
    let rows: Vec<String> = (0..16)
        .map(|_| {
            next_id += 1;
            value_row(&mut rng, next_id)
        })
        .collect();
    both(
        &c,
        pg,
        &format!("INSERT INTO bids VALUES {}", rows.join(", ")),
        seed,
        0,
    )
    .await;
    for (name, query) in VIEWS {
        c.batch_execute(&format!("CREATE MATERIALIZED VIEW {name} AS {query}"))
            .await
            .unwrap_or_else(|e| panic!("create {name}: {}", code(&e)));
    }
    c.batch_execute(&format!("CREATE MATERIALIZED VIEW x_any AS {ANY_ROW}"))
        .await
        .unwrap();
    compare_all(&c, pg, seed, 0).await;
    for step in 1..=18 {
        let sql = statement(&mut rng, &mut next_id);
        both(&c, pg, &sql, seed, step).await;
        if step % 3 == 0 {
            compare_all(&c, pg, seed, step).await;
        }
    }
    // Volatile functions are refused, naming the function.
    for (f, sql) in [
        ("random", "SELECT id, random() AS r FROM bids"),
        ("now", "SELECT id FROM bids WHERE now() > '2020-01-01'"),
        ("uuid", "SELECT id, gen_random_uuid() AS u FROM bids"),
    ] {
        let e = c
            .batch_execute(&format!("CREATE MATERIALIZED VIEW x_bad AS {sql}"))
            .await
            .expect_err("a volatile function is refused");
        let text = code(&e);
        assert!(text.starts_with("0A000") && text.contains(f), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_are_exact_under_adversarial_data() {
    let postgres = Postgres::start();
    let pg = postgres.client().await;
    // ADVERSARIAL_SEEDS=1,2 runs other seeds (to reproduce a failure).
    let seeds: Vec<u64> = std::env::var("ADVERSARIAL_SEEDS")
        .map(|s| s.split(',').map(|x| x.trim().parse().unwrap()).collect())
        .unwrap_or_else(|_| vec![3, 11, 19, 23, 101]);
    for seed in seeds {
        tokio::time::timeout(std::time::Duration::from_secs(180), run_seed(seed, &pg))
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: timed out"));
    }
}

#[test]
fn numerics_normalize_to_sixteen_fractional_digits() {
    assert_eq!(numeric("1.5000000000000000"), "1.5");
    assert_eq!(numeric("0.33333333333333333333"), "0.3333333333333333");
    assert_eq!(numeric("0.99999999999999999999"), "1");
    assert_eq!(numeric("-0.00000000000000000001"), "0");
    assert_eq!(numeric("-12.50"), "-12.5");
    assert_eq!(numeric("100"), "100");
}
