//! systemd-logind on the system D-Bus: which sessions exist on this PC, whose they are, and
//! whether they are local, remote, active, locked or idle.
//!
//! This is the first thing presence asks: under the default `no-user` policy any person's
//! session means the PC is taken. [`Logind::sessions`] reads the current list and
//! [`Logind::changes`] wakes the caller when it may have changed, so the agent reacts to a login
//! at once instead of at the next poll (it should still poll: signals can be missed while the
//! bus restarts). Every call is bounded by [`CALL_TIMEOUT`]: a hung logind must never hang the
//! agent, and callers treat any error as "unknown", which counts as not idle.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Serialize;
use zbus::message::Type as MessageType;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::{Connection, MatchRule, MessageStream};

/// How long any single D-Bus step (connecting, one method call) may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

const SERVICE: &str = "org.freedesktop.login1";
const MANAGER_PATH: &str = "/org/freedesktop/login1";
const MANAGER_INTERFACE: &str = "org.freedesktop.login1.Manager";
const SESSION_INTERFACE: &str = "org.freedesktop.login1.Session";
const SESSION_PATHS: &str = "/org/freedesktop/login1/session";
const PROPERTIES_INTERFACE: &str = "org.freedesktop.DBus.Properties";
const DEFAULT_SYSTEM_BUS: &str = "unix:path=/var/run/dbus/system_bus_socket";

/// One logind session, as read from its `org.freedesktop.login1.Session` properties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// logind's session id, e.g. "3" or "c2".
    pub id: String,
    /// The user's numeric id.
    pub uid: u32,
    /// The user's name.
    pub user: String,
    /// "user", "greeter", "lock-screen", "background", "manager", ...
    pub class: String,
    /// logind's "Type": "x11", "wayland", "tty", "mir" or "unspecified".
    pub kind: String,
    /// The seat the session sits on; None for sessions without one (SSH, cron).
    pub seat: Option<String>,
    /// Whether the session was opened over the network.
    pub remote: bool,
    /// Where a remote session comes from, when logind knows.
    pub remote_host: Option<String>,
    /// Whether this is the session in the foreground of its seat.
    pub active: bool,
    /// logind's LockedHint: the screen of this session is locked.
    pub locked: bool,
    /// logind's IdleHint, as reported by the session itself.
    pub idle_hint: bool,
    /// The X11 display, e.g. ":0".
    pub display: Option<String>,
    /// The terminal, e.g. "tty2" or "pts/3".
    pub tty: Option<String>,
    /// The process id of the session leader.
    pub leader: u32,
}

impl Session {
    /// A person's session: class "user" (greeters, lock screens, background and manager sessions
    /// are not people).
    pub fn is_person(&self) -> bool {
        self.class == "user"
    }
}

/// What went wrong talking to logind; the messages say what to check.
#[derive(Debug, thiserror::Error)]
pub enum LogindError {
    /// The bus itself cannot be reached.
    #[error("cannot reach logind on the system bus ({address}): {source}")]
    Connect {
        /// The bus address tried.
        address: String,
        /// Why it failed.
        #[source]
        source: zbus::Error,
    },
    /// The bus did not complete the connection in time.
    #[error(
        "cannot reach logind on the system bus ({address}): no answer within {} s",
        CALL_TIMEOUT.as_secs()
    )]
    ConnectTimeout {
        /// The bus address tried.
        address: String,
    },
    /// logind (or the bus on its behalf) answered a call with an error.
    #[error("logind could not answer {what} (is systemd-logind running?): {source}")]
    Call {
        /// The call, e.g. "ListSessions".
        what: String,
        /// The error received.
        #[source]
        source: zbus::Error,
    },
    /// logind did not answer a call in time.
    #[error("logind did not answer {what} within {} s", CALL_TIMEOUT.as_secs())]
    Timeout {
        /// The call, e.g. "ListSessions".
        what: String,
    },
}

/// A connection to logind; cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct Logind {
    connection: Connection,
}

impl std::fmt::Debug for Logind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logind").finish_non_exhaustive()
    }
}

impl Logind {
    /// Connects to logind on `address` (a D-Bus address like
    /// "unix:path=/run/dbus/system_bus_socket"), or on the system bus when None.
    pub async fn connect(address: Option<&str>) -> Result<Logind, LogindError> {
        let shown = match address {
            Some(address) => address.to_owned(),
            None => std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                .unwrap_or_else(|_| DEFAULT_SYSTEM_BUS.to_owned()),
        };
        let connect = async {
            let builder = match address {
                Some(address) => zbus::connection::Builder::address(address)?,
                None => zbus::connection::Builder::system()?,
            };
            builder.method_timeout(CALL_TIMEOUT).build().await
        };
        match tokio::time::timeout(CALL_TIMEOUT, connect).await {
            Ok(Ok(connection)) => Ok(Logind { connection }),
            Ok(Err(source)) => Err(LogindError::Connect {
                address: shown,
                source,
            }),
            Err(_) => Err(LogindError::ConnectTimeout { address: shown }),
        }
    }

