//! The sync console in headless Chromium (Debian's `chromium` and `chromium-driver`, which
//! `.ci/run` installs), against `attio-sync run` and the three simulators: sign in; see the
//! tenant turn red, without a reload, when HubSpot's calls fail, with the error group named; replay
//! its dead letter once HubSpot answers and see it succeed; resolve a conflict with a typed value
//! and see Attio and HubSpot hold it; approve a held delete; find a record's history by e-mail. A
//! wrong or missing token sees only the sign-in page, and an action without the form token is
//! refused. Each page's screenshot goes to `target/console-screens/`.

use std::path::PathBuf;
use std::time::Duration;

use domain::field::FieldValue;
use fantoccini::{Client, ClientBuilder, Locator};
use ports::crm::{ExternalCrm, ExternalUpsert};
use serde_json::{Value, json};

use crate::attio_to_crms::prop;
use crate::control::{ADMIN_TOKEN, Deployment, Rig, rig};
use crate::eventually;

const WAIT: Duration = Duration::from_secs(60);

/// Chromium driven through ChromeDriver, and where its screenshots go.
struct Browser {
    client: Client,
    screens: PathBuf,
    _driver: tokio::process::Child,
}

impl Browser {
    async fn start() -> Browser {
        for tool in ["chromium", "chromedriver"] {
            let found = std::process::Command::new("which")
                .arg(tool)
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                found,
                "{tool} is not installed: apt-get install chromium chromium-driver (.ci/run does)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        eventually("ChromeDriver listens", Duration::from_secs(20), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium", "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1100",
            ]}),
        );
        // ChromeDriver speaks plain HTTP on the loopback: no TLS connector is needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        let exe = std::env::current_exe().unwrap();
        let target = exe.ancestors().nth(3).unwrap().to_path_buf();
        let screens = target.join("console-screens");
        std::fs::create_dir_all(&screens).unwrap();
        Browser {
            client,
            screens,
            _driver: driver,
        }
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.screens.join(format!("{name}.png")), png).unwrap();
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// The element's text; found again when a refresh replaced it between finding and reading.
    async fn text(&self, css: &str) -> String {
        let mut last = None;
        for _ in 0..20 {
            match self.client.find(Locator::Css(css)).await {
                Ok(el) => match el.text().await {
                    Ok(t) => return t,
                    Err(e) => last = Some(e),
                },
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css}: {last:?}")
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.client.find(Locator::Css(css)).await.unwrap();
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }
}

