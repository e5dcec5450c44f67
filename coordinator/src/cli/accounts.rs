//! The account commands: `login`, `logout`, `user …` (in [`users`]), `token [create|list|
//! revoke]` and `audit`. `user`, `token` and `audit` work over the API as a logged-in admin, or
//! with `--data DIR` directly on the coordinator's data directory, so an admin can never lock
//! themselves out.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use idlefarm_protocol::accounts::Role;

use super::ServerArg;
use crate::accounts::{self, credentials};
use crate::client::Client;

mod backend;
mod users;

use backend::Backend;
pub(super) use users::{UserArgs, user};

/// `idlefarm login`.
#[derive(Debug, Args)]
pub(super) struct LoginArgs {
    /// Login name.
    #[arg(long)]
    user: String,
    /// Read the password from standard input (one line) instead of the terminal.
    #[arg(long)]
    password_stdin: bool,
    /// An HTTPS coordinator's certificate fingerprint (SHA-256, as `idlefarm serve` prints
    /// it) to pin [default: the certificate it presents now, shown so you can compare].
    #[arg(long, value_parser = str::parse::<idlefarm_tls::Fingerprint>)]
    fingerprint: Option<idlefarm_tls::Fingerprint>,
    #[command(flatten)]
    server: ServerArg,
}

/// Where an account command acts: a coordinator's API, or its data directory.
#[derive(Debug, Args)]
pub(super) struct Target {
    /// Act directly on this coordinator data directory instead of over the API (on the
    /// coordinator's machine; needs no login).
    #[arg(long, env = "IDLEFARM_DATA", global = true)]
    data: Option<PathBuf>,
    /// The coordinator's URL [default: http://127.0.0.1:7870].
    #[arg(long = "server", env = "IDLEFARM_SERVER", global = true)]
    server: Option<String>,
}

/// `idlefarm token …`.
#[derive(Debug, Args)]
pub(super) struct TokenArgs {
    #[command(subcommand)]
    command: Option<TokenCommand>,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an enrolment token, e.g. one that expires after a week: `--expires 7d`.
    Create {
        /// How long it enrols agents: `90s`, `30m`, `12h`, `7d`, `2w` (default: for ever).
        #[arg(long, value_parser = parse_duration_secs)]
        expires: Option<u64>,
    },
    /// List enrolment tokens.
    List,
    /// Revoke an enrolment token: it enrols nothing more; agents it enrolled keep working.
    Revoke {
        /// Token id, from `idlefarm token list`.
        id: i64,
    },
}

/// `idlefarm audit`.
#[derive(Debug, Args)]
pub(super) struct AuditArgs {
    /// How many of the newest entries to show.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    limit: u32,
    #[command(flatten)]
    target: Target,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("`{s}` is not a role; use admin or submitter"))
}

/// Parses durations like `90s`, `30m`, `12h`, `7d`, `2w` (a bare number is seconds) into seconds.
pub fn parse_duration_secs(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let mult: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return Err(format!("`{s}`: unknown unit `{unit}`; use s, m, h, d or w")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("`{s}` is not a duration; use e.g. 90s, 30m, 12h, 7d or 2w"))
}

/// Reads one line of standard input as a password.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

/// The password from standard input when asked, else `None` (generate one).
fn maybe_password(from_stdin: bool) -> anyhow::Result<Option<String>> {
    from_stdin.then(password_from_stdin).transpose()
}

/// This PC's name, for labelling its API token.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this PC".into())
}

/// `idlefarm login`: trades the password for an API token and saves it.
pub(super) async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let url = args.server.url;
    let password = if args.password_stdin {
        password_from_stdin()?
    } else {
        rpassword::prompt_password(format!("password for {} at {url}: ", args.user))
            .context("cannot read the password from the terminal (use --password-stdin)")?
    };
    let label = format!("idlefarm CLI on {}", hostname());
    let https = url.starts_with("https://");
    let pin = idlefarm_tls::Pin::new(args.fingerprint);
    let client = match https {
        true => Client::pinned(&url, &pin)?,
        false => Client::new(&url),
    };
    let made = client
        .create_api_token(&args.user, &password, &label)
        .await
        .map_err(|e| match (pin.presented(), pin.expected()) {
            (Some(seen), Some(pinned)) if seen != pinned => {
                anyhow::anyhow!(idlefarm_tls::mismatch_message(seen, pinned))
            }
            _ => e,
        })?;
    let fingerprint = https.then(|| pin.expected().or(pin.presented())).flatten();
    if let (None, Some(seen)) = (args.fingerprint, fingerprint) {
        println!(
            "the coordinator's certificate is SHA256 {seen}; this CLI trusts only it from now on \
             (compare it with the one `idlefarm serve` printed)"
        );
    }
    let path = credentials::default_path()?;
    let mut creds = credentials::Credentials::load(&path)?;
    creds.set(
        &url,
        credentials::SavedLogin {
            user: made.user.name.clone(),
            token: made.token,
            fingerprint: fingerprint.map(|f| f.to_string()),
        },
    );
    creds.save(&path)?;
    println!(
        "logged in to {url} as {} ({}); token saved in {}",
        made.user.name,
        made.user.role.as_str(),
        path.display()
    );
    Ok(())
}

