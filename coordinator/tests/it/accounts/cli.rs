//! The account commands of the real `idlefarm` binary: logging in and out with a private
//! credentials file, managing users over the API, and `--data` mode on a data directory.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};

use idlefarm_protocol::accounts::Role;
use tokio::io::AsyncWriteExt;

use crate::common::Farm;

/// Runs `idlefarm args…` with its config and data homes in `home` (never the real ones), feeding
/// `stdin`.
pub(super) async fn idlefarm(home: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_idlefarm"))
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env_remove("IDLEFARM_API_TOKEN")
        .env_remove("IDLEFARM_DATA")
        .env_remove("IDLEFARM_SERVER")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the idlefarm binary runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}

pub(super) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(super) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn the_cli_logs_in_with_a_private_credentials_file_and_out_again() {
    let farm = Farm::start_bare(|_| {}).await;
    let password = farm.add_user("ada", Role::Admin).await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let url = farm.url.as_str();

    let out = idlefarm(
        h,
        &[
            "login",
            "--server",
            url,
            "--user",
            "ada",
            "--password-stdin",
        ],
        "wrong-password\n",
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("wrong user name or password"),
        "{}",
        stderr(&out)
    );

    let out = idlefarm(
        h,
        &[
            "login",
            "--server",
            url,
            "--user",
            "ada",
            "--password-stdin",
        ],
        &format!("{password}\n"),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let file = h.join("config/idlefarm/credentials.toml");
    assert!(
        stdout(&out).contains(&file.display().to_string()),
        "{}",
        stdout(&out)
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600, "the token file is private");
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    assert!(!std::fs::read_to_string(&file).unwrap().contains(&password));

    let out = idlefarm(
        h,
        &["user", "add", "bob", "--role", "submitter", "--server", url],
        "",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let generated = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("a generated password is printed")
        .to_owned();
    farm.client
        .create_api_token("bob", &generated, "check")
        .await
        .expect("the printed password works");
    let out = idlefarm(h, &["user", "list", "--server", url], "").await;
    assert!(
        stdout(&out).contains("bob") && stdout(&out).contains("submitter"),
        "{}",
        stdout(&out)
    );
    let out = idlefarm(h, &["audit", "--limit", "3", "--server", url], "").await;
    assert!(stdout(&out).contains("user.add"), "{}", stdout(&out));
    let out = idlefarm(h, &["user", "remove", "ada", "--server", url], "").await;
    assert!(!out.status.success(), "ada is the last admin");
    assert!(stderr(&out).contains("last admin"), "{}", stderr(&out));
    let out = idlefarm(h, &["status", "--server", url], "").await;
    assert!(out.status.success(), "{}", stderr(&out));

    let out = idlefarm(h, &["logout", "--server", url], "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = idlefarm(h, &["user", "list", "--server", url], "").await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("idlefarm login"), "{}", stderr(&out));
    let revoked = farm.store().await.audit_log(1).await.unwrap();
    assert_eq!(
        revoked[0].action, "api-token.revoke",
        "logout revoked the token"
    );
    farm.stop().await;
}

#[tokio::test]
async fn data_mode_manages_accounts_without_a_server() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let data = h.join("farm-data");
    let dir = data.to_str().unwrap();
    let out = idlefarm(h, &["user", "list", "--data", dir], "").await;
    assert!(
        !out.status.success(),
        "a missing data directory is not created"
    );
    std::fs::create_dir(&data).unwrap();

    let out = idlefarm(
        h,
        &["user", "add", "ada", "--role", "admin", "--data", dir],
        "",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("password: "), "{}", stdout(&out));
    let out = idlefarm(
        h,
        &[
            "user",
            "add",
            "bob",
            "--role",
            "submitter",
            "--password-stdin",
            "--data",
            dir,
        ],
        "bobs-password\n",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stdout(&out).contains("password:"),
        "no password is generated"
    );
    let out = idlefarm(
        h,
        &["user", "add", "bob", "--role", "admin", "--data", dir],
        "",
    )
    .await;
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    let out = idlefarm(
        h,
        &["user", "add", "carl", "--role", "boss", "--data", dir],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "clap refuses the role");

    let out = idlefarm(
        h,
        &["token", "create", "--expires", "7d", "--data", dir],
        "",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let week = stdout(&out).trim().to_owned();
    let out = idlefarm(h, &["token", "--data", dir], "").await;
    let standing = stdout(&out).trim().to_owned();
    assert_ne!(
        standing, week,
        "`idlefarm token` prints the token that never expires"
    );
    let out = idlefarm(h, &["token", "--data", dir], "").await;
    assert_eq!(stdout(&out).trim(), standing, "and the same one again");
    let out = idlefarm(h, &["token", "list", "--data", dir], "").await;
    assert!(
        stdout(&out).contains(&week) && stdout(&out).contains("live until"),
        "{}",
        stdout(&out)
    );

    let store = idlefarm_coordinator::store::Store::open(&data)
        .await
        .unwrap();
    let users = store.users().await.unwrap();
    let roles: Vec<(&str, Role)> = users.iter().map(|u| (u.name.as_str(), u.role)).collect();
    assert_eq!(roles, [("ada", Role::Admin), ("bob", Role::Submitter)]);
    assert!(store.token_is_valid(&week).await.unwrap());
    assert!(store.token_is_valid(&standing).await.unwrap());
    let log = store.audit_log(10).await.unwrap();
    assert!(log.iter().all(|e| e.actor.starts_with("local:")), "{log:?}");
    assert!(log.iter().any(|e| e.action == "enrolment-token.create"));

    let id = store.enrolment_tokens().await.unwrap()[1].id;
    let out = idlefarm(h, &["token", "revoke", &id.to_string(), "--data", dir], "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!store.token_is_valid(&week).await.unwrap(), "revoked");
    let out = idlefarm(h, &["user", "passwd", "bob", "--data", dir], "").await;
    assert!(
        stdout(&out).contains("new password for bob"),
        "{}",
        stdout(&out)
    );
    let out = idlefarm(h, &["user", "remove", "ada", "--data", dir], "").await;
    assert!(stderr(&out).contains("last admin"), "{}", stderr(&out));
}
