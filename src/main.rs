//! The `vonage-sessions` command line: `serve` (default), `dev`, `emulator`, `healthcheck`,
//! `check-config`. Thin: argument parsing and dispatch; the command bodies are in `commands`,
//! configuration in `config`, loading in `load`, wiring in `app`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use vonage_sessions::config::{ConfigError, Sources};

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
    /// Where to post session-monitoring and archive-status callbacks (the service's
    /// `/vonage/callbacks`), signed with VONAGE_SESSION_CALLBACK_SECRET[_FILE] and
    /// VONAGE_ARCHIVE_CALLBACK_SECRET[_FILE] from the environment (unsigned without them).
    #[arg(long, value_name = "URL", env = "EMULATOR_CALLBACK_URL")]
    callback_url: Option<String>,
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
        Command::Serve(args) => runtime.block_on(commands::serve(&sources, args)),
        Command::Dev(args) => {
            let example = args.example_page.map(|dir| (dir, args.example_listen));
            runtime.block_on(commands::dev(&sources, args.listen, args.legacy, example))
        }
        Command::Emulator(args) => runtime.block_on(commands::emulator(&env, args)),
        Command::Healthcheck(args) => {
            return runtime.block_on(commands::healthcheck(&sources, args));
        }
        Command::CheckConfig => commands::check_config(&sources),
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