async fn admin_list(rig: &Rig, path: &str) -> Vec<Value> {
    let (status, body) = rig.admin(reqwest::Method::GET, path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body.as_array().cloned().unwrap_or_default()
}

async fn hubspot_faults(rig: &Rig, faults: Value) {
    let r = rig
        .http
        .put(format!("{}/_sim/faults", rig.hubspot_url))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

async fn hubspot_lastname(rig: &Rig, id: &str) -> Option<FieldValue> {
    let r = rig
        .hubspot
        .get_by(
            "contacts",
            &prop("attio_record_id"),
            id,
            &[prop("lastname")],
        )
        .await
        .ok()?;
    r.properties.get(&prop("lastname")).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_health_and_acts_on_dead_letters_conflicts_and_deletes() {
    let rig = rig(Deployment::Embedded, 2).await;
    let api = rig.api_url.clone();
    let attio = rig.attio();
    let ada = rig
        .create_person("ada@example.com", "Ada", "Lovelace", "Analyst")
        .await;
    eventually("Ada reaches HubSpot", WAIT, || async {
        (rig.hubspot_title(&ada).await == Some(FieldValue::text("Analyst"))).then_some(())
    })
    .await;
    let b = Browser::start().await;

    // Without the token: nothing but the sign-in page.
    b.goto(&format!("{api}/console/tenants/acme")).await;
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/login")
    );
    assert!(!b.source().await.contains("ada@example.com"));
    b.type_into("#token", "not-the-admin-token-0123456789abcdef")
        .await;
    b.click("#sign-in").await;
    assert!(b.text("#login-error").await.contains("not the admin token"));
    b.shot("login").await;
    b.type_into("#token", ADMIN_TOKEN).await;
    b.click("#sign-in").await;
    // The redirect after signing in can take a moment on a busy machine.
    crate::eventually(
        "signed in, the console's front page",
        Duration::from_secs(15),
        || async {
            b.client
                .current_url()
                .await
                .ok()
                .filter(|u| u.path().ends_with("/console"))
                .map(|_| ())
        },
    )
    .await;
    let state = "tr[data-tenant='acme'] .state";
    assert_eq!(b.text(state).await, "healthy");
    b.shot("tenants-healthy").await;

    // HubSpot fails every call: Ada's change is dead-lettered, and the page, left open, turns
    // the tenant red with the error group named.
    hubspot_faults(&rig, json!({"error_rate": 1.0, "error_status": 503})).await;
    attio
        .call(
            reqwest::Method::PATCH,
            &format!("/v2/objects/people/records/{ada}"),
            Some(json!({"data": {"values": {"name": [{"first_name": "Ada", "last_name": "Byron", "full_name": "Ada Byron"}]}}})),
        )
        .await;
    let errors = eventually("the tenant turns red on the open page", WAIT, || async {
        let now = b.text(state).await;
        let errors = b.text("tr[data-tenant='acme'] .errors").await;
        (now == "needs a person" && errors.contains("HubSpot")).then_some(errors)
    })
    .await;
    b.shot("tenants-red").await;

    // HubSpot answers again: the dead letter is replayed from its group and succeeds.
    hubspot_faults(&rig, json!({})).await;
    b.goto(&format!("{api}/console/tenants/acme")).await;
    let group = b.text("#errors .group h3").await;
    assert!(
        errors.contains(group.split(':').next().unwrap()),
        "{group} / {errors}"
    );
    assert!(b.text("#errors").await.contains("Suggested fix"));
    b.shot("tenant-errors").await;
    b.click("#errors button.replay").await;
    assert!(
        b.text("#note")
            .await
            .contains("1 dead letter(s) queued again")
    );
    eventually("the replay reaches HubSpot", WAIT, || async {
        (hubspot_lastname(&rig, &ada).await == Some(FieldValue::text("Byron"))).then_some(())
    })
    .await;
    let (_, status) = rig
        .admin(reqwest::Method::GET, "/v1/admin/tenants/acme/status", None)
        .await;
    assert_eq!(status["dead_letters"], 0, "{status}");

    // A conflict, resolved with a typed value: Attio and HubSpot both hold it.
    attio
        .call(
            reqwest::Method::PATCH,
            &format!("/v2/objects/people/records/{ada}"),
            Some(json!({"data": {"values": {"job_title": "Mathematician"}}})),
        )
        .await;
    let edit = ExternalUpsert {
        key: ada.clone(),
        properties: [(prop("jobtitle"), FieldValue::text("Countess"))].into(),
    };
    rig.hubspot
        .upsert_batch("contacts", &prop("attio_record_id"), &[edit])
        .await
        .unwrap();
    let conflict = eventually("the conflict is queued", WAIT, || async {
        let open = admin_list(&rig, "/v1/admin/tenants/acme/conflicts").await;
        open.first()
            .and_then(|c| c["id"].as_str().map(str::to_owned))
    })
    .await;
    b.goto(&format!("{api}/console/tenants/acme")).await;
    let row = format!("tr[data-conflict='{conflict}']");
    assert!(b.text(&row).await.contains("Countess"));
    assert!(b.text(&row).await.contains("Mathematician"));
    b.shot("tenant-conflict").await;
    b.click(&format!("{row} input[name=ids]")).await;
    b.type_into("#conflicts input[name=value]", "Analyst of Engines")
        .await;
    b.click("#conflicts button[name=keep][value=value]").await;
    assert!(b.text("#note").await.contains("1 conflict(s) resolved"));
    eventually("Attio and HubSpot hold the typed value", WAIT, || async {
        let chosen = Some(FieldValue::text("Analyst of Engines"));
        let attio_has = rig.attio_title(&ada).await.as_deref() == Some("Analyst of Engines");
        (attio_has && rig.hubspot_title(&ada).await == chosen).then_some(())
    })
    .await;

    // Two people deleted at once: the breaker (two deletes) holds the rest; one is approved.
    let mut gone = Vec::new();
    for (email, last) in [("bob@example.com", "Bobson"), ("cy@example.com", "Cyson")] {
        let id = rig.create_person(email, "B", last, "Clerk").await;
        eventually("the person reaches HubSpot", WAIT, || async {
            (rig.hubspot_title(&id).await == Some(FieldValue::text("Clerk"))).then_some(())
        })
        .await;
        eventually("the person reaches Salesforce", WAIT, || async {
            rig.salesforce_title(&id).await.map(|_| ())
        })
        .await;
        gone.push(id);
    }
    for id in &gone {
        attio
            .call(
                reqwest::Method::DELETE,
                &format!("/v2/objects/people/records/{id}"),
                None,
            )
            .await;
    }
    let held = eventually("two deletes are held", WAIT, || async {
        let held = admin_list(&rig, "/v1/admin/tenants/acme/deletes").await;
        (held.len() == 2).then_some(held)
    })
    .await;
    let first = held[0]["id"].as_str().unwrap().to_owned();
    b.goto(&format!("{api}/console/tenants/acme")).await;
    b.shot("tenant-deletes").await;
    b.click(&format!("tr[data-delete='{first}'] button.approve"))
        .await;
    assert!(b.text("#note").await.contains("1 delete(s): approve"));
    let (system, record) = (
        held[0]["system"].as_str().unwrap().to_owned(),
        held[0]["record"].as_str().unwrap().to_owned(),
    );
    eventually("the approved delete is carried out", WAIT, || async {
        let left = admin_list(&rig, "/v1/admin/tenants/acme/deletes").await;
        let removed = match system.as_str() {
            "hubspot" => rig.hubspot_title(&record).await.is_none(),
            _ => rig.salesforce_title(&record).await.is_none(),
        };
        (left.len() == 1 && removed).then_some(())
    })
    .await;

    // A record's history, found by e-mail: its links in every system and its audit trail.
    b.goto(&format!("{api}/console/tenants/acme")).await;
    b.type_into("#record-q", "ada@example.com").await;
    b.click("#find").await;
    let found = b.text(&format!("section[data-record='{ada}']")).await;
    for shown in [
        "hubspot",
        "salesforce",
        "Analyst of Engines",
        "operator",
        "resolution:value",
    ] {
        assert!(found.contains(shown), "{shown}: {found}");
    }
    b.shot("record-history").await;

    // The form token: an action without it is refused; a session cookie is needed for anything.
    let cookie = b
        .client
        .get_named_cookie("attio_sync_console")
        .await
        .unwrap();
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |body: &'static str, cookie: String| {
        plain
            .post(format!("{api}/console/tenants/acme/delete-decisions"))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let session = format!("attio_sync_console={}", cookie.value());
    let refused = post("all=approve", session.clone()).await.unwrap();
    assert_eq!(refused.status(), 403, "no form token");
    let refused = post("all=approve&csrf=0123", session).await.unwrap();
    assert_eq!(refused.status(), 403, "another form token");
    assert_eq!(
        admin_list(&rig, "/v1/admin/tenants/acme/deletes")
            .await
            .len(),
        1,
        "nothing was decided"
    );
    for cookie in ["", "attio_sync_console=99999999999.00ff"] {
        let r = plain
            .get(format!("{api}/console/tenants/acme"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{cookie:?}");
        assert_eq!(r.headers()["location"], "/console/login");
        let r = post("all=reject", cookie.to_owned()).await.unwrap();
        assert_eq!(r.status(), 303, "an action without a session: {cookie:?}");
    }
    b.client.clone().close().await.unwrap();
}