/// `idlefarm logout`: revokes the saved API token and forgets it.
pub(super) async fn logout(url: &str) -> anyhow::Result<()> {
    let path = credentials::default_path()?;
    let mut creds = credentials::Credentials::load(&path)?;
    let Some(login) = creds.remove(url) else {
        println!("not logged in to {url}");
        return Ok(());
    };
    let pinned =
        (login.fingerprint.as_deref()).and_then(|f| f.parse::<idlefarm_tls::Fingerprint>().ok());
    let client = match pinned {
        Some(fingerprint) => Client::pinned(url, &idlefarm_tls::Pin::new(Some(fingerprint)))?,
        None => Client::new(url),
    };
    let revoked = client
        .with_token(Some(login.token))
        .revoke_api_token()
        .await;
    creds.save(&path)?;
    match revoked {
        Ok(()) => println!("logged out of {url} ({})", login.user),
        // The token is forgotten either way; say why the server may still list it.
        Err(e) => println!("forgot the login for {url}, but could not revoke its token: {e:#}"),
    }
    Ok(())
}

/// `idlefarm token …`.
pub(super) async fn token(args: TokenArgs) -> anyhow::Result<()> {
    let backend = Backend::open(&args.target).await?;
    match args.command {
        None => println!("{}", backend.standing_enrolment_token().await?),
        Some(TokenCommand::Create { expires }) => {
            let t = backend.create_enrolment_token(expires).await?;
            println!("{}", t.token);
            let until = t.expires_at.map_or("never expires".into(), |at| {
                format!("expires {}", format_time(at))
            });
            eprintln!(
                "enrolment token {} ({until}); `idlefarm token revoke {}` revokes it",
                t.id, t.id
            );
        }
        Some(TokenCommand::List) => {
            let now = accounts::now_secs();
            for t in backend.enrolment_tokens().await? {
                let state = if t.revoked_at.is_some() {
                    "revoked".to_owned()
                } else if !t.is_live(now) {
                    "expired".to_owned()
                } else {
                    t.expires_at.map_or("live".into(), |at| {
                        format!("live until {}", format_time(at))
                    })
                };
                println!(
                    "{:>4}  {}  {:<32}  {}",
                    t.id,
                    t.token,
                    state,
                    format_time(t.created_at)
                );
            }
        }
        Some(TokenCommand::Revoke { id }) => {
            backend.revoke_enrolment_token(id).await?;
            println!("enrolment token {id} revoked; agents it enrolled keep working");
        }
    }
    Ok(())
}

/// `idlefarm audit`.
pub(super) async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let backend = Backend::open(&args.target).await?;
    for e in backend.audit(args.limit).await? {
        println!(
            "{}  {:<16} {:<24} {:<20} {}",
            format_time(e.at),
            e.actor,
            e.action,
            e.target,
            e.detail
        );
    }
    Ok(())
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC`.
pub fn format_time(unix: i64) -> String {
    crate::pages::Stamp::at(unix).text
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::Cli;
    use super::*;

    fn parse_err(args: &[&str]) -> String {
        Cli::try_parse_from(args).unwrap_err().to_string()
    }

    #[test]
    fn durations_take_day_suffixes() {
        assert_eq!(parse_duration_secs("7d"), Ok(7 * 86_400));
        assert_eq!(parse_duration_secs("90s"), Ok(90));
        assert_eq!(parse_duration_secs("30m"), Ok(1800));
        assert_eq!(parse_duration_secs("2w"), Ok(14 * 86_400));
        assert_eq!(parse_duration_secs("45"), Ok(45));
        for bad in ["", "d", "0d", "-1d", "7y", "1.5h", "soon"] {
            assert!(parse_duration_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_time(1_700_000_000), "2023-11-14 22:13 UTC");
    }

    #[test]
    fn bad_account_flags_are_refused_with_the_value_named() {
        let err = parse_err(&["idlefarm", "user", "add", "ada", "--role", "root"]);
        assert!(err.contains("root") && err.contains("submitter"), "{err}");
        let err = parse_err(&["idlefarm", "user", "add", "ada"]);
        assert!(err.contains("--role"), "{err}");
        let err = parse_err(&["idlefarm", "token", "create", "--expires", "7y"]);
        assert!(err.contains("7y"), "{err}");
        let err = parse_err(&["idlefarm", "token", "revoke", "three"]);
        assert!(err.contains("three"), "{err}");
        let err = parse_err(&["idlefarm", "audit", "--limit", "0"]);
        assert!(err.contains("--limit"), "{err}");
        let err = parse_err(&["idlefarm", "login"]);
        assert!(err.contains("--user"), "{err}");
        let err = parse_err(&["idlefarm", "user", "frobnicate"]);
        assert!(err.contains("frobnicate"), "{err}");
    }

    #[test]
    fn target_flags_go_before_or_after_the_subcommand() {
        for args in [
            &[
                "idlefarm",
                "token",
                "--data",
                "/srv/farm",
                "create",
                "--expires",
                "7d",
            ][..],
            &[
                "idlefarm",
                "token",
                "create",
                "--expires",
                "7d",
                "--data",
                "/srv/farm",
            ][..],
            &["idlefarm", "user", "list", "--data", "/srv/farm"][..],
            &["idlefarm", "audit", "--data", "/srv/farm", "--limit", "5"][..],
            &["idlefarm", "token", "--data", "/srv/farm"][..],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            assert!(format!("{cli:?}").contains("/srv/farm"), "{args:?}");
        }
    }
}
