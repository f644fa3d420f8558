//! Real Redis deployments on free loopback ports, for the scale-out tests: a 3-master Redis
//! Cluster (`redis-server --cluster-enabled yes` + `redis-cli --cluster create`) and a master +
//! replica watched by 3 sentinels (`redis-server --sentinel`). Every process is killed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port whose cluster bus port (+10000) is free too.
fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < 55000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

fn scratch_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "vonage-sessions-{what}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn spawn<S: AsRef<std::ffi::OsStr>>(args: &[S], dir: &PathBuf) -> Child {
    Command::new("redis-server")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start redis-server ({e}): run scripts/test, which installs it, or apt-get install redis-server")
        })
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One command to the server at `port`.
pub(crate) async fn command(port: u16, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query_async(&mut connection).await
}

async fn text(port: u16, args: &[&str]) -> String {
    match command(port, args).await {
        Ok(value) => format!("{value:?}"),
        Err(error) => format!("error: {error}"),
    }
}

/// Polls `check` every 100 ms until it holds or `within` passes.
pub(crate) async fn eventually<F: Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A 3-master Redis Cluster (no replicas).
pub(crate) struct RedisCluster {
    pub(crate) ports: Vec<u16>,
    children: Vec<Child>,
    dir: PathBuf,
}

impl RedisCluster {
    pub(crate) async fn start() -> Self {
        let dir = scratch_dir("cluster");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let children = ports
            .iter()
            .map(|port| {
                let port = port.to_string();
                let conf = format!("nodes-{port}.conf");
                spawn(
                    &[
                        "--port",
                        &port,
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &conf,
                        "--cluster-node-timeout",
                        "2000",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ],
                    &dir,
                )
            })
            .collect();
        let cluster = Self {
            ports,
            children,
            dir,
        };
        for port in &cluster.ports {
            wait_for_port(*port);
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-cli ({e}): it comes with redis-server (apt-get install redis-server)")
            });
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        for port in cluster.ports.clone() {
            eventually("cluster_state:ok", Duration::from_secs(20), || async move {
                text(port, &["CLUSTER", "INFO"])
                    .await
                    .contains("cluster_state:ok")
            })
            .await;
        }
        cluster
    }

    /// TOML overrides that point the service at this cluster.
    pub(crate) fn rooms_config(&self) -> String {
        let urls: Vec<String> = self
            .ports
            .iter()
            .map(|port| format!("\"redis://127.0.0.1:{port}\""))
            .collect();
        format!(
            "[rooms]\nstore = \"redis\"\nredis_cluster_urls = [{}]\n",
            urls.join(", ")
        )
    }

    /// How many keys each master holds.
    pub(crate) async fn keys_per_node(&self) -> Vec<i64> {
        let mut counts = Vec::new();
        for port in &self.ports {
            let value = command(*port, &["DBSIZE"]).await.unwrap();
            counts.push(redis::from_redis_value(value).unwrap());
        }
        counts
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The name the sentinels monitor the master under.
pub(crate) const MASTER_NAME: &str = "vs-master";

/// A master, one replica and three sentinels (quorum 2, a master is down after 1 s).
pub(crate) struct RedisSentinels {
    pub(crate) master_port: u16,
    pub(crate) replica_port: u16,
    pub(crate) sentinel_ports: Vec<u16>,
    master: Option<Child>,
    others: Vec<Child>,
    dir: PathBuf,
}

impl RedisSentinels {
    pub(crate) async fn start() -> Self {
        let dir = scratch_dir("sentinel");
        let master_port = free_port();
        let replica_port = free_port();
        let base = |port: u16| {
            vec![
                "--port".to_owned(),
                port.to_string(),
                "--bind".to_owned(),
                "127.0.0.1".to_owned(),
                "--save".to_owned(),
                String::new(),
                "--appendonly".to_owned(),
                "no".to_owned(),
            ]
        };
        let master = spawn(&base(master_port), &dir);
        wait_for_port(master_port);
        let mut replica_args = base(replica_port);
        replica_args.extend([
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            master_port.to_string(),
        ]);
        let mut others = vec![spawn(&replica_args, &dir)];
        wait_for_port(replica_port);
        let sentinel_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        for port in &sentinel_ports {
            // A sentinel rewrites its config file, so each gets its own.
            let conf = dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\nsentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                     sentinel failover-timeout {MASTER_NAME} 10000\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n"
                ),
            )
            .unwrap();
            others.push(spawn(&[conf.to_str().unwrap(), "--sentinel"], &dir));
        }
        let deployment = Self {
            master_port,
            replica_port,
            sentinel_ports,
            master: Some(master),
            others,
            dir,
        };
        // A failover needs every sentinel to know the replica and the other two sentinels.
        for port in deployment.sentinel_ports.clone() {
            wait_for_port(port);
            eventually(
                "the sentinels to find each other and the replica",
                Duration::from_secs(30),
                || async move {
                    let sentinels = command(port, &["SENTINEL", "SENTINELS", MASTER_NAME]).await;
                    let replicas = command(port, &["SENTINEL", "REPLICAS", MASTER_NAME]).await;
                    matches!((sentinels, replicas), (Ok(redis::Value::Array(s)), Ok(redis::Value::Array(r))) if s.len() == 2 && r.len() == 1)
                },
            )
            .await;
        }
        deployment
    }

    /// TOML overrides that point the service at these sentinels.
    pub(crate) fn rooms_config(&self) -> String {
        let urls: Vec<String> = self
            .sentinel_ports
            .iter()
            .map(|port| format!("\"redis://127.0.0.1:{port}\""))
            .collect();
        format!(
            "[rooms]\nstore = \"redis\"\nredis_sentinels = [{}]\nredis_sentinel_master = \"{MASTER_NAME}\"\n",
            urls.join(", ")
        )
    }

    /// Kills the master (SIGKILL), as a crashed machine.
    pub(crate) fn kill_master(&mut self) {
        if let Some(mut master) = self.master.take() {
            let _ = master.kill();
            let _ = master.wait();
        }
    }

    /// The master's port as the first sentinel reports it.
    pub(crate) async fn reported_master_port(&self) -> Option<u16> {
        let value = command(
            self.sentinel_ports[0],
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME],
        )
        .await
        .ok()?;
        let pair: Vec<String> = redis::from_redis_value(value).ok()?;
        pair.get(1)?.parse().ok()
    }
}

impl Drop for RedisSentinels {
    fn drop(&mut self) {
        self.kill_master();
        for child in &mut self.others {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
