//! A real headless browser for the console tests: Debian's Chromium, driven over the Chrome
//! DevTools Protocol (a WebSocket), with no Node.js and nothing downloaded. The DevTools port
//! is the one Chromium writes to `DevToolsActivePort` in its profile folder, never read from
//! its output.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

use crate::PATIENCE;

/// The Chromium to use: `CARAVAN_CHROMIUM`, else `/usr/bin/chromium` if present.
pub fn chromium() -> Option<PathBuf> {
    std::env::var_os("CARAVAN_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/usr/bin/chromium")))
        .filter(|p| p.exists())
}

/// A headless Chromium with one page, killed on drop.
pub struct Browser {
    child: Child,
    ws: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait for the `DevToolsActivePort` file Chromium writes in `profile` once its DevTools
/// server listens (the profile is new, so no earlier file is there): the port on its first
/// line, the browser's WebSocket path on its second.
async fn devtools_url(profile: &Path, child: &mut Child) -> String {
    let file = profile.join("DevToolsActivePort");
    let start = Instant::now();
    loop {
        // Chromium writes the file in place: taken only once its second line is a whole
        // browser path (a GUID of 36 characters).
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next())
                && let Ok(port) = port.trim().parse::<u16>()
                && path
                    .trim()
                    .strip_prefix("/devtools/browser/")
                    .is_some_and(|guid| guid.len() == 36)
            {
                return format!("ws://127.0.0.1:{port}{}", path.trim());
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "chromium exited ({status}) before it wrote {}",
                file.display()
            );
        }
        assert!(
            start.elapsed() < PATIENCE,
            "chromium wrote no {}",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Browser {
    pub async fn launch(binary: &PathBuf) -> Self {
        let profile = tempfile::tempdir().expect("profile dir");
        // The flags the workplace's notes give for a closed network, plus no sandbox as root.
        let mut child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "about:blank",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let url = devtools_url(profile.path(), &mut child).await;
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect to DevTools");
        let mut browser = Self {
            child,
            ws,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = browser
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let target_id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = browser
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        browser
    }

    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        match self.try_call(session, method, params).await {
            Ok(result) => result,
            Err(error) => panic!("{method}: {error}"),
        }
    }

    /// A DevTools call: its result, or the error DevTools answered with.
    async fn try_call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(message.to_string()))
            .await
            .expect("send to DevTools");
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("DevTools answers")
                .expect("open")
                .expect("frame");
            if let Message::Text(text) = frame {
                let value: Value = serde_json::from_str(&text).expect("JSON from DevTools");
                if value["id"] == id {
                    return match value["error"].is_null() {
                        true => Ok(value["result"].clone()),
                        false => Err(value["error"].clone()),
                    };
                }
            }
        }
    }

    /// Evaluate JavaScript in the page; returns its value.
    pub async fn eval(&mut self, script: &str) -> Value {
        let session = self.session.clone();
        let result = self
            .call(
                Some(&session),
                "Runtime.evaluate",
                json!({"expression": script, "returnByValue": true}),
            )
            .await;
        result["result"]["value"].clone()
    }

    pub async fn goto(&mut self, url: &str) {
        let session = self.session.clone();
        self.call(Some(&session), "Page.navigate", json!({"url": url}))
            .await;
        self.wait_for(
            "the page to load",
            &format!("location.href === {url:?} && document.readyState === 'complete'"),
        )
        .await;
    }

    /// Evaluate JavaScript in a page that may be navigating (a form just submitted, a link
    /// followed): `None` while the old page's context is gone and the new one not yet there.
    async fn eval_during_navigation(&mut self, script: &str) -> Option<Value> {
        let session = self.session.clone();
        let params = json!({"expression": script, "returnByValue": true});
        match self
            .try_call(Some(&session), "Runtime.evaluate", params)
            .await
        {
            Ok(result) => Some(result["result"]["value"].clone()),
            Err(error) if navigating(&error) => None,
            Err(error) => panic!("Runtime.evaluate: {error}"),
        }
    }

    /// Wait until `condition` (JavaScript) is true in the page.
    pub async fn wait_for(&mut self, what: &str, condition: &str) {
        let start = Instant::now();
        while self.eval_during_navigation(condition).await != Some(Value::Bool(true)) {
            assert!(
                start.elapsed() < PATIENCE,
                "the browser never showed {what}; page: {}",
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page's visible text.
    pub async fn text(&mut self) -> String {
        self.eval("document.body ? document.body.innerText : ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Lay the page out in a window of `width` by `height` CSS pixels (and take screenshots
    /// of that size).
    pub async fn viewport(&mut self, width: u32, height: u32) {
        let session = self.session.clone();
        let metrics =
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false});
        self.call(
            Some(&session),
            "Emulation.setDeviceMetricsOverride",
            metrics,
        )
        .await;
    }

    /// Lay the page out for `media` (`print`, `screen`; empty: the default).
    pub async fn emulate_media(&mut self, media: &str) {
        let session = self.session.clone();
        self.call(
            Some(&session),
            "Emulation.setEmulatedMedia",
            json!({"media": media}),
        )
        .await;
    }

    /// A PNG screenshot of the page.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        use base64::Engine;
        let session = self.session.clone();
        let shot = self
            .call(
                Some(&session),
                "Page.captureScreenshot",
                json!({"format": "png"}),
            )
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .unwrap_or_default()
    }
}

/// Whether a DevTools error says only that the page navigated under the call (its execution
/// context destroyed or not yet created), which a wait outlives.
fn navigating(error: &Value) -> bool {
    let message = error["message"].as_str().unwrap_or_default();
    [
        "Inspected target navigated or closed",
        "Execution context was destroyed",
        "Cannot find context with specified id",
        "Cannot find default execution context",
    ]
    .iter()
    .any(|m| message.contains(m))
}
