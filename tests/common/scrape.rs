//! Helpers for the service tests: a blocking HTTP GET (awc on a throwaway actix System, so it
//! works from plain `#[test]`s that also use blocking diesel) and a Prometheus text parser
//! (the `prometheus-parse` crate) with lookups by name and labels.
#![allow(dead_code)]

use std::collections::BTreeMap;

/// GET `url`; (status, body).
pub fn get(url: &str) -> (u16, String) {
    let url = url.to_string();
    actix_rt::System::new().block_on(get_async(url))
}

/// GET `url` from inside an actix System (the engine's actors keep running meanwhile).
pub async fn get_async(url: String) -> (u16, String) {
    {
        let client = awc::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .finish();
        let mut resp = client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status().as_u16();
        let body = resp
            .body()
            .limit(64 * 1024 * 1024)
            .await
            .unwrap_or_else(|e| panic!("GET {url} body: {e}"));
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// GET `url` and parse the JSON body.
pub fn get_json(url: &str) -> (u16, serde_json::Value) {
    let (status, body) = get(url);
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {body}"));
    (status, v)
}

/// A parsed `/metrics` scrape.
pub struct Scrape(pub prometheus_parse::Scrape);

impl Scrape {
    /// Parse Prometheus text; panics (fails the test) when it is not valid exposition format.
    pub fn parse(text: &str) -> Scrape {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        Scrape(prometheus_parse::Scrape::parse(lines).expect("/metrics is valid Prometheus text"))
    }

    fn value_of(v: &prometheus_parse::Value) -> f64 {
        match v {
            prometheus_parse::Value::Counter(x)
            | prometheus_parse::Value::Gauge(x)
            | prometheus_parse::Value::Untyped(x) => *x,
            other => panic!("not a simple sample: {other:?}"),
        }
    }

    /// Sum of the samples of `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| Self::value_of(&s.value))
            .sum()
    }

    /// Does a sample named `name` exist?
    pub fn has(&self, name: &str) -> bool {
        self.0.samples.iter().any(|s| s.metric == name)
    }

    /// Values of `name` keyed by the value of `label`.
    pub fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.0.samples.iter().filter(|s| s.metric == name) {
            let key = s.labels.get(label).unwrap_or("").to_string();
            *out.entry(key).or_insert(0.0) += Self::value_of(&s.value);
        }
        out
    }
}
