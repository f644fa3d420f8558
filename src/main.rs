//! The `vonage-sessions` command line: `serve` (default), `dev`, `emulator`, `healthcheck`,
//! `check-config`. Thin: configuration lives in `config`, wiring in `app`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use vonage_sessions::app::App;
use vonage_sessions::config::{Config, ConfigError, LogFormat, REDACTED, Sources};
use vonage_sessions::emulator::{Emulator, Faults};
use vonage_sessions::load::load_for_serve;
use vonage_sessions::telemetry;
use vonage_sessions::video::Credentials;

mod commands;
mod example_page;
mod output;

/// A server that creates Vonage Video sessions and mints client tokens, so that browsers and
/// apps never hold Vonage credentials.
#[derive(Debug, Parser)]
#[command(name = "vonage-sessions", version, about)]
struct Cli {
    /// Directory holding `<VONAGE_SESSIONS_ENV>.toml` overlays.
    #[arg(long, global = true, value_name = "DIR", default_value = "config")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the production server (the default), configured by files and env.
    Serve(ListenArgs),
    /// Quick start: the server plus an embedded emulator with throwaway credentials.
    Dev(DevArgs),
    /// Run only the emulated Vonage Video API.
    Emulator(EmulatorArgs),
    /// Exit 0 when /readyz answers 200 (for the container's HEALTHCHECK).
    Healthcheck(HealthcheckArgs),
    /// Load and validate the configuration, report every problem (exit 78), or print the
    /// effective configuration as TOML with secrets redacted (exit 0).
    CheckConfig,
}

#[derive(Debug, Args, Default)]
struct ListenArgs {
    /// Address to listen on (overrides server.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
struct DevArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Use legacy OpenTok key/secret credentials instead of a Vonage application.
    #[arg(long)]
    legacy: bool,
    /// Also serve this directory (the built examples/web: examples/web/dist) as a front end that
    /// joins rooms through this service with the official Vonage browser SDK.
    #[arg(long, value_name = "DIR")]
    example_page: Option<PathBuf>,
    /// Address of the example page's own listener (another origin than the service).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    example_listen: SocketAddr,
}

#[derive(Debug, Args)]
struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// The application's public key (PEM), instead of deriving it from VONAGE_PRIVATE_KEY.
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
    /// Added latency on every Vonage API call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of Vonage API calls answered with --error-status (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Status of injected errors.
    #[arg(long, default_value_t = 503)]
    error_status: u16,
    /// Share of Vonage API calls whose connection is dropped without an answer (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
}

#[derive(Debug, Args)]
struct HealthcheckArgs {
    /// URL to probe. Default: /readyz on the configured server.listen (config files and
    /// VONAGE_SESSIONS__SERVER__LISTEN), a wildcard address replaced by loopback.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Give up after this many milliseconds (connecting and answering).
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    timeout_ms: u64,
}