    /// Every session (ListSessions, then each session object's properties).
    ///
    /// A session that disappears between the two steps is left out; any other failure is an
    /// error, never a shorter list, so a broken logind can't make a busy PC look free.
    pub async fn sessions(&self) -> Result<Vec<Session>, LogindError> {
        let reply = bounded(
            "ListSessions",
            self.connection.call_method(
                Some(SERVICE),
                MANAGER_PATH,
                Some(MANAGER_INTERFACE),
                "ListSessions",
                &(),
            ),
        )
        .await?;
        let listed: Vec<(String, u32, String, String, OwnedObjectPath)> = reply
            .body()
            .deserialize()
            .map_err(|source| LogindError::Call {
                what: "ListSessions".into(),
                source,
            })?;
        let reads = listed
            .into_iter()
            .map(|(id, uid, user, seat, path)| self.session(id, uid, user, seat, path));
        let sessions = futures::future::try_join_all(reads).await?;
        Ok(sessions.into_iter().flatten().collect())
    }

    /// Reads one session's properties; None when the session is gone.
    async fn session(
        &self,
        id: String,
        uid: u32,
        user: String,
        seat: String,
        path: OwnedObjectPath,
    ) -> Result<Option<Session>, LogindError> {
        let what = format!("the properties of session {id}");
        let call = self.connection.call_method(
            Some(SERVICE),
            &path,
            Some(PROPERTIES_INTERFACE),
            "GetAll",
            &(SESSION_INTERFACE,),
        );
        let reply = match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(error)) if is_gone(&error) => return Ok(None),
            Ok(Err(source)) => return Err(LogindError::Call { what, source }),
            Err(_) => return Err(LogindError::Timeout { what }),
        };
        let properties: HashMap<String, OwnedValue> = reply
            .body()
            .deserialize()
            .map_err(|source| LogindError::Call { what, source })?;
        Ok(Some(Session::from_properties(
            id,
            uid,
            user,
            seat,
            &properties,
        )))
    }

    /// A stream that yields () whenever sessions may have changed: SessionNew / SessionRemoved
    /// on org.freedesktop.login1.Manager, and PropertiesChanged on session objects (lock, idle
    /// hint, active). Ends if the bus connection is lost.
    ///
    /// Subscribe before reading [`Logind::sessions`] so no change falls in between. Changes
    /// that arrive while the caller is busy are folded into one pending wake-up, so a slow
    /// reader never holds up the bus connection.
    pub async fn changes(&self) -> Result<BoxStream<'static, ()>, LogindError> {
        let rules = [
            manager_signal("SessionNew"),
            manager_signal("SessionRemoved"),
            MatchRule::builder()
                .msg_type(MessageType::Signal)
                .sender(SERVICE)
                .and_then(|b| b.interface(PROPERTIES_INTERFACE))
                .and_then(|b| b.member("PropertiesChanged"))
                .and_then(|b| b.path_namespace(SESSION_PATHS))
                .and_then(|b| b.arg(0, SESSION_INTERFACE))
                .map(|b| b.build().into()),
        ];
        let mut streams = Vec::with_capacity(rules.len());
        for rule in rules {
            let rule = rule.map_err(|source| LogindError::Call {
                what: "a signal subscription".into(),
                source,
            })?;
            let stream = bounded(
                "AddMatch",
                MessageStream::for_match_rule(rule, &self.connection, Some(16)),
            )
            .await?;
            streams.push(stream);
        }
        let mut signals = futures::stream::select_all(streams);
        // A separate task drains the signals: zbus stops reading the socket when a stream's
        // queue is full, which would stall every other call on this connection.
        let (wake, woken) = tokio::sync::mpsc::channel::<()>(1);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    signal = signals.next() => match signal {
                        Some(Ok(_)) => {
                            // Full means a wake-up is already pending: nothing is lost.
                            if let Err(tokio::sync::mpsc::error::TrySendError::Closed(())) =
                                wake.try_send(())
                            {
                                break;
                            }
                        }
                        Some(Err(_)) | None => break,
                    },
                    () = wake.closed() => break,
                }
            }
        });
        Ok(futures::stream::unfold(woken, |mut woken| async move {
            woken.recv().await.map(|()| ((), woken))
        })
        .boxed())
    }
}

