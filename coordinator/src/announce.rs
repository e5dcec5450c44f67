//! Announcing the coordinator on the LAN over mDNS / DNS-SD ([`SERVICE_TYPE`]), so an agent
//! started without `--coordinator` finds it. The TXT record carries the scheme and, over HTTPS,
//! the certificate's fingerprint (which the agent pins, as it would on first use). The
//! announcement is withdrawn when the [`Announcement`] is dropped.

use idlefarm_protocol::{API_VERSION, SERVICE_TYPE, announce_keys};
use mdns_sd::{ServiceDaemon, ServiceInfo};

/// A live announcement.
pub struct Announcement {
    daemon: ServiceDaemon,
    fullname: String,
    /// The instance name agents see, e.g. `idlefarm on lab-server`.
    pub name: String,
}

/// Announces a coordinator listening on `port` (every address of this host), over HTTPS with
/// the certificate `fingerprint` when given.
pub fn start(port: u16, fingerprint: Option<&str>) -> anyhow::Result<Announcement> {
    let host = idlefarm_runtime::hostname();
    let name = format!("idlefarm on {host}");
    let scheme = if fingerprint.is_some() {
        "https"
    } else {
        "http"
    };
    let api = API_VERSION.to_string();
    let mut properties = vec![
        (announce_keys::SCHEME, scheme),
        (announce_keys::API, api.as_str()),
    ];
    if let Some(fp) = fingerprint {
        properties.push((announce_keys::FINGERPRINT, fp));
    }
    let info = ServiceInfo::new(
        SERVICE_TYPE,
        &name,
        &format!("{host}.local."),
        "",
        port,
        &properties[..],
    )?
    .enable_addr_auto();
    let fullname = info.get_fullname().to_owned();
    let daemon = ServiceDaemon::new()?;
    daemon.register(info)?;
    Ok(Announcement {
        daemon,
        fullname,
        name,
    })
}

impl Drop for Announcement {
    fn drop(&mut self) {
        let _ = self.daemon.unregister(&self.fullname);
        let _ = self.daemon.shutdown();
    }
}
