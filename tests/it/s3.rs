//! The same tables on an S3 warehouse served by a real S3-compatible server
//! process (moto, which honours conditional puts atomically).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::python::write_and_compare;
use crate::support::{Server, ServerOptions, free_port, python, rows};

struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = free_port();
        let bin = python().parent().unwrap().join("moto_server");
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server from the test venv");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    fn create_bucket(&self, name: &str) {
        let status = Command::new(python())
            .arg("-c")
            .arg(format!(
                "import boto3; boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', \
                 aws_secret_access_key='test', region_name='us-east-1').create_bucket(Bucket='{name}')",
                self.endpoint
            ))
            .status()
            .unwrap();
        assert!(status.success(), "create bucket");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_on_s3_survive_restart_and_read_back_in_pyiceberg() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let env = vec![
        ("AWS_ACCESS_KEY_ID".to_string(), "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), "test".to_string()),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
    ];
    let mut server = Server::start_with(ServerOptions {
        warehouse: Some("s3://lake/warehouse".into()),
        s3_endpoint: Some(moto.endpoint.clone()),
        env: env.clone(),
        ..Default::default()
    });
    let py_env: Vec<(&str, &str)> = env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([("S3_ENDPOINT", moto.endpoint.as_str())])
        .collect();
    write_and_compare(&server, &py_env).await;
    server.stop();
    server.restart();
    let c = server.client().await;
    assert_eq!(
        rows(&c, "SELECT count(*) FROM people").await,
        vec![vec!["6"]]
    );
    c.batch_execute("DELETE FROM people WHERE id > 10")
        .await
        .unwrap();
    assert_eq!(
        rows(&c, "SELECT count(*) FROM people").await,
        vec![vec!["3"]]
    );
    // Nothing was written to the local warehouse directory.
    assert!(!server.warehouse_dir().join("public").exists());
}