impl Session {
    /// Builds a session from ListSessions' fields and its properties; anything missing or of
    /// the wrong type takes a neutral default.
    fn from_properties(
        id: String,
        uid: u32,
        user: String,
        seat: String,
        properties: &HashMap<String, OwnedValue>,
    ) -> Session {
        let text = |name: &str| -> Option<String> {
            properties
                .get(name)
                .and_then(|value| value.downcast_ref::<&str>().ok())
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        let flag = |name: &str| -> bool {
            properties
                .get(name)
                .and_then(|value| value.downcast_ref::<bool>().ok())
                .unwrap_or(false)
        };
        let user = if user.is_empty() {
            text("Name").unwrap_or_default()
        } else {
            user
        };
        Session {
            id,
            uid,
            user,
            class: text("Class").unwrap_or_else(|| "unspecified".into()),
            kind: text("Type").unwrap_or_else(|| "unspecified".into()),
            seat: Some(seat).filter(|seat| !seat.is_empty()),
            remote: flag("Remote"),
            remote_host: text("RemoteHost"),
            active: flag("Active"),
            locked: flag("LockedHint"),
            idle_hint: flag("IdleHint"),
            display: text("Display"),
            tty: text("TTY"),
            leader: properties
                .get("Leader")
                .and_then(|value| value.downcast_ref::<u32>().ok())
                .unwrap_or(0),
        }
    }
}

/// A match rule for a signal of logind's manager object.
fn manager_signal(member: &'static str) -> zbus::Result<zbus::OwnedMatchRule> {
    MatchRule::builder()
        .msg_type(MessageType::Signal)
        .sender(SERVICE)
        .and_then(|b| b.interface(MANAGER_INTERFACE))
        .and_then(|b| b.member(member))
        .and_then(|b| b.path(MANAGER_PATH))
        .map(|b| b.build().into())
}

/// Runs one D-Bus step within [`CALL_TIMEOUT`].
async fn bounded<T>(
    what: &str,
    step: impl Future<Output = zbus::Result<T>>,
) -> Result<T, LogindError> {
    match tokio::time::timeout(CALL_TIMEOUT, step).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(LogindError::Call {
            what: what.to_owned(),
            source,
        }),
        Err(_) => Err(LogindError::Timeout {
            what: what.to_owned(),
        }),
    }
}

/// Whether an error means the session object no longer exists (it ended while we looked).
fn is_gone(error: &zbus::Error) -> bool {
    let name = match error {
        zbus::Error::MethodError(name, _, _) => name.as_str(),
        zbus::Error::FDO(error) => match **error {
            zbus::fdo::Error::UnknownObject(_)
            | zbus::fdo::Error::UnknownMethod(_)
            | zbus::fdo::Error::UnknownInterface(_) => return true,
            _ => return false,
        },
        _ => return false,
    };
    matches!(
        name,
        "org.freedesktop.DBus.Error.UnknownObject"
            | "org.freedesktop.DBus.Error.UnknownMethod"
            | "org.freedesktop.DBus.Error.UnknownInterface"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::Value;

    fn properties(pairs: &[(&str, Value<'static>)]) -> HashMap<String, OwnedValue> {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    (*name).to_owned(),
                    OwnedValue::try_from(value.try_clone().unwrap()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn missing_properties_take_defaults() {
        let session = Session::from_properties(
            "7".into(),
            1000,
            String::new(),
            String::new(),
            &properties(&[("Name", Value::from("ada"))]),
        );
        assert_eq!(session.user, "ada");
        assert_eq!(session.class, "unspecified");
        assert_eq!(session.kind, "unspecified");
        assert_eq!(session.seat, None);
        assert_eq!(session.display, None);
        assert_eq!(session.tty, None);
        assert!(!session.active && !session.locked && !session.remote && !session.idle_hint);
        assert!(!session.is_person());
    }

    #[test]
    fn properties_are_read_and_empty_strings_are_none() {
        let session = Session::from_properties(
            "c1".into(),
            1000,
            "ada".into(),
            "seat0".into(),
            &properties(&[
                ("Class", Value::from("user")),
                ("Type", Value::from("tty")),
                ("Remote", Value::from(true)),
                ("RemoteHost", Value::from("10.0.0.2")),
                ("Active", Value::from(true)),
                ("LockedHint", Value::from(true)),
                ("IdleHint", Value::from(true)),
                ("Display", Value::from("")),
                ("TTY", Value::from("pts/3")),
                ("Leader", Value::from(4242u32)),
                // A wrong type must not break anything.
                ("Name", Value::from(5u32)),
            ]),
        );
        assert_eq!(
            session,
            Session {
                id: "c1".into(),
                uid: 1000,
                user: "ada".into(),
                class: "user".into(),
                kind: "tty".into(),
                seat: Some("seat0".into()),
                remote: true,
                remote_host: Some("10.0.0.2".into()),
                active: true,
                locked: true,
                idle_hint: true,
                display: None,
                tty: Some("pts/3".into()),
                leader: 4242,
            }
        );
        assert!(session.is_person());
    }
}
