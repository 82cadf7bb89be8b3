//! `llmflow`: the operator's command line — database migrations, workflow validation and a
//! development webhook receiver. Settings come from `Config` (the environment, or the
//! `LLMFLOW_CONFIG` file), as in the services; flags override them.

use std::path::PathBuf;
use std::process::ExitCode;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use standardwebhooks::{
    Webhook, HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP,
};

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
        /// Address to listen on (port 0: any free port, printed at start).
        #[arg(long, default_value = "127.0.0.1:9200")]
        address: String,
        /// Signing secret: `whsec_<base64>`, or any other string used as raw bytes.
        #[arg(long)]
        secret: Option<String>,
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
            let config = Config::load_for_tools()?;
            let url = config.database_url.expose_secret();
            if url.trim().is_empty() {
                anyhow::bail!("DATABASE_URL must be set");
            }
            let options = config.database_options();
            if down {
                let version = llmflow_core::db::revert_last_migration_with(url, options).await?;
                println!("reverted {version}");
            } else {
                let applied = llmflow_core::db::run_migrations_with(url, options).await?;
                if applied.is_empty() {
                    println!("database is up to date");
                }
                for version in applied {
                    println!("applied {version}");
                }
            }
            Ok(())
        }
        Command::Listen { address, secret } => {
            let secret = match secret {
                Some(secret) => secret,
                None => Config::secret(&Config::load_for_tools()?.llm_webhook_secret)
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow::anyhow!("give --secret or set LLM_WEBHOOK_SECRET"))?,
            };
            listen(&address, &secret).await
        }
        Command::Validate { workflows, prompts } => {
            let config = Config::load_for_tools()?;
            let workflows = workflows.unwrap_or_else(|| config.workflows_dir.clone());
            let prompts = prompts.unwrap_or_else(|| config.prompts_dir.clone());
            let pricing = PriceTable::load(config.pricing_file.as_deref())?;
            // The same `${env.NAME}` allow-list the services use (names only; no values needed).
            let env = config.workflow_env_names();
            let checks = Checks::new(&pricing).with_env(env);
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

/// Base64 of `whsec_` secrets: standard alphabet, padding optional, as the sender reads them.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A verifier for `secret`, read by the rule the sender signs with: `whsec_<base64>` is the
/// key's base64, any other string is the key's raw bytes; the key is never empty.
fn verifier(secret: &str) -> anyhow::Result<Webhook> {
    let key = match secret.strip_prefix("whsec_") {
        Some(encoded) => SECRET_BASE64
            .decode(encoded)
            .map_err(|_| anyhow::anyhow!("the secret after `whsec_` is not valid base64"))?,
        None => secret.as_bytes().to_vec(),
    };
    if key.is_empty() {
        anyhow::bail!("the webhook secret is empty");
    }
    Ok(Webhook::from_bytes(key)?)
}

/// Checks a delivery's Standard Webhooks headers and signatures with the official verifier:
/// the timestamp within its tolerance, and any one `v1` signature in the header matching.
fn verify(webhook: &Webhook, req: &actix_web::HttpRequest, body: &[u8]) -> Result<(), String> {
    let mut headers = http::HeaderMap::new();
    for name in [
        HEADER_WEBHOOK_ID,
        HEADER_WEBHOOK_TIMESTAMP,
        HEADER_WEBHOOK_SIGNATURE,
    ] {
        if let Some(value) = req.headers().get(name) {
            let value = http::HeaderValue::from_bytes(value.as_bytes())
                .map_err(|_| format!("invalid header {name}"))?;
            headers.insert(name, value);
        }
    }
    webhook.verify(body, &headers).map_err(|e| e.to_string())
}

/// Serves `POST /` and any other path, printing deliveries with their verification result.
async fn listen(address: &str, secret: &str) -> anyhow::Result<()> {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let webhook = web::Data::new(verifier(secret)?);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(webhook.clone())
            .default_service(web::to(
                |req: HttpRequest, body: web::Bytes, webhook: web::Data<Webhook>| async move {
                    let id = req
                        .headers()
                        .get(HEADER_WEBHOOK_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    let verified = verify(&webhook, &req, &body);
                    println!(
                        "{} {} webhook-id={id} signature={}\n{}",
                        req.method(),
                        req.path(),
                        match &verified {
                            Ok(()) => "verified".to_owned(),
                            Err(why) => format!("INVALID ({why})"),
                        },
                        String::from_utf8_lossy(&body)
                    );
                    if verified.is_ok() {
                        HttpResponse::Ok().finish()
                    } else {
                        HttpResponse::Unauthorized().finish()
                    }
                },
            ))
    })
    .bind(address)?;
    for bound in server.addrs() {
        println!("listening for webhooks on http://{bound}/");
    }
    server.run().await?;
    Ok(())
}
