//! The real `psql` binary: backslash commands answered from pg_catalog as
//! PostgreSQL would.

use std::process::Command;

use crate::support::Server;

fn psql(server: &Server, command: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &server.port.to_string(),
            "-U",
            "tester",
            "-d",
            "dev",
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-c", command])
        .output()
        .expect("run psql");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success() && !stderr.contains("ERROR"),
        "psql {command} failed:\n{stdout}\n{stderr}\n--- server log ---\n{}",
        server.log()
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backslash_commands_work() {
    let server = Server::start();
    let c = server.client().await;
    c.batch_execute(
        "CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR NOT NULL, joined DATE, score DOUBLE PRECISION);
         CREATE TABLE orders (id INT, customer BIGINT, amount NUMERIC(10,2));
         CREATE TABLE lines (region TEXT, note TEXT, line INT, PRIMARY KEY (region, line));",
    )
    .await
    .unwrap();

    let l = psql(&server, "\\l");
    assert!(l.contains("dev"), "{l}");
    let dn = psql(&server, "\\dn");
    assert!(dn.contains("public"), "{dn}");
    let dt = psql(&server, "\\dt");
    assert!(
        dt.contains("customers") && dt.contains("orders") && dt.contains("table"),
        "{dt}"
    );
    let d = psql(&server, "\\d");
    assert!(d.contains("customers") && d.contains("orders"), "{d}");
    let d_name = psql(&server, "\\d customers");
    for want in [
        "Table \"public.customers\"",
        "id",
        "bigint",
        "not null",
        "name",
        "joined",
        "date",
        "double precision",
    ] {
        assert!(
            d_name.contains(want),
            "\\d customers lacks {want}:\n{d_name}"
        );
    }
    // The primary key, listed as PostgreSQL lists it.
    assert!(
        d_name.contains("Indexes:\n    \"customers_pkey\" PRIMARY KEY, btree (id)\n"),
        "{d_name}"
    );
    let d_lines = psql(&server, "\\d lines");
    assert!(
        d_lines.contains("Indexes:\n    \"lines_pkey\" PRIMARY KEY, btree (region, line)\n"),
        "{d_lines}"
    );
    // The key's index is a relation of its own.
    let d_index = psql(&server, "\\d customers_pkey");
    assert!(
        d_index.contains("Index \"public.customers_pkey\"")
            && d_index.contains("primary key, btree, for table \"public.customers\""),
        "{d_index}"
    );
    let di = psql(&server, "\\di");
    assert!(
        di.contains("customers_pkey") && di.contains("lines_pkey") && di.contains("index"),
        "{di}"
    );
    let d_plus = psql(&server, "\\d+ orders");
    assert!(
        d_plus.contains("numeric(10,2)") && d_plus.contains("amount"),
        "{d_plus}"
    );
    // No key, no index.
    assert!(!d_plus.contains("Indexes:"), "{d_plus}");
    c.batch_execute(
        "CREATE MATERIALIZED VIEW spend AS SELECT customer, sum(amount) AS total FROM orders GROUP BY customer",
    )
    .await
    .unwrap();
    let dv = psql(&server, "\\dv");
    assert!(!dv.contains("customers") && !dv.contains("spend"), "{dv}");
    let dm = psql(&server, "\\dm");
    assert!(
        dm.contains("spend") && dm.contains("materialized view"),
        "{dm}"
    );
    assert!(!dm.contains("customers"), "{dm}");
    let d_view = psql(&server, "\\d spend");
    assert!(
        d_view.contains("Materialized view \"public.spend\""),
        "{d_view}"
    );
    psql(&server, "\\df");
    let conninfo = psql(&server, "\\conninfo");
    assert!(conninfo.contains("database \"dev\""), "{conninfo}");
    // A script with several statements in one simple query.
    let multi = psql(
        &server,
        "INSERT INTO orders VALUES (1, 1, 9.99); SELECT count(*) FROM orders;",
    );
    assert!(multi.contains(" 1\n"), "{multi}");
}
