//! `hubspot-sim --listen 127.0.0.1:0 [--per-ten-seconds N] [--searches-per-second N]
//! [--daily-limit N] [--faults JSON] [--webhook-url URL --webhook-secret S --subscribe TYPE...]`
//!
//! Prints `listening on http://ADDR:PORT` as its first line, then serves until interrupted.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "hubspot-sim",
    about = "A local simulator of HubSpot's CRM objects API"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Requests per rolling 10 seconds per token (HubSpot Professional/Enterprise: 190).
    #[arg(long, default_value_t = 190)]
    per_ten_seconds: u32,
    /// Search requests per second per account.
    #[arg(long, default_value_t = 5)]
    searches_per_second: u32,
    /// Requests per UTC day per account (HubSpot Professional: 625,000).
    #[arg(long, default_value_t = 625_000)]
    daily_limit: u64,
    /// Faults to inject, as JSON, e.g. `{"error_rate":0.1,"latency_ms":20}`; change them later
    /// with `PUT /_sim/faults`.
    #[arg(long)]
    faults: Option<String>,
    /// Where to deliver webhooks (the app's target URL).
    #[arg(long, requires = "webhook_secret")]
    webhook_url: Option<String>,
    /// The app's client secret, which signs deliveries (v3 and v1).
    #[arg(long, requires = "webhook_url")]
    webhook_secret: Option<String>,
    /// A subscription, repeatable: `contact.creation`, `deal.deletion`,
    /// `company.propertyChange:name`.
    #[arg(long, requires = "webhook_url")]
    subscribe: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let faults: hubspot_sim::Faults =
        sim_support::parse_faults(args.faults.as_deref()).map_err(anyhow::Error::msg)?;
    let webhooks = match (&args.webhook_url, &args.webhook_secret) {
        (Some(url), Some(secret)) => {
            let subscriptions = (1..)
                .zip(&args.subscribe)
                .map(|(id, s)| hubspot_sim::Subscription::parse(id, s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            Some(hubspot_sim::WebhookSettings::new(
                url,
                secret,
                subscriptions,
            ))
        }
        _ => None,
    };
    let config = hubspot_sim::HubSpotConfig {
        faults,
        webhooks,
        per_ten_seconds: args.per_ten_seconds,
        searches_per_second: args.searches_per_second,
        daily_limit: args.daily_limit,
        ..Default::default()
    };
    let running = hubspot_sim::start(args.listen, config)
        .await
        .context("cannot listen")?;
    println!("listening on {}", running.url());
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(())
}
