//! `arbiter serve`: parse the flags, turn them into a validated [`ServeConfig`] in one
//! place (failing fast, before the store is opened), then open the engine, load the
//! schema, bind, announce `listening on http://HOST:PORT` and serve until SIGTERM/SIGINT.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::huge_pages::HugePages;
use super::{EXIT_ERROR, EXIT_INVALID, EXIT_OK};
use crate::engine::{self, Arbiter};
use crate::schema::parse_and_compile;
use crate::server::keys::{KeyFileError, KeyRing};
use crate::server::tls::TlsError;
use crate::server::{self, AppState, ServerConfig};

/// The flags of `arbiter serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory of the embedded (sled) database, created if absent; or
    /// `postgres://USER:PASS@HOST:PORT/DB` (several servers may share one database).
    #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
    pub db: PathBuf,
    /// Keep everything in memory instead (nothing survives a restart).
    #[arg(long, conflicts_with = "db")]
    pub memory: bool,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "ARBITER_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Schema file to load at start-up; an invalid one stops the start.
    #[arg(long, env = "ARBITER_SCHEMA", conflicts_with = "bootstrap")]
    pub schema: Option<PathBuf>,
    /// Permissions file (a validation file: schema + relationships) the store is made to
    /// match at start-up, atomically; re-read on SIGHUP. An invalid one stops the start.
    #[arg(long, env = "ARBITER_BOOTSTRAP")]
    pub bootstrap: Option<PathBuf>,
    /// API key file (`keys:` with name, sha256 and scopes); re-read on SIGHUP.
    #[arg(long, env = "ARBITER_KEYS")]
    pub keys: Option<PathBuf>,
    /// PEM certificate chain: serve HTTPS (HTTP/1.1 and HTTP/2 by ALPN) instead of HTTP.
    #[arg(long, env = "ARBITER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "ARBITER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require `Authorization: Bearer TOKEN` on every /v1 request.
    #[arg(long, env = "ARBITER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Allow listening on a non-loopback address without a token.
    #[arg(long)]
    pub insecure: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log one line per request at info level (otherwise at debug).
    #[arg(long)]
    pub access_log: bool,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub body_limit: usize,
    /// Largest NDJSON body of one bulk import (`POST /v1/relationships/import`), in bytes.
    #[arg(long, default_value_t = crate::server::DEFAULT_IMPORT_LIMIT)]
    pub max_import_bytes: usize,
    /// Per-request deadline, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Most items in one bulk check or one write.
    #[arg(long, default_value_t = 500)]
    pub max_batch: usize,
    /// Largest page of a read or lookup (and the default page size).
    #[arg(long, default_value_t = 1_000)]
    pub max_page: usize,
    /// Deepest walk a check may take before it fails (at most 200).
    #[arg(long, default_value_t = 50)]
    pub depth_limit: u32,
    /// How long a client may take to send a request's headers before the connection is
    /// closed, in milliseconds (the slowloris guard).
    #[arg(long, default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// How long a client may take to send a request's body before it answers 408, in
    /// milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub body_timeout_ms: u64,
    /// Most connections served at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 1_000)]
    pub max_connections: usize,
    /// How many check answers the cache holds (0 disables it).
    #[arg(long, default_value_t = 100_000)]
    pub cache_capacity: usize,
    /// Acknowledge writes before they are flushed to disk (faster, may lose the last
    /// half second of writes on a crash).
    #[arg(long)]
    pub no_fsync: bool,
    /// How long old revisions stay readable (exact snapshots, watch), in seconds.
    #[arg(long, default_value_t = 24 * 60 * 60)]
    pub gc_retention_secs: u64,
    /// Back the heap with transparent huge pages (`auto`: when the kernel gives them on
    /// request; the process re-executes itself once with glibc's tunable set).
    #[arg(long, env = "ARBITER_HUGE_PAGES", value_enum, default_value_t = HugePages::Auto)]
    pub huge_pages: HugePages,
}

/// How logs are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where relationships live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreChoice {
    Sled(PathBuf),
    Memory,
    /// `--db postgres://…` (or `postgresql://`): several servers may share it.
    Postgres(crate::store::PgConfig),
}

/// Everything `serve` needs, validated.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub store: StoreChoice,
    /// The schema file and its text, already known to compile.
    pub schema: Option<(PathBuf, String)>,
    /// The permissions file and its desired state, already validated.
    pub bootstrap: Option<(PathBuf, crate::engine::SyncRequest)>,
    /// The key file and its keys (plus the `--token` key), already validated.
    pub keys: Option<(PathBuf, KeyRing)>,
    /// Certificate and key files, known to go together.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub server: ServerConfig,
    pub engine: engine::Config,
    pub log_format: LogFormat,
}

