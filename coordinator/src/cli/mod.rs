//! The `idlefarm` command line: `serve`, `up`, `submit`, `status`, `fetch`; the account
//! commands (`login`, `logout`, `user`, `token`, `audit`) in [`accounts`]; job and agent control
//! in [`control`].

mod accounts;
mod control;
mod jobs;
mod local_agent;
mod serve;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::client::Client;
use jobs::{SubmitArgs, fetch, status, submit};
use serve::{ServeArgs, serve};

pub use serve::{first_run_notice, parse_size};

/// idlefarm: a render farm made of lab PCs that renders only while nobody uses them.
#[derive(Debug, Parser)]
#[command(name = "idlefarm", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the coordinator (web page, API, scheduler).
    Serve(ServeArgs),
    /// Run a coordinator and one local agent on this PC: the quickest way to a working farm.
    Up(ServeArgs),
    /// Submit a .blend, .pov (with --ini) or .zip project.
    Submit(SubmitArgs),
    /// Show jobs and agents, or one job in detail.
    Status {
        /// Job id; all jobs when omitted.
        job: Option<i64>,
        /// Print JSON (`{"jobs": [...], "agents": [...]}`) for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    #[command(flatten)]
    Control(control::ControlCommand),
    /// Download a job's frames and video.
    Fetch {
        /// Job id.
        job: i64,
        /// Folder to write frame_00001.png ... and the .mp4 into (created if missing).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Log this CLI in to a coordinator (saves an API token in your config directory).
    Login(accounts::LoginArgs),
    /// Log this CLI out of a coordinator (revokes and forgets the saved API token).
    Logout {
        #[command(flatten)]
        server: ServerArg,
    },
    /// Manage users (admins; or on the coordinator's machine with --data DIR).
    User(accounts::UserArgs),
    /// Print the enrolment token agents register with (creates one if there is none), or
    /// create, list and revoke enrolment tokens.
    Token(accounts::TokenArgs),
    /// Show the audit log: who did what, when (admins; or with --data DIR).
    Audit(accounts::AuditArgs),
}

/// The coordinator the CLI talks to unless told otherwise (where `idlefarm up` listens).
const DEFAULT_SERVER: &str = "http://127.0.0.1:7870";

#[derive(Debug, Args)]
pub(crate) struct ServerArg {
    /// The coordinator's URL.
    #[arg(
        long = "server",
        env = "IDLEFARM_SERVER",
        default_value = DEFAULT_SERVER
    )]
    url: String,
}

impl ServerArg {
    /// A client for this coordinator that sends the token `idlefarm login` saved for it.
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        Client::for_cli(&self.url)
    }
}

/// Where the coordinator keeps its data unless told otherwise.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("idlefarm");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/idlefarm"),
        None => PathBuf::from("idlefarm-data"),
    }
}

/// Runs the CLI.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args, false).await,
        Command::Up(args) => serve(args, true).await,
        Command::Submit(args) => submit(args).await,
        Command::Status { job, json, server } => status(&server.client()?, job, json).await,
        Command::Control(command) => control::run(command).await,
        Command::Fetch { job, out, server } => fetch(&server.client()?, job, &out).await,
        Command::Login(args) => accounts::login(args).await,
        Command::Logout { server } => accounts::logout(&server.url).await,
        Command::User(args) => accounts::user(args).await,
        Command::Token(args) => accounts::token(args).await,
        Command::Audit(args) => accounts::audit(args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn sizes_parse_with_suffixes_and_reject_nonsense() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert_eq!(parse_size("4g"), Ok(4 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("-1M").is_err());
    }

    #[test]
    fn bad_flags_are_refused_with_the_flag_named() {
        let err = Cli::try_parse_from(["idlefarm", "serve", "--max-upload", "huge"]).unwrap_err();
        assert!(err.to_string().contains("--max-upload"), "{err}");
        for bad in ["lots", "0", "2X", "1.5G"] {
            let err =
                Cli::try_parse_from(["idlefarm", "serve", "--max-unpacked", bad]).unwrap_err();
            assert!(err.to_string().contains("--max-unpacked"), "{bad}: {err}");
        }
        assert!(Cli::try_parse_from(["idlefarm", "up", "--max-unpacked", "2G"]).is_ok());
        for bad in ["lots", "-1%", "101%", "5%%", "NaN", ""] {
            let flag = format!("--verify={bad}");
            let err = Cli::try_parse_from(["idlefarm", "serve", &flag]).unwrap_err();
            assert!(err.to_string().contains("--verify"), "{bad}: {err}");
        }
        for bad in [
            &["--tls-cert", "c.pem"][..],
            &["--tls-key", "k.pem"],
            &["--tls", "--tls-cert", "c.pem", "--tls-key", "k.pem"],
        ] {
            let args = ["idlefarm", "serve"].iter().chain(bad);
            let err = Cli::try_parse_from(args).unwrap_err().to_string();
            assert!(err.contains("--tls"), "{bad:?}: {err}");
        }
        let err = Cli::try_parse_from(["idlefarm", "agent", "approve", "first"]).unwrap_err();
        assert!(err.to_string().contains("first"), "{err}");
        assert!(Cli::try_parse_from(["idlefarm", "agent", "reject"]).is_err());
        let err = Cli::try_parse_from(["idlefarm", "login", "--user", "a", "--fingerprint", "AB"])
            .unwrap_err();
        assert!(err.to_string().contains("not a SHA-256"), "{err}");
        for good in ["5%", "0.5%", "100", "0%"] {
            assert!(Cli::try_parse_from(["idlefarm", "serve", "--verify", good]).is_ok());
        }
        let err = Cli::try_parse_from(["idlefarm", "status", "seven"]).unwrap_err();
        assert!(err.to_string().contains("seven"), "{err}");
        assert!(
            Cli::try_parse_from(["idlefarm", "fetch", "3"]).is_err(),
            "--out is required"
        );
    }
}
