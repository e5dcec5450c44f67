//! A real headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`)
//! for the web app's tests: chromedriver listens on a free port of 127.0.0.1 and dies with the
//! test (its own process group is killed on drop, taking Chromium with it).

// Each page's tests use their own share of these helpers.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};

/// How long waits for the page (an element, a text, a URL) last before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// One browser window on one coordinator.
pub struct Browser {
    pub client: Client,
    /// The coordinator's base URL, `http://127.0.0.1:PORT`.
    pub base: String,
    driver: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// A 1280 × 900 window.
    pub async fn start(base: &str) -> Browser {
        Self::start_sized(base, 1280, 900).await
    }

    /// A window of `width` × `height` CSS pixels.
    pub async fn start_sized(base: &str, width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver runs (installer/deps.sh test installs chromium-driver)");
        let mut caps = serde_json::Map::new();
        let mut options = serde_json::json!({
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-extensions",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--metrics-recording-only",
                    format!("--window-size={width},{height}"),
                ]
        });
        // Chromium's windows are never narrower than 500 px: a phone's width is emulated.
        if width < 500 {
            options["mobileEmulation"] = serde_json::json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0 }
            });
        }
        caps.insert("goog:chromeOptions".into(), options);
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        base: base.trim_end_matches('/').to_owned(),
                        driver,
                    };
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start: {last:?}");
    }

    /// Opens `path` (`/jobs/3`) on the coordinator.
    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// Logs in through the login page and waits until it has moved on.
    pub async fn login(&self, user: &str, password: &str) {
        self.goto("/login").await;
        self.fill("input[name=name]", user).await;
        self.fill("input[name=password]", password).await;
        self.click("form button.primary").await;
        self.wait_for("#live-status").await;
    }

    /// The element matching `css`, waiting for it to appear.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element `{css}` appeared: {e}"))
    }

    /// Waits until `check` is true of the page's current state (tested every 100 ms).
    pub async fn wait_until<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !check().await {
            if tokio::time::Instant::now() > deadline {
                let url = self.client.current_url().await.map(|u| u.to_string());
                let text = self.text("body").await;
                panic!("timed out waiting for {what}; at {url:?}, the page says:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the element `css` exists and its text contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) {
        self.wait_until(&format!("`{needle}` in `{css}`"), || async {
            self.try_text(css).await.is_some_and(|t| t.contains(needle))
        })
        .await;
    }

    /// The visible text of the first element matching `css`, or `None` when there is none.
    pub async fn try_text(&self, css: &str) -> Option<String> {
        let el = self.client.find(Locator::Css(css)).await.ok()?;
        el.text().await.ok()
    }

    /// The visible text of the first element matching `css` (empty when there is none).
    pub async fn text(&self, css: &str) -> String {
        self.try_text(css).await.unwrap_or_default()
    }

    /// Whether an element matches `css` now.
    pub async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_default()
            .is_empty()
    }

    /// How many elements match `css` now.
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|v| v.len())
            .unwrap_or(0)
    }

    /// Replaces the value of the input `css` with `value`.
    pub async fn fill(&self, css: &str, value: &str) {
        let el = self.wait_for(css).await;
        el.clear().await.unwrap();
        el.send_keys(value).await.unwrap();
    }

    /// Clicks the element `css`. A live region may replace the element between finding and
    /// clicking it; then the fresh one is clicked.
    pub async fn click(&self, css: &str) {
        for _ in 0..20 {
            match self.wait_for(css).await.click().await {
                Ok(()) => return,
                Err(e) if e.to_string().contains("stale element") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("click `{css}`: {e}"),
            }
        }
        panic!("click `{css}`: the element kept being replaced");
    }

    /// The value of attribute `attr` of the element `css`.
    pub async fn attr(&self, css: &str, attr: &str) -> Option<String> {
        let el = self.client.find(Locator::Css(css)).await.ok()?;
        el.attr(attr).await.ok().flatten()
    }

    /// Marks the window, so [`Browser::assert_not_reloaded`] can tell that a later change
    /// arrived without a reload.
    pub async fn mark_window(&self) {
        self.client
            .execute("window.__notReloaded = true; return null;", vec![])
            .await
            .unwrap();
    }

    /// Fails when the page was loaded again since [`Browser::mark_window`].
    pub async fn assert_not_reloaded(&self) {
        let marked = self
            .client
            .execute("return window.__notReloaded === true;", vec![])
            .await
            .unwrap();
        assert_eq!(marked, serde_json::json!(true), "the page was reloaded");
    }

    /// The path and query of the page now (`/jobs/3`).
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Saves a screenshot of the window as `NAME.png` among the CI artifacts
    /// (`$CARGO_TARGET_DIR/screenshots/`, else `target/screenshots/`); returns the file.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Ends the WebDriver session (closing Chromium) and chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.kill();
    }

    fn kill(&mut self) {
        // chromedriver leads its own process group; Chromium's processes are in it too.
        let pgid = self.driver.id() as i32;
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where screenshots go: beside the build, so CI keeps them with its artifacts.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("screenshots")
}