/// Why the flags do not make a valid configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid `--addr` `{0}`: expected HOST:PORT")]
    Addr(String),
    #[error("invalid `--db`: {0}")]
    Database(String),
    #[error(
        "refusing to listen on non-loopback address `{0}` without a token: pass `--token` (or ARBITER_TOKEN), or `--insecure` to allow it"
    )]
    InsecureBind(SocketAddr),
    #[error("`--token` must not be empty")]
    EmptyToken,
    #[error(
        "`--token` must not start or end with whitespace (clients' tokens are trimmed, so it could never match)"
    )]
    TokenWhitespace,
    #[error("`--depth-limit` {value} is above the maximum of {max}")]
    DepthLimitTooHigh { value: u32, max: u32 },
    #[error("`--{flag}` must be at least 1")]
    Zero { flag: &'static str },
    #[error(
        "`--max-batch {value}` is above the store's cap of {max} updates and preconditions per write"
    )]
    MaxBatchTooHigh { value: usize, max: usize },
    #[error("{}: cannot read schema file: {message}", .file.display())]
    SchemaUnreadable { file: PathBuf, message: String },
    /// Already rendered as `FILE:LINE:COL: message` lines.
    #[error("{0}")]
    SchemaInvalid(String),
    /// Already rendered as `FILE:LINE: message` lines.
    #[error("{0}")]
    BootstrapInvalid(String),
    #[error(transparent)]
    Keys(#[from] KeyFileError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl ConfigError {
    /// Exit 1 for an invalid schema (the input was checked and is wrong), 2 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::SchemaInvalid(_) | Self::BootstrapInvalid(_) => EXIT_INVALID,
            _ => EXIT_ERROR,
        }
    }
}

impl ServeConfig {
    /// Validates every flag; reads and compiles the schema file.
    pub fn from_args(args: &ServeArgs) -> Result<Self, ConfigError> {
        let addr = resolve(&args.addr)?;
        let token = args.token.clone();
        if token.as_deref().is_some_and(|it| it.trim().is_empty()) {
            return Err(ConfigError::EmptyToken);
        }
        if token.as_deref().is_some_and(|it| it.trim() != it) {
            return Err(ConfigError::TokenWhitespace);
        }
        if args.depth_limit > engine::MAX_DEPTH_LIMIT {
            return Err(ConfigError::DepthLimitTooHigh {
                value: args.depth_limit,
                max: engine::MAX_DEPTH_LIMIT,
            });
        }
        if args.max_batch > crate::store::MAX_WRITE_UPDATES {
            return Err(ConfigError::MaxBatchTooHigh {
                value: args.max_batch,
                max: crate::store::MAX_WRITE_UPDATES,
            });
        }
        if token.is_none() && args.keys.is_none() && !addr.ip().is_loopback() && !args.insecure {
            return Err(ConfigError::InsecureBind(addr));
        }
        for (flag, value) in [
            ("body-limit", args.body_limit),
            ("max-import-bytes", args.max_import_bytes),
            ("max-batch", args.max_batch),
            ("max-page", args.max_page),
            ("request-timeout-ms", args.request_timeout_ms as usize),
            ("depth-limit", args.depth_limit as usize),
            ("header-timeout-ms", args.header_timeout_ms as usize),
            ("body-timeout-ms", args.body_timeout_ms as usize),
            ("max-connections", args.max_connections),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { flag });
            }
        }
        let schema = match &args.schema {
            Some(file) => Some((file.clone(), read_schema(file)?)),
            None => None,
        };
        let bootstrap = match &args.bootstrap {
            Some(file) => Some((
                file.clone(),
                crate::sync::read(file)
                    .map_err(|err| ConfigError::BootstrapInvalid(err.to_string()))?,
            )),
            None => None,
        };
        let keys = match &args.keys {
            Some(file) => Some((
                file.clone(),
                super::reload::key_ring(file, token.as_deref())?,
            )),
            None => None,
        };
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                server::tls::acceptor(cert, key)?;
                Some((cert.clone(), key.clone()))
            }
            _ => None,
        };
        let store = if args.memory {
            StoreChoice::Memory
        } else if let Some(url) = args
            .db
            .to_str()
            .filter(|it| crate::store::postgres::is_postgres_url(it))
        {
            StoreChoice::Postgres(
                crate::store::PgConfig::new(url)
                    .map_err(|err| ConfigError::Database(err.to_string()))?,
            )
        } else {
            StoreChoice::Sled(args.db.clone())
        };
        Ok(Self {
            addr,
            store,
            schema,
            bootstrap,
            keys,
            tls,
            server: ServerConfig {
                token,
                body_limit: args.body_limit,
                import_limit: args.max_import_bytes,
                request_timeout: Duration::from_millis(args.request_timeout_ms),
                max_batch: args.max_batch,
                max_page: args.max_page,
                access_log: args.access_log,
                header_timeout: Duration::from_millis(args.header_timeout_ms),
                body_timeout: Duration::from_millis(args.body_timeout_ms),
                max_connections: args.max_connections,
            },
            engine: engine::Config {
                depth_limit: args.depth_limit,
                cache_capacity: args.cache_capacity,
                durable: !args.no_fsync,
                gc_retention: Duration::from_secs(args.gc_retention_secs),
                max_batch: args.max_batch,
                ..engine::Config::default()
            },
            log_format: args.log_format,
        })
    }
}

