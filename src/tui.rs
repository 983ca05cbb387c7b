//! `sessionflow tui`: the live operator monitor over a running server.

use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use sessionflow_tui::Config;
use sessionflow_tui::source::Http;

/// Watch queue depth, lifecycle counts, stages and workers live.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    server: crate::options::Server,
    #[command(flatten)]
    api_key: crate::options::ApiKey,
    /// Refresh interval, like 1s or 500ms.
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    interval: Duration,
}

/// The monitor's refresh: a duration of at least 100 ms.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = crate::options::parse_duration(text)?;
    if interval < Duration::from_millis(100) {
        return Err("the interval must be at least 100ms".into());
    }
    Ok(interval)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    require_terminal("the monitor")?;
    let transport =
        Http::new(&args.server.server, args.api_key.required()?).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime
        .block_on(sessionflow_tui::run(
            Config {
                transport: Arc::new(transport),
                interval: args.interval,
                timezone: crate::usage::local_timezone(),
            },
            std::future::pending(),
        ))
        .context("the monitor's terminal failed")?;
    Ok(ExitCode::SUCCESS)
}

/// Refuses to draw a full-screen monitor where there is no terminal to draw on.
pub fn require_terminal(who: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "{who} needs a terminal (stdin and stdout must be a TTY); run it in a terminal, \
             or leave the monitor out and watch with `sessionflow tui` from one"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_and_nonsense_is_refused() {
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_interval("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_interval("fast").is_err());
        assert!(parse_interval("2").is_err(), "a unit is needed");
        assert!(parse_interval("10ms").is_err());
    }
}
