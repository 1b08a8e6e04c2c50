//! Where integration tests find the real PostgreSQL and Redis they talk to, in this order:
//!
//! 1. `DATABASE_URL` / `REDIS_URL` when set (used as given, even if unreachable, so a typo fails
//!    loudly rather than silently testing something else);
//! 2. the local server at the default address (`127.0.0.1:5432` trust auth, `127.0.0.1:6379`)
//!    when it answers;
//! 3. a throwaway container started with testcontainers when a Docker engine is present (it is
//!    kept for the rest of the test process);
//! 4. otherwise a panic naming both options. Never a silent skip.

pub mod capture;
pub mod jwt;
pub mod logs;
pub mod openapi;
pub mod otlp;

use std::future::Future;
use std::time::Duration;

use tokio::sync::OnceCell;

/// One kind of server the tests need.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    pub name: &'static str,
    pub env_var: &'static str,
    pub default_url: &'static str,
    pub default_addr: &'static str,
}

pub const POSTGRES: Service = Service {
    name: "PostgreSQL",
    env_var: "DATABASE_URL",
    default_url: "postgres://postgres@127.0.0.1:5432/test",
    default_addr: "127.0.0.1:5432",
};

pub const REDIS: Service = Service {
    name: "Redis",
    env_var: "REDIS_URL",
    default_url: "redis://127.0.0.1:6379",
    default_addr: "127.0.0.1:6379",
};

async fn answers(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// The resolution order above, with the environment and the container starter passed in.
pub async fn resolve<F, Fut>(
    service: &Service,
    env: Option<String>,
    start_container: F,
) -> Result<String, String>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    if let Some(url) = env.filter(|u| !u.trim().is_empty()) {
        return Ok(url);
    }
    if answers(service.default_addr).await {
        return Ok(service.default_url.to_owned());
    }
    start_container().await.map_err(|e| {
        format!(
            "{name} is needed by these tests: {var} is not set, nothing answers at {addr}, and \
             testcontainers could not start one ({e}). Set {var} to a reachable server, or start a \
             Docker engine so that testcontainers can.",
            name = service.name,
            var = service.env_var,
            addr = service.default_addr,
        )
    })
}

async fn start_postgres() -> Result<String, String> {
    use testcontainers::runners::AsyncRunner;
    let c = testcontainers_modules::postgres::Postgres::default()
        .with_host_auth()
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let port = c
        .get_host_port_ipv4(5432)
        .await
        .map_err(|e| e.to_string())?;
    // Kept for the rest of the process: every test of the binary shares it.
    Box::leak(Box::new(c));
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

async fn start_redis() -> Result<String, String> {
    use testcontainers::runners::AsyncRunner;
    let c = testcontainers_modules::redis::Redis::default()
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let port = c
        .get_host_port_ipv4(6379)
        .await
        .map_err(|e| e.to_string())?;
    Box::leak(Box::new(c));
    Ok(format!("redis://127.0.0.1:{port}"))
}

/// A listener on a free loopback port, and its base URL (for a test's local HTTP server).
pub async fn bind_local() -> (tokio::net::TcpListener, String) {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("cannot bind a local server: {e}"),
    };
    let url = match listener.local_addr() {
        Ok(a) => format!("http://{a}"),
        Err(e) => panic!("no address: {e}"),
    };
    (listener, url)
}

/// The PostgreSQL URL for this test process; panics with instructions when there is none.
pub async fn postgres_url() -> String {
    static URL: OnceCell<Result<String, String>> = OnceCell::const_new();
    let url = URL
        .get_or_init(|| {
            resolve(
                &POSTGRES,
                std::env::var(POSTGRES.env_var).ok(),
                start_postgres,
            )
        })
        .await;
    url.clone().unwrap_or_else(|e| panic!("{e}"))
}

/// The Redis URL for this test process; panics with instructions when there is none.
pub async fn redis_url() -> String {
    static URL: OnceCell<Result<String, String>> = OnceCell::const_new();
    let url = URL
        .get_or_init(|| resolve(&REDIS, std::env::var(REDIS.env_var).ok(), start_redis))
        .await;
    url.clone().unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nowhere() -> Service {
        // A port nothing listens on: bind one, then let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: &'static str = Box::leak(format!("127.0.0.1:{port}").into_boxed_str());
        Service {
            name: "Thing",
            env_var: "THING_URL",
            default_url: "thing://default",
            default_addr: addr,
        }
    }

    #[tokio::test]
    async fn the_environment_wins() {
        let got = resolve(&nowhere(), Some("thing://env".into()), || async {
            Err("not called".into())
        })
        .await;
        assert_eq!(got.unwrap(), "thing://env");
    }

    #[tokio::test]
    async fn a_local_server_that_answers_is_used() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: &'static str =
            Box::leak(listener.local_addr().unwrap().to_string().into_boxed_str());
        let service = Service {
            default_addr: addr,
            ..nowhere()
        };
        let got = resolve(&service, None, || async { Err("not called".into()) }).await;
        assert_eq!(got.unwrap(), "thing://default");
    }

    #[tokio::test]
    async fn otherwise_a_container_is_started() {
        let got = resolve(&nowhere(), None, || async {
            Ok("thing://container".into())
        })
        .await;
        assert_eq!(got.unwrap(), "thing://container");
    }

    #[tokio::test]
    async fn without_docker_the_failure_names_both_options() {
        let err = resolve(&nowhere(), Some("  ".into()), || async {
            Err("Socket not found".into())
        })
        .await
        .unwrap_err();
        for needle in ["THING_URL", "Docker", "testcontainers", "Socket not found"] {
            assert!(err.contains(needle), "{needle:?} missing from: {err}");
        }
    }
}
