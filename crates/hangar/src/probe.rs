//! `hangar probe`: asks a running node on this machine whether it is ready to serve, for container
//! health checks and service managers (the runtime image has no curl). It reads the same `--listen` /
//! `HANGAR_LISTEN` as `hangar serve`, so a container's health check needs no arguments.

use clap::Args;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The address the server listens on, as given to `hangar serve --listen`; a wildcard address
    /// (`0.0.0.0`, `[::]`) is asked on loopback.
    #[arg(
        long,
        env = "HANGAR_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: String,
    /// The path to ask.
    #[arg(long, value_name = "PATH", default_value = "/readyz")]
    pub path: String,
    /// How long to wait for the answer, e.g. `5s`.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub timeout: String,
}

/// Exits 0 when the node answers 2xx, 1 (with one line on stderr) otherwise.
pub async fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let timeout: Duration = crate::config::parse_duration(&args.timeout)
        .map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
    let target = probe_address(&args.listen)?;
    if !args.path.starts_with('/') {
        anyhow::bail!("--path: must start with /");
    }
    let url = format!("http://{target}{}", args.path);
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()?;
    let answer = client
        .get(&url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let status = answer.status();
    if status.is_success() {
        println!("{url}: {status}");
        Ok(())
    } else {
        anyhow::bail!("{url}: {status}")
    }
}

/// The address to connect to for a listen address: wildcards become loopback of the same family.
fn probe_address(listen: &str) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| anyhow::anyhow!("--listen: `{listen}` is not an IP address with a port"))?;
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(SocketAddr::new(ip, addr.port()))
}

#[cfg(test)]
mod tests {
    use super::probe_address;

    #[test]
    fn wildcards_are_asked_on_loopback() {
        assert_eq!(
            probe_address("0.0.0.0:8080").unwrap().to_string(),
            "127.0.0.1:8080"
        );
        assert_eq!(
            probe_address("[::]:9000").unwrap().to_string(),
            "[::1]:9000"
        );
        assert_eq!(
            probe_address("10.1.2.3:80").unwrap().to_string(),
            "10.1.2.3:80"
        );
        assert!(probe_address("localhost:80").is_err());
    }
}
