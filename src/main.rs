//! The `vonage-sessions` command line: `serve` (default), `dev`, `emulator`, `healthcheck`,
//! `check-config`. Thin: configuration lives in `config`, wiring in `app`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use vonage_sessions::app::App;
use vonage_sessions::config::{AuthMode, Config, ConfigError, LogFormat, Sources};
use vonage_sessions::emulator::{Emulator, Faults};
use vonage_sessions::telemetry;
use vonage_sessions::video::Credentials;

mod commands;
mod example_page;

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
    /// Load and validate the configuration, print it with secrets redacted.
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
    /// URL to probe (default: /readyz on server.listen, via loopback).
    #[arg(long)]
    url: Option<String>,
    /// Give up after this long.
    #[arg(long, default_value_t = 2000)]
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
            eprintln!("error: cannot start the async runtime: {error}");
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
            eprintln!("error: {error:#}");
            if config_error {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Loads the config and credentials exactly as `serve` needs them, failing on what is missing.
fn load_for_serve(
    sources: &Sources<'_>,
    listen: Option<SocketAddr>,
) -> anyhow::Result<(Config, Credentials)> {
    let mut config = Config::load(sources)?;
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    if config.auth.mode == AuthMode::Unset {
        return Err(ConfigError::Invalid {
            key: "auth.mode".into(),
            message:
                "choose who may call: set auth.mode (e.g. VONAGE_SESSIONS__AUTH__MODE=anonymous); \
                      `vonage-sessions dev` picks anonymous for you"
                    .into(),
        }
        .into());
    }
    let credentials = commands::credentials_from(&config)?;
    Ok((config, credentials))
}

async fn serve(sources: &Sources<'_>, args: ListenArgs) -> anyhow::Result<()> {
    let (config, credentials) = load_for_serve(sources, args.listen)?;
    telemetry::init(&config.log);
    let app = App::build(&config, credentials).await?;
    let shutdown = commands::shutdown_signal();
    println!("vonage-sessions listening on http://{}", app.local_addr());
    app.run_until(shutdown).await.context("serving")?;
    tracing::info!("stopped");
    Ok(())
}

async fn emulator(env: &dyn Fn(&str) -> Option<String>, args: EmulatorArgs) -> anyhow::Result<()> {
    telemetry::init(&vonage_sessions::config::LogConfig {
        format: LogFormat::Pretty,
        filter: "info".into(),
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
    println!(
        "vonage-sessions emulator listening on {}",
        emulator.base_url()
    );
    emulator
        .run_until(shutdown)
        .await
        .context("serving the emulator")?;
    Ok(())
}

async fn healthcheck(sources: &Sources<'_>, args: HealthcheckArgs) -> ExitCode {
    let url = match args.url {
        Some(url) => url,
        None => match Config::load(sources) {
            Ok(config) => {
                let mut addr = config.server.listen;
                if addr.ip().is_unspecified() {
                    addr.set_ip(if addr.is_ipv4() {
                        [127, 0, 0, 1].into()
                    } else {
                        std::net::Ipv6Addr::LOCALHOST.into()
                    });
                }
                format!("http://{addr}/readyz")
            }
            Err(error) => {
                eprintln!("error: {error}");
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
            eprintln!("unhealthy: {url} answered {}", response.status());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("unhealthy: {url}: {error}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(sources: &Sources<'_>) -> anyhow::Result<()> {
    let (config, credentials) = load_for_serve(sources, None)?;
    println!("configuration is valid");
    println!(
        "credentials: {} ({}), key parsed",
        credentials.kind(),
        credentials.owner()
    );
    println!(
        "video API: {}",
        config.video_base_url(matches!(credentials, Credentials::Application(_)))
    );
    println!("{config:#?}");
    Ok(())
}
