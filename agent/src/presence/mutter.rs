//! Input idle time of a GNOME Wayland session, from Mutter's IdleMonitor on the user's session
//! bus.
//!
//! Under Wayland there is no X server to ask, and only the compositor knows when the person
//! last touched the keyboard or mouse. GNOME's Mutter tells anyone on the user's session bus
//! (`org.gnome.Mutter.IdleMonitor`, `GetIdletime` in milliseconds). The agent usually runs as
//! root or as its own user, so that bus may refuse it: that is reported as an error (which
//! presence counts as "unknown", i.e. not idle), never worked around by changing user.

use std::time::Duration;

use super::logind::CALL_TIMEOUT;

const SERVICE: &str = "org.gnome.Mutter.IdleMonitor";
const PATH: &str = "/org/gnome/Mutter/IdleMonitor/Core";
const INTERFACE: &str = "org.gnome.Mutter.IdleMonitor";

/// Input idle time of the user's GNOME session via org.gnome.Mutter.IdleMonitor
/// (/org/gnome/Mutter/IdleMonitor/Core, GetIdletime → ms) on the session bus at
/// unix:path=/run/user/<uid>/bus (or `bus_address` when Some, for tests). Err with a reason
/// when the bus or the service is not reachable.
pub async fn mutter_idle(uid: u32, bus_address: Option<&str>) -> Result<Duration, String> {
    let address = bus_address
        .map(str::to_owned)
        .unwrap_or_else(|| format!("unix:path=/run/user/{uid}/bus"));
    let bus = format!("the session bus of uid {uid} ({address})");
    let connect = async {
        zbus::connection::Builder::address(address.as_str())?
            .method_timeout(CALL_TIMEOUT)
            .build()
            .await
    };
    let connection = tokio::time::timeout(CALL_TIMEOUT, connect)
        .await
        .map_err(|_| format!("{bus} did not answer within {} s", CALL_TIMEOUT.as_secs()))?
        .map_err(|e| format!("cannot reach {bus}: {e}"))?;
    let call = connection.call_method(Some(SERVICE), PATH, Some(INTERFACE), "GetIdletime", &());
    let reply = tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| {
            format!(
                "{SERVICE} on {bus} did not answer within {} s",
                CALL_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("{SERVICE} is not available on {bus}: {e}"))?;
    let milliseconds: u64 = reply
        .body()
        .deserialize()
        .map_err(|e| format!("{SERVICE} on {bus} answered GetIdletime oddly: {e}"))?;
    Ok(Duration::from_millis(milliseconds))
}
