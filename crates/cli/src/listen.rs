//! `llmflow listen`: a development webhook receiver that prints each delivery and whether its
//! Standard Webhooks signature verifies, checked with the official `standardwebhooks` crate.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use standardwebhooks::{
    Webhook, HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP,
};

use llmflow_core::config::Config;

use crate::error::{CliError, CliResult};

/// Development webhook receiver: prints each delivery and whether its Standard Webhooks
/// signature verifies with `--secret` (default LLM_WEBHOOK_SECRET).
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  llmflow listen --address 127.0.0.1:9200 --secret whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)]
pub struct Args {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:9200")]
    address: String,
    /// Signing secret: `whsec_<base64>`, or any other string used as raw bytes.
    #[arg(long)]
    secret: Option<String>,
}

pub async fn run(args: Args) -> CliResult {
    let secret = match args.secret {
        Some(secret) => secret,
        None => Config::secret(&Config::load_for_tools()?.llm_webhook_secret)
            .map(str::to_owned)
            .ok_or_else(|| CliError::bad("give --secret or set LLM_WEBHOOK_SECRET"))?,
    };
    let webhook = verifier(&secret).map_err(CliError::BadInput)?;
    listen(&args.address, webhook).await?;
    Ok(())
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
async fn listen(address: &str, webhook: Webhook) -> anyhow::Result<()> {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let webhook = web::Data::new(webhook);
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
