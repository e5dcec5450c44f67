//! The admin page and the first-run setup page in the browser: the link a first start prints
//! sets the admin's password once and logs in; an admin manages users (a generated password is
//! shown once) and reads the audit log; a submitter gets neither the page nor its nav entry.

use idlefarm_coordinator::cli::first_run_notice;
use idlefarm_coordinator::client::Client;
use idlefarm_protocol::accounts::Role;

use super::browser::Browser;
use crate::common::Farm;

/// The path of the setup link in the banner a first start prints (via the function `serve`
/// calls).
async fn printed_setup_path(farm: &Farm) -> String {
    let lines = first_run_notice(&farm.store().await, &farm.url)
        .await
        .unwrap();
    let link = lines
        .iter()
        .flat_map(|l| l.split_whitespace())
        .find(|w| w.contains("/setup?key="))
        .expect("the banner has a setup link");
    link.strip_prefix(farm.url.as_str())
        .expect("the link points at this coordinator")
        .to_owned()
}

#[tokio::test]
async fn the_printed_setup_link_sets_the_admin_password_once_and_logs_in() {
    let farm = Farm::start_bare(|_| {}).await;
    let path = printed_setup_path(&farm).await;
    let b = Browser::start(&farm.url).await;
    b.goto(&path).await;
    b.wait_text("main h1", "Choose your password").await;
    b.screenshot("setup").await;

    // Two different passwords are caught before anything is sent.
    b.fill("#setup input[name=password]", "correct horse battery")
        .await;
    b.fill("#setup-again", "correct horse battery!").await;
    b.click("#setup button.primary").await;
    b.wait_text("[data-error-for='setup-again']", "differ")
        .await;
    // A short one is refused by the coordinator, in the form.
    b.fill("#setup input[name=password]", "short").await;
    b.fill("#setup-again", "short").await;
    b.click("#setup button.primary").await;
    b.wait_text("#setup [data-error-for='']", "too short").await;
    assert!(b.path().await.starts_with("/setup"));

    b.fill("#setup input[name=password]", "correct horse battery")
        .await;
    b.fill("#setup-again", "correct horse battery").await;
    b.click("#setup button.primary").await;
    b.wait_until("the overview", || async { b.path().await == "/" })
        .await;
    b.wait_text(".who", "admin").await;
    b.wait_text("#live-status", "live").await;
    Client::new(&farm.url)
        .login("admin", "correct horse battery", "check")
        .await
        .expect("the chosen password works");

    // The link works once; wrong and missing keys get a page that says so.
    b.goto(&path).await;
    b.wait_text("main", "already used").await;
    assert!(b.text("main h1").await.contains("410"));
    b.goto("/setup?key=1.nonsense").await;
    b.wait_text("main", "not valid").await;
    b.goto("/setup").await;
    b.wait_text("main", "needs the key").await;
    b.close().await;
}

#[tokio::test]
async fn an_admin_adds_users_changes_roles_and_reads_the_audit_log() {
    let farm = Farm::start(|_| {}).await;
    let b = Browser::start(&farm.url).await;
    b.login("admin", farm.admin_password.as_deref().unwrap())
        .await;
    b.click("nav a[href='/admin']").await;
    b.wait_for("#add-user").await;

    // A bad name is answered in the form.
    b.fill("#add-user input[name=name]", "a b").await;
    b.click("#add-user button.primary").await;
    b.wait_text("#add-user [data-error-for='']", "not a valid user name")
        .await;

    // A user without a password gets a generated one, shown once.
    b.fill("#add-user input[name=name]", "ada").await;
    b.click("#add-user button.primary").await;
    b.wait_for("tr[data-user='ada']").await;
    b.wait_until("the generated password", || async {
        b.text("#new-password").await.len() == 20
    })
    .await;
    let generated = b.text("#new-password").await;
    Client::new(&farm.url)
        .login("ada", &generated, "check")
        .await
        .expect("the shown password works");
    assert!(
        b.text("tr[data-user='ada'] .badge")
            .await
            .contains("submitter")
    );

    // Change her role.
    b.click("tr[data-user='ada'] .set-role option[value='admin']")
        .await;
    b.click("tr[data-user='ada'] .set-role button").await;
    b.wait_text("tr[data-user='ada'] .badge", "admin").await;

    // Reset her password (after confirming): a new one is shown.
    b.click("tr[data-user='ada'] .reset-password button").await;
    b.client.accept_alert().await.unwrap();
    b.wait_until("the reset password", || async {
        b.text("tr[data-user='ada'] .reset-password output[data-from]")
            .await
            .len()
            == 20
    })
    .await;
    let reset = b
        .text("tr[data-user='ada'] .reset-password output[data-from]")
        .await;
    assert_ne!(reset, generated);
    Client::new(&farm.url)
        .login("ada", &reset, "check")
        .await
        .expect("the reset password works");

    // Remove her (after confirming).
    b.click("tr[data-user='ada'] .remove-user button").await;
    b.client.accept_alert().await.unwrap();
    b.wait_until("ada gone", || async {
        !b.exists("tr[data-user='ada']").await
    })
    .await;

    // The last admin cannot be removed; the page says why.
    b.click("tr[data-user='admin'] .remove-user button").await;
    b.client.accept_alert().await.unwrap();
    b.wait_text(
        "tr[data-user='admin'] .remove-user [data-error-for='']",
        "last admin",
    )
    .await;

    // The audit log lists the actions, newest first, and filters by action in the URL.
    b.goto("/admin").await;
    let log = b.text("#audit").await;
    for action in ["user.add", "user.role", "user.passwd", "user.remove"] {
        assert!(log.contains(action), "{action} in the log:\n{log}");
    }
    let first = log.find("user.remove").unwrap();
    assert!(
        first < log.find("user.add").unwrap(),
        "newest first:\n{log}"
    );
    b.screenshot("admin").await;
    b.click(".admin-filter select[name=action] option[value='user.role']")
        .await;
    b.click(".admin-filter button").await;
    b.wait_until("the filtered log", || async {
        b.path().await.contains("action=user.role")
    })
    .await;
    let filtered = b.text("#audit").await;
    assert!(filtered.contains("user.role"), "{filtered}");
    assert!(!filtered.contains("user.add"), "{filtered}");

    // Malformed addresses get an error page, not the page.
    b.goto("/admin?before=soon").await;
    b.wait_text("main h1", "400").await;
    b.goto("/admin?before=0").await;
    b.wait_text("main", "before is an audit entry id").await;
    b.goto("/admin?part=nothing").await;
    b.wait_text("main h1", "404").await;
    b.close().await;
}

#[tokio::test]
async fn a_submitter_gets_no_admin_page_and_no_admin_entry() {
    let farm = Farm::start(|_| {}).await;
    let password = farm.add_user("sam", Role::Submitter).await;
    let b = Browser::start(&farm.url).await;
    b.login("sam", &password).await;
    b.wait_for("nav a[href='/farm']").await;
    assert!(!b.exists("nav a[href='/admin']").await);
    b.goto("/admin").await;
    b.wait_text("main h1", "403").await;
    assert!(b.text("main").await.contains("only an admin"));
    assert!(!b.exists("#add-user").await && !b.exists("#audit").await);
    b.goto("/admin?part=audit").await;
    b.wait_text("main h1", "403").await;
    b.close().await;

    // The admin has the entry.
    let b = Browser::start(&farm.url).await;
    b.login("admin", farm.admin_password.as_deref().unwrap())
        .await;
    b.wait_for("nav a[href='/admin']").await;
    b.close().await;
}
