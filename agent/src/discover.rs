//! Finding a coordinator on the LAN when none is configured: coordinators announce themselves
//! over mDNS / DNS-SD as [`SERVICE_TYPE`], with their scheme and, over HTTPS, their
//! certificate's fingerprint in the TXT record. An explicit `--coordinator` always wins; the
//! agent only looks when it has none.

use std::net::IpAddr;
use std::time::Duration;

use idlefarm_protocol::{SERVICE_TYPE, announce_keys};
use idlefarm_tls::Fingerprint;
use mdns_sd::{ServiceDaemon, ServiceEvent};

/// A coordinator found on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its base URL, e.g. `https://10.0.0.5:7870`.
    pub url: String,
    /// Its announced name, e.g. `idlefarm on lab-server`.
    pub name: String,
    /// The certificate fingerprint it announced, over HTTPS.
    pub fingerprint: Option<Fingerprint>,
}

/// Browses the LAN for up to `wait`; returns the first coordinator that answers with an IPv4
/// address (the order is the network's).
pub async fn find(wait: Duration) -> anyhow::Result<Option<Found>> {
    let daemon = ServiceDaemon::new()?;
    let events = daemon.browse(SERVICE_TYPE)?;
    let found = tokio::time::timeout(wait, async {
        while let Ok(event) = events.recv_async().await {
            if let ServiceEvent::ServiceResolved(service) = event
                && let Some(found) = from_announcement(&service)
            {
                return Some(found);
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    if let Ok(done) = daemon.shutdown() {
        let _ = done.recv_async().await;
    }
    Ok(found)
}

/// A usable coordinator from one resolved announcement, if it has an IPv4 address.
fn from_announcement(service: &mdns_sd::ResolvedService) -> Option<Found> {
    let ip = service
        .addresses
        .iter()
        .map(|a| a.to_ip_addr())
        .find(IpAddr::is_ipv4)?;
    let scheme = match service
        .txt_properties
        .get_property_val_str(announce_keys::SCHEME)
    {
        Some("https") => "https",
        _ => "http",
    };
    let fingerprint = (service.txt_properties)
        .get_property_val_str(announce_keys::FINGERPRINT)
        .and_then(|f| f.parse().ok());
    let name = service
        .fullname
        .strip_suffix(&format!(".{SERVICE_TYPE}"))
        .unwrap_or(&service.fullname)
        .replace("\\032", " ");
    Some(Found {
        url: format!("{scheme}://{ip}:{}", service.port),
        name,
        fingerprint,
    })
}