/// `arbiter serve`.
pub fn run(args: &ServeArgs) -> u8 {
    let config = match ServeConfig::from_args(args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{}", err.to_string().trim_end());
            return err.exit_code();
        }
    };
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the runtime: {err}");
            return EXIT_ERROR;
        }
    };
    match runtime.block_on(start(config)) {
        Ok(()) => EXIT_OK,
        Err(message) => {
            eprintln!("{message}");
            EXIT_ERROR
        }
    }
}

/// Opens the engine, loads the schema, binds and serves until a shutdown signal.
async fn start(config: ServeConfig) -> Result<(), String> {
    let engine = open_engine(&config)?;
    if let Some((file, text)) = &config.schema {
        load_schema(&engine, file, text)?;
    }
    if let Some((file, request)) = &config.bootstrap {
        super::reload::bootstrap(&engine, file, request)?;
    }
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|err| format!("cannot listen on `{}`: {err}", config.addr))?;
    let local = listener
        .local_addr()
        .map_err(|err| format!("cannot read the bound address: {err}"))?;
    let state = AppState::new(engine, config.server.clone());
    if let Some((_, ring)) = &config.keys {
        state.keys().replace(ring.clone());
    }
    super::reload::spawn_on_sighup(super::reload::Reloadable {
        state: state.clone(),
        bootstrap: config.bootstrap.as_ref().map(|(file, _)| file.clone()),
        keys: config.keys.as_ref().map(|(file, _)| file.clone()),
        token: config.server.token.clone(),
    });
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(
        addr = %local,
        revision = state.engine().head().0,
        scheme,
        huge_pages = super::huge_pages::enabled(),
        "listening"
    );
    println!("listening on {scheme}://{local}");
    let served = match &config.tls {
        Some((cert, key)) => {
            let acceptor = server::tls::acceptor(cert, key).map_err(|err| err.to_string())?;
            server::serve_tls(listener, acceptor, state, shutdown_signal()).await
        }
        None => server::serve(listener, state, shutdown_signal()).await,
    };
    served.map_err(|err| format!("server failed: {err}"))
}

fn open_engine(config: &ServeConfig) -> Result<Arbiter, String> {
    let res = match &config.store {
        StoreChoice::Memory => Arbiter::in_memory(config.engine.clone()),
        StoreChoice::Sled(dir) => Arbiter::open(dir, config.engine.clone()),
        StoreChoice::Postgres(pg) => crate::store::PgStore::open(pg.clone())
            .map_err(engine::EngineError::from)
            .and_then(|store| Arbiter::with_store(Box::new(store), config.engine.clone())),
    };
    res.map_err(|err| match &config.store {
        StoreChoice::Sled(dir) => format!("{}: cannot open the database: {err}", dir.display()),
        StoreChoice::Memory => format!("cannot open the in-memory store: {err}"),
        StoreChoice::Postgres(pg) => {
            format!("{}: cannot open the database: {err}", pg.redacted_url())
        }
    })
}

/// Writes the schema unless the store already holds exactly this text (so a restart does
/// not add a revision). A change that would orphan stored relationships stops start-up.
fn load_schema(engine: &Arbiter, file: &std::path::Path, text: &str) -> Result<(), String> {
    if engine
        .schema_text()
        .is_some_and(|(stored, _)| stored == text)
    {
        tracing::info!(file = %file.display(), "schema unchanged");
        return Ok(());
    }
    let revision = engine
        .write_schema(text)
        .map_err(|err| format!("{}: {err}", file.display()))?;
    tracing::info!(file = %file.display(), revision = revision.0, "schema loaded");
    Ok(())
}

