//! A scripted HTTP server for the client's tests: serves `/oauth/token` and any API path with
//! answers queued by the test (status, headers, body, delay), records every request, and
//! compresses with gzip when asked. Runs on its own thread with its own actix System, bound to
//! 127.0.0.1:0.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{middleware::Compress, web, App, HttpRequest, HttpResponse, HttpServer};

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Canned {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Canned {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn delayed(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

/// A request the stub received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

#[derive(Default)]
struct State {
    token: VecDeque<Canned>,
    api: VecDeque<Canned>,
    requests: Vec<Recorded>,
    tokens_issued: u32,
}

pub struct Stub {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn answer(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
) -> HttpResponse {
    let canned = {
        let mut s = state.lock().unwrap();
        s.requests.push(Recorded {
            method: req.method().to_string(),
            path: req.path().to_owned(),
            query: req.query_string().to_owned(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        if req.path() == "/oauth/token" {
            s.token.pop_front().unwrap_or_else(|| {
                s.tokens_issued += 1;
                Canned::json(
                    200,
                    format!(
                        r#"{{"access_token":"tok-{}","token_type":"bearer","expires_in":86400}}"#,
                        s.tokens_issued
                    ),
                )
            })
        } else {
            s.api.pop_front().unwrap_or_else(|| Canned::json(200, "{}"))
        }
    };
    if !canned.delay.is_zero() {
        actix_rt::time::sleep(canned.delay).await;
    }
    let mut resp =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(canned.status).unwrap());
    resp.content_type("application/json");
    for (k, v) in &canned.headers {
        resp.insert_header((k.as_str(), v.as_str()));
    }
    resp.body(canned.body)
}

impl Stub {
    pub fn start() -> Stub {
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let sys = actix_rt::System::new();
            sys.block_on(async move {
                let data = web::Data::new(shared);
                let server = HttpServer::new(move || {
                    App::new()
                        .wrap(Compress::default())
                        .app_data(data.clone())
                        .default_service(web::to(answer))
                })
                .workers(1)
                .bind(("127.0.0.1", 0))
                .unwrap();
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).unwrap();
                let _ = server.await;
            });
        });
        let (addr, handle) = rx.recv().unwrap();
        Stub {
            addr,
            state,
            handle,
            thread: Some(thread),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues answers for the next API requests (after these, `200 {}`).
    pub fn push_api(&self, c: Canned) {
        self.state.lock().unwrap().api.push_back(c);
    }

    /// Queues answers for the next token requests (after these, fresh tokens `tok-N`).
    pub fn push_token(&self, c: Canned) {
        self.state.lock().unwrap().token.push_back(c);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn api_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path != "/oauth/token")
            .collect()
    }

    pub fn token_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path == "/oauth/token")
            .count()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stop from a helper thread: the stop future needs a runtime.
        let _ = std::thread::spawn(move || {
            actix_rt::System::new().block_on(handle.stop(false));
        })
        .join();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
