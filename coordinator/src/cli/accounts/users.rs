//! `idlefarm user add|list|remove|passwd|role|setup-link`: managing users over the API as a
//! logged-in admin, or with `--data DIR` on the coordinator's data directory.

use anyhow::bail;
use clap::{Args, Subcommand};
use idlefarm_protocol::accounts::{NewUser, Role};

use super::{Backend, Target, format_time, maybe_password, parse_role};
use crate::accounts;
use crate::cli::DEFAULT_SERVER;
use crate::cli::serve::setup_link_line;

/// `idlefarm user …`.
#[derive(Debug, Args)]
pub(in crate::cli) struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user; prints a generated password unless --password-stdin.
    Add {
        /// Login name: letters, digits, `.`, `_`, `-`.
        name: String,
        /// admin (everything) or submitter (their own jobs).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Remove a user with their logins (their jobs stay). Never the last admin.
    Remove {
        /// Login name.
        name: String,
    },
    /// Set a user's password (generated and printed unless --password-stdin); ends their
    /// other logins.
    Passwd {
        /// Login name.
        name: String,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Make a user an admin or a submitter. Never the last admin a submitter.
    Role {
        /// Login name.
        name: String,
        /// admin (everything) or submitter (their own jobs).
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Print a new one-time link (valid 24 h) with which a user chooses their password in the
    /// browser, e.g. when the first start's link was lost. Only with --data DIR, on the
    /// coordinator's machine; earlier unused links of that user stop working.
    SetupLink {
        /// Login name [default: the first admin].
        name: Option<String>,
    },
}

/// `idlefarm user …`.
pub(in crate::cli) async fn user(args: UserArgs) -> anyhow::Result<()> {
    let backend = Backend::open(&args.target).await?;
    match args.command {
        UserCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            let password = maybe_password(password_stdin)?;
            let (user, generated) = backend
                .add_user(NewUser {
                    name,
                    role,
                    password,
                })
                .await?;
            println!("added {} ({})", user.name, user.role.as_str());
            if let Some(p) = generated {
                println!(
                    "password: {p}   (shown once; `idlefarm user passwd {}` changes it)",
                    user.name
                );
            }
        }
        UserCommand::List => {
            for u in backend.users().await? {
                println!(
                    "{:<24} {:<10} since {}",
                    u.name,
                    u.role.as_str(),
                    format_time(u.created_at)
                );
            }
        }
        UserCommand::Remove { name } => {
            backend.remove_user(&name).await?;
            println!("removed {name}; their logins ended, their jobs stay");
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let password = maybe_password(password_stdin)?;
            match backend.set_password(&name, password).await? {
                Some(p) => println!("new password for {name}: {p}   (shown once)"),
                None => println!("password of {name} changed"),
            }
            println!("their other logins have ended");
        }
        UserCommand::Role { name, role } => {
            let user = backend.set_role(&name, role).await?;
            println!("{} is now {}", user.name, user.role.as_str());
        }
        UserCommand::SetupLink { name } => {
            setup_link(&backend, args.target.server.as_deref(), name.as_deref()).await?;
        }
    }
    Ok(())
}

/// `idlefarm user setup-link`: only on the data directory, since whoever uses the link needs
/// no password, so it must come from someone who can read the coordinator's files.
async fn setup_link(
    backend: &Backend,
    server: Option<&str>,
    name: Option<&str>,
) -> anyhow::Result<()> {
    let Backend::Local { store, actor } = backend else {
        bail!(
            "`idlefarm user setup-link` works on the coordinator's machine: pass --data DIR \
             (an admin can instead reset a password with `idlefarm user passwd NAME`)"
        );
    };
    let made = accounts::create_setup_key(store, actor, name).await?;
    let url = server.unwrap_or(DEFAULT_SERVER);
    let what = format!("the password of {}", made.user);
    println!("{}", setup_link_line(url, &made.key, &what));
    if server.is_none() {
        eprintln!("(if the coordinator has another address, replace {url} with it)");
    }
    Ok(())
}