fn read_schema(file: &std::path::Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|err| ConfigError::SchemaUnreadable {
        file: file.to_path_buf(),
        message: err.to_string(),
    })?;
    match parse_and_compile(&text) {
        Ok(_) => Ok(text),
        Err(errors) => Err(ConfigError::SchemaInvalid(
            errors.render(&file.display().to_string()),
        )),
    }
}

/// `HOST:PORT`, resolving names such as `localhost`.
fn resolve(addr: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = addr.parse::<SocketAddr>() {
        return Ok(addr);
    }
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| ConfigError::Addr(addr.to_string()))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        // A log line that cannot be written is dropped: by default the subscriber reports
        // it with `eprintln!`, which panics when stderr is the broken pipe it could not
        // write to, so a closed log pipe failed every request that logged.
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    let res = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(err) = res {
        eprintln!("cannot initialize logging: {err}");
    }
}

/// Resolves on SIGINT (ctrl-c) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn config(args: &[&str]) -> Result<ServeConfig, ConfigError> {
        let mut argv = vec!["arbiter", "serve"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        match cli.command {
            Command::Serve(args) => ServeConfig::from_args(&args),
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_loopback_and_sled() {
        let config = config(&[]).unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.store,
            StoreChoice::Sled(PathBuf::from("./arbiter.db"))
        );
        assert_eq!(config.server.body_limit, 4 * 1024 * 1024);
    }

    #[test]
    fn public_bind_needs_token_or_insecure() {
        let err = config(&["--addr", "0.0.0.0:8080"]).unwrap_err();
        assert!(matches!(err, ConfigError::InsecureBind(_)), "{err}");
        assert!(config(&["--addr", "0.0.0.0:8080", "--token", "t"]).is_ok());
        assert!(config(&["--addr", "0.0.0.0:8080", "--insecure"]).is_ok());
    }

    #[test]
    fn bad_values_fail_fast() {
        assert!(matches!(
            config(&["--addr", "nowhere"]),
            Err(ConfigError::Addr(_))
        ));
        assert!(matches!(
            config(&["--token", " "]),
            Err(ConfigError::EmptyToken)
        ));
        assert!(matches!(
            config(&["--max-batch", "0"]),
            Err(ConfigError::Zero { flag: "max-batch" })
        ));
    }

    #[test]
    fn issue10_token_with_surrounding_whitespace_is_refused() {
        for token in [" s3cret", "s3cret\n", "\ts3cret "] {
            let err = config(&["--token", token]).unwrap_err();
            assert!(
                matches!(err, ConfigError::TokenWhitespace),
                "{token:?}: {err}"
            );
        }
        assert!(config(&["--token", "s3cret"]).is_ok());
    }

    #[test]
    fn issue10_depth_limit_above_the_cap_is_refused_not_capped() {
        let err = config(&["--depth-limit", "100000"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "`--depth-limit` 100000 is above the maximum of {}",
                engine::MAX_DEPTH_LIMIT
            )
        );
        let max = engine::MAX_DEPTH_LIMIT.to_string();
        assert_eq!(
            config(&["--depth-limit", &max]).unwrap().engine.depth_limit,
            engine::MAX_DEPTH_LIMIT
        );
    }

    #[test]
    fn issue10_max_batch_above_the_store_cap_is_refused_not_capped() {
        let err = config(&["--max-batch", "5000"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`--max-batch 5000` is above the store's cap of 500 updates and preconditions per write"
        );
        assert!(config(&["--max-batch", "500"]).is_ok());
    }

    #[test]
    fn connection_limits_are_configurable() {
        let config = config(&[
            "--header-timeout-ms",
            "1500",
            "--body-timeout-ms",
            "2500",
            "--max-connections",
            "7",
        ])
        .unwrap();
        assert_eq!(config.server.header_timeout, Duration::from_millis(1500));
        assert_eq!(config.server.body_timeout, Duration::from_millis(2500));
        assert_eq!(config.server.max_connections, 7);
        assert!(matches!(
            super::tests::config(&["--max-connections", "0"]),
            Err(ConfigError::Zero {
                flag: "max-connections"
            })
        ));
    }

    #[test]
    fn invalid_schema_renders_file_line_col() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.zed");
        std::fs::write(
            &file,
            "definition user {}\ndefinition doc { relation viewer: nobody }\n",
        )
        .unwrap();
        let err = config(&["--schema", file.to_str().unwrap()]).unwrap_err();
        assert_eq!(err.exit_code(), EXIT_INVALID);
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}:2:", file.display())),
            "{text}"
        );
    }
}