/// Exit status for configuration errors (sysexits `EX_CONFIG`).
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = |name: &str| std::env::var(name).ok();
    let sources = Sources {
        config_dir: cli.config.clone(),
        env: &env,
        process_env_overrides: true,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            output::err(format!("error: cannot start the async runtime: {error}"));
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve(ListenArgs::default())) {
        Command::Serve(args) => runtime.block_on(serve(&sources, args)),
        Command::Dev(args) => {
            let example = args.example_page.map(|dir| (dir, args.example_listen));
            runtime.block_on(commands::dev(&sources, args.listen, args.legacy, example))
        }
        Command::Emulator(args) => runtime.block_on(emulator(&env, args)),
        Command::Healthcheck(args) => return runtime.block_on(healthcheck(&sources, args)),
        Command::CheckConfig => check_config(&sources),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let config_error = error.downcast_ref::<ConfigError>().is_some();
            output::err(format!("error: {error:#}"));
            if config_error {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn serve(sources: &Sources<'_>, args: ListenArgs) -> anyhow::Result<()> {
    let (config, credentials, _) = load_for_serve(sources, args.listen)?;
    let _log = telemetry::init(&config.log);
    let app = App::build(&config, credentials).await?;
    let shutdown = commands::shutdown_signal();
    output::out(format!(
        "vonage-sessions listening on http://{}",
        app.local_addr()
    ));
    app.run_until(shutdown).await.context("serving")?;
    tracing::info!("stopped");
    Ok(())
}

async fn emulator(env: &dyn Fn(&str) -> Option<String>, args: EmulatorArgs) -> anyhow::Result<()> {
    let _log = telemetry::init(&vonage_sessions::config::LogConfig {
        format: LogFormat::Pretty,
        filter: "info".into(),
        buffered_lines: 8192,
    });
    let credentials = commands::emulator_credentials(env, args.public_key.as_deref())?;
    let faults = Faults {
        latency_ms: args.latency_ms,
        error_rate: args.error_rate,
        error_status: args.error_status,
        drop_rate: args.drop_rate,
    };
    let emulator = Emulator::bind(args.listen, credentials, faults)
        .await
        .context("binding the emulator")?;
    let shutdown = commands::shutdown_signal();
    output::out(format!(
        "vonage-sessions emulator listening on {}",
        emulator.base_url()
    ));
    emulator
        .run_until(shutdown)
        .await
        .context("serving the emulator")?;
    Ok(())
}

async fn healthcheck(sources: &Sources<'_>, args: HealthcheckArgs) -> ExitCode {
    let url = match args.url {
        Some(url) => url,
        None => match configured_readyz(sources) {
            Ok(url) => url,
            Err(error) => {
                output::err(format!("error: {error}"));
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(args.timeout_ms))
        .build();
    let response = match client {
        Ok(client) => client.get(&url).send().await,
        Err(error) => Err(error),
    };
    match response {
        Ok(response) if response.status() == reqwest::StatusCode::OK => ExitCode::SUCCESS,
        Ok(response) => {
            output::err(format!("unhealthy: {url} answered {}", response.status()));
            ExitCode::FAILURE
        }
        Err(error) => {
            output::err(format!("unhealthy: {url}: {error}"));
            ExitCode::FAILURE
        }
    }
}

/// `/readyz` on the configured `server.listen`, via loopback for a wildcard address. Problems
/// elsewhere in the configuration (a credential, say) do not stop the probe: `serve` would
/// not have started with them, and the probe only needs the address.
fn configured_readyz(sources: &Sources<'_>) -> Result<String, ConfigError> {
    let report = Config::load_reporting(sources);
    let listen_problem = report
        .problems
        .iter()
        .any(|p| p.key() == "server.listen" || p.key().is_empty());
    let config = match report.config {
        Some(config) if !listen_problem => config,
        _ => {
            return Err(ConfigError::from_problems(report.problems)
                .unwrap_or_else(|| ConfigError::Several(Vec::new())));
        }
    };
    let mut addr = config.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Ok(format!("http://{addr}/readyz"))
}

/// Prints the effective configuration as TOML (comments say what was checked), or fails with
/// every problem. See docs/check-config.md.
fn check_config(sources: &Sources<'_>) -> anyhow::Result<()> {
    let (config, credentials, report) = load_for_serve(sources, None)?;
    let kind = match &credentials {
        Credentials::Application(_) => "Vonage application",
        Credentials::Legacy(_) => "legacy OpenTok project",
    };
    let mut text = String::from("# vonage-sessions check-config: the configuration is valid.\n");
    text.push_str(&format!(
        "# credentials: {kind} {} ({}), from the environment, key parsed ({REDACTED})\n",
        credentials.owner(),
        credentials.kind(),
    ));
    if config.auth.hs256_secret.is_some() {
        text.push_str(&format!(
            "# caller tokens: HS256 secret from VONAGE_SESSIONS_AUTH_HS256_SECRET ({REDACTED})\n"
        ));
    }
    text.push_str(&format!(
        "# video API: {}\n\n",
        config.video_base_url(matches!(credentials, Credentials::Application(_)))
    ));
    text.push_str(report.effective_toml().trim_end());
    output::out(text);
    Ok(())
}
