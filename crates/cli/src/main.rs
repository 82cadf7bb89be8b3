//! `llmflow`: the operator's command line — database migrations and workflow validation.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use llmflow_core::config::Config;
use llmflow_core::pricing::PriceTable;
use llmflow_core::workflow::{Catalog, Checks};

#[derive(Parser)]
#[command(name = "llmflow", version, about = "llmflow operator tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending database migrations (DATABASE_URL); `--down` reverts the latest one.
    Migrate {
        #[arg(long)]
        down: bool,
    },
    /// Load and validate every workflow, reporting all problems with their paths.
    Validate {
        /// Folder of workflow definitions (default WORKFLOWS_DIR or ./workflows).
        #[arg(long)]
        workflows: Option<PathBuf>,
        /// Folder of prompt templates (default PROMPTS_DIR or ./prompts).
        #[arg(long)]
        prompts: Option<PathBuf>,
    },
    /// Development webhook receiver: prints each delivery and whether its Standard Webhooks
    /// signature verifies with `--secret` (default LLM_WEBHOOK_SECRET).
    Listen {
        #[arg(long, default_value = "127.0.0.1:9200")]
        address: String,
        #[arg(long, env = "LLM_WEBHOOK_SECRET")]
        secret: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llmflow: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Migrate { down } => {
            let url = database_url()?;
            if down {
                let version = llmflow_core::db::revert_last_migration(&url).await?;
                println!("reverted {version}");
            } else {
                let applied = llmflow_core::db::run_migrations(&url).await?;
                if applied.is_empty() {
                    println!("database is up to date");
                }
                for version in applied {
                    println!("applied {version}");
                }
            }
            Ok(())
        }
        Command::Listen { address, secret } => listen(&address, &secret).await,
        Command::Validate { workflows, prompts } => {
            let workflows = workflows
                .or_else(|| std::env::var_os("WORKFLOWS_DIR").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("./workflows"));
            let prompts = prompts
                .or_else(|| std::env::var_os("PROMPTS_DIR").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("./prompts"));
            let pricing_file = std::env::var_os("PRICING_FILE").map(PathBuf::from);
            let pricing = PriceTable::load(pricing_file.as_deref())?;
            // The same `${env.NAME}` allow-list the services use (names only; no values needed).
            let env: Vec<String> = std::env::var("WORKFLOW_ENV_ALLOWLIST")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect();
            let checks = Checks::new(&pricing).with_env(&env);
            match Catalog::load_checked(&workflows, &prompts, checks) {
                Ok(catalog) => {
                    for loaded in catalog.iter() {
                        println!(
                            "ok  {} v{} ({})",
                            loaded.workflow.name,
                            loaded.workflow.version,
                            &loaded.hash[..12]
                        );
                    }
                    Ok(())
                }
                Err(errors) => {
                    for error in &errors {
                        eprintln!("{error}");
                    }
                    anyhow::bail!("{} invalid workflow file(s)", errors.len())
                }
            }
        }
    }
}

/// Only the database URL is needed here; the full service configuration is not required.
fn database_url() -> anyhow::Result<String> {
    match Config::load() {
        Ok(config) => Ok(config.database_url.expose_secret().to_owned()),
        Err(_) => {
            std::env::var("DATABASE_URL").map_err(|_| anyhow::anyhow!("DATABASE_URL must be set"))
        }
    }
}

/// Serves `POST /` and any other path, printing deliveries with their verification result.
async fn listen(address: &str, secret: &str) -> anyhow::Result<()> {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let key = llmflow_webhook::signing::SigningKey::parse(secret)?;
    let key = web::Data::new(key);
    println!("listening for webhooks on http://{address}/");
    HttpServer::new(move || {
        App::new().app_data(key.clone()).default_service(web::to(
            |req: HttpRequest,
             body: web::Bytes,
             key: web::Data<llmflow_webhook::signing::SigningKey>| async move {
                let header = |name: &str| {
                    req.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let (id, timestamp, signatures) = (
                    header("webhook-id"),
                    header("webhook-timestamp"),
                    header("webhook-signature"),
                );
                let expected = timestamp
                    .parse::<i64>()
                    .map(|ts| {
                        llmflow_webhook::signing::sign(std::slice::from_ref(&key), &id, ts, &body)
                    })
                    .unwrap_or_default();
                let verified = !expected.is_empty() && signatures.split(' ').any(|s| s == expected);
                println!(
                    "{} {} webhook-id={id} signature={}\n{}",
                    req.method(),
                    req.path(),
                    if verified { "verified" } else { "INVALID" },
                    String::from_utf8_lossy(&body)
                );
                if verified {
                    HttpResponse::Ok().finish()
                } else {
                    HttpResponse::Unauthorized().finish()
                }
            },
        ))
    })
    .bind(address)?
    .run()
    .await?;
    Ok(())
}
