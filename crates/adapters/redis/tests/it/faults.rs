//! A Redis restart: the queue hands out its pending entries again.

use std::path::PathBuf;
use std::time::Duration;

use domain::ids::TenantId;
use domain::job::{JobKey, NewJob};
use ports::queue::{JobQueue, ReserveFilter};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::{connect, fresh_namespace};

struct Server {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// A private redis-server that persists every write (AOF, fsync always).
    async fn start(port: u16, dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always", "--dir"])
            .arg(&dir)
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the restart test (apt-get install redis-server)");
        let server = Self {
            port,
            dir,
            child: Some(child),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        for _ in 0..100 {
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(mut c) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_queue_hands_out_its_pending_entries_again() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!(
        "attio-sync-redis-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut server = Server::start(port, dir.clone()).await;
    let q = connect(&server.url(), &fresh_namespace()).await;
    let t = TenantId::parse("acme").unwrap();
    for n in 0..3 {
        q.enqueue(NewJob::new(
            JobKey::new(t.clone(), "people", &format!("r{n}")).unwrap(),
            json!({ "n": n }),
        ))
        .await
        .unwrap();
    }
    let in_flight = q
        .reserve(
            "worker-1",
            Duration::from_millis(300),
            &ReserveFilter::all(),
        )
        .await
        .unwrap()
        .unwrap();

    server.kill().await;
    let mut restarted = Server::start(port, dir).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut seen = Vec::new();
    for _ in 0..50 {
        match q
            .reserve("worker-2", Duration::from_secs(30), &ReserveFilter::all())
            .await
        {
            Ok(Some(r)) => {
                if r.job.id == in_flight.job.id {
                    assert_eq!(
                        r.job.attempts, 2,
                        "the job in flight at the crash is delivered again"
                    );
                }
                seen.push(r.job.key.entity.clone());
                q.ack(&r).await.unwrap();
            }
            Ok(None) => break,
            Err(e) => {
                assert!(
                    e.is_retryable(),
                    "only transient errors while reconnecting: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        vec!["r0", "r1", "r2"],
        "every job survives the restart"
    );
    restarted.kill().await;
}

/// What `open_stores` warns on: whether the server keeps its data across a restart.
#[tokio::test]
async fn persistence_is_reported_as_the_server_is_configured() {
    let dir = std::env::temp_dir().join(format!(
        "attio-sync-redis-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let server = Server::start(free_port(), dir).await;
    let s = connect(&server.url(), &fresh_namespace()).await;
    assert_eq!(s.persists().await.ok(), Some(true), "AOF on");
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: String = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("no")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        s.persists().await.ok(),
        Some(false),
        "neither AOF nor snapshots"
    );
}
