//! `--post`: the evaluation as JSON to a backend's `POST /models/metrics`, through the binary's
//! HTTP client (reqwest, no default features: the body is serialised here).

use anyhow::{Context, bail};

/// How long the backend may take to answer.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `host:port` of an `http://host[:port]/path` URL (port 80 by default), for messages.
fn address(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("--post {url}: only http:// URLs are supported"))?;
    let host = rest.split_once('/').map_or(rest, |(h, _)| h);
    Ok(if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    })
}

/// POSTs `body` as JSON to an `http://` URL with an optional bearer token; fails unless the
/// answer is 2xx. Returns the status code and the response body.
pub async fn post_json(
    url: &str,
    body: &serde_json::Value,
    token: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let addr = address(url)?;
    let payload = serde_json::to_vec(body)?;
    // Straight to the backend, as before reqwest (no proxy from the environment).
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .no_proxy()
        .build()
        .context("cannot build the HTTP client")?;
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(payload);
    if let Some(t) = token {
        req = req.bearer_auth(t.trim());
    }
    let resp = req.send().await.map_err(|e| {
        let what = if e.is_connect() {
            format!("cannot connect to {addr}")
        } else {
            format!("reading the response of {url}")
        };
        anyhow::Error::new(e).context(what)
    })?;
    let status = resp.status().as_u16();
    let text = resp
        .text()
        .await
        .with_context(|| format!("reading the response of {url}"))?;
    if !(200..300).contains(&status) {
        bail!("POST {url} answered {status}: {}", text.trim());
    }
    Ok((status, text))
}

/// POSTs the evaluation; returns what `--json` reports under `posted`: the URL, the status and
/// the response (JSON when it is, else its text).
pub async fn post_metrics(
    url: &str,
    body: &serde_json::Value,
    token: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let (status, resp) = post_json(url, body, token).await?;
    let response =
        serde_json::from_str::<serde_json::Value>(&resp).unwrap_or(serde_json::Value::String(resp));
    Ok(serde_json::json!({"url": url, "status": status, "response": response}))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_port_80_and_need_http() {
        assert_eq!(address("http://h/models/metrics").unwrap(), "h:80");
        assert_eq!(address("http://127.0.0.1:9/x").unwrap(), "127.0.0.1:9");
        assert_eq!(address("http://h:8080").unwrap(), "h:8080");
        let e = address("https://h/x").unwrap_err().to_string();
        assert_eq!(e, "--post https://h/x: only http:// URLs are supported");
    }
}
