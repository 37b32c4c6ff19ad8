//! The `Host` allow-list (`--http-host-allowlist`, `--metrics-host-allowlist`), as in Web3Signer.
//!
//! A request is served only when the host it names is in the list: compared case-insensitively, without
//! its port, IPv6 literals with or without their brackets. `*` (or `all`) serves every host; `none` serves
//! none. A request outside the list gets `403` JSON before anything else is read (its body included).
//!
//! The list guards against DNS rebinding: a web page whose host name an attacker points at the signer's
//! address makes the browser send requests to the signer, but they carry the attacker's host name.
//!
//! A request without a `Host` header (HTTP/1.0 allows that) names no host and is refused unless the list
//! is `*`, as Web3Signer does. A request in absolute form (`GET http://host/path`) is served only when the
//! host of its URI is in the list too, and so is every `Host` header it carries.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Which hosts a listener serves: `Host` header names without their port, lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAllowList {
    /// `*` or `all`: every host, and requests without a `Host` header.
    Any,
    /// Exactly these host names or addresses (IPv6 without brackets); empty is `none`.
    Hosts(Vec<String>),
}

impl HostAllowList {
    /// Whether a request naming `host` (a `Host` header value or URI authority, port allowed) is served.
    pub fn allows(&self, host: &str) -> bool {
        match self {
            HostAllowList::Any => true,
            HostAllowList::Hosts(hosts) => {
                let name = host_name(host);
                !name.is_empty() && hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
            }
        }
    }

    /// Whether a request with these headers and this URI is served (see the module documentation).
    pub fn allows_request(&self, uri: &Uri, headers: &HeaderMap) -> bool {
        if *self == HostAllowList::Any {
            return true;
        }
        let mut named = false;
        if let Some(authority) = uri.authority() {
            named = true;
            if !self.allows(authority.as_str()) {
                return false;
            }
        }
        for value in headers.get_all(header::HOST) {
            named = true;
            match value.to_str() {
                Ok(host) if self.allows(host) => {}
                _ => return false,
            }
        }
        named
    }
}

/// The host of a `Host` value or authority: without user info, port and IPv6 brackets.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or("", |(inside, _)| inside);
    }
    host.split_once(':').map_or(host, |(name, _)| name)
}

impl FromStr for HostAllowList {
    type Err = String;

    /// A comma-separated list of host names and addresses, `*`/`all`, or `none`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let entries: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() {
            return Err("the list is empty; give host names, `*` for every host, or `none`".into());
        }
        let lower: Vec<String> = entries.iter().map(|e| e.to_ascii_lowercase()).collect();
        let wildcard = lower.iter().any(|e| e == "*" || e == "all");
        let none = lower.iter().any(|e| e == "none");
        if (wildcard || none) && lower.len() > 1 {
            return Err("`*`, `all` and `none` cannot be combined with other entries".into());
        }
        if wildcard {
            return Ok(HostAllowList::Any);
        }
        if none {
            return Ok(HostAllowList::Hosts(Vec::new()));
        }
        let mut hosts = Vec::with_capacity(lower.len());
        for entry in lower {
            let bare = entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .unwrap_or(&entry);
            let valid = if bare.contains(':') {
                bare.parse::<Ipv6Addr>().is_ok()
            } else {
                bare.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            };
            if !valid {
                return Err(format!(
                    "`{entry}` is not a host name or address (entries name a host without a port; \
                     an IPv6 address may be in brackets)"
                ));
            }
            hosts.push(bare.to_owned());
        }
        Ok(HostAllowList::Hosts(hosts))
    }
}

impl fmt::Display for HostAllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostAllowList::Any => f.write_str("*"),
            HostAllowList::Hosts(hosts) if hosts.is_empty() => f.write_str("none"),
            HostAllowList::Hosts(hosts) => {
                let shown: Vec<String> = hosts
                    .iter()
                    .map(|h| {
                        if h.contains(':') {
                            format!("[{h}]")
                        } else {
                            h.clone()
                        }
                    })
                    .collect();
                f.write_str(&shown.join(","))
            }
        }
    }
}

impl serde::Serialize for HostAllowList {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `router` behind the allow-list `allowed`, whose flag is named in the refusal (`flag`).
pub fn restrict(router: Router, allowed: HostAllowList, flag: &'static str) -> Router {
    if allowed == HostAllowList::Any {
        return router;
    }
    let allowed = Arc::new(allowed);
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let allowed = allowed.clone();
            async move {
                if allowed.allows_request(request.uri(), request.headers()) {
                    next.run(request).await
                } else {
                    refusal(flag)
                }
            }
        },
    ))
}

/// `403` JSON: our `error` and Web3Signer's `message`.
fn refusal(flag: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({
            "error": format!("Host not authorized: the request's Host header is missing or not in {flag}"),
            "message": "Host not authorized.",
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> HostAllowList {
        s.parse().unwrap()
    }

    #[test]
    fn hosts_match_without_port_and_case() {
        let l = list("localhost, 127.0.0.1,[::1],Signer.Example");
        assert!(l.allows("localhost"));
        assert!(l.allows("LOCALHOST:9000"));
        assert!(l.allows("127.0.0.1:1"));
        assert!(l.allows("[::1]:9000"));
        assert!(l.allows("[::1]"));
        assert!(l.allows("signer.example"));
        assert!(!l.allows("evil.example"));
        assert!(!l.allows("127.0.0.2"));
        assert!(!l.allows(""));
        assert!(!l.allows(":9000"));
        assert!(!l.allows("[::2]:9000"));
        assert_eq!(l.to_string(), "localhost,127.0.0.1,[::1],signer.example");
        assert_eq!(list("::1"), list("[::1]"));
    }

    #[test]
    fn wildcards_and_bad_lists() {
        assert_eq!(list("*"), HostAllowList::Any);
        assert_eq!(list("ALL"), HostAllowList::Any);
        assert!(!list("none").allows("localhost"));
        for bad in [
            "",
            " , ",
            "*,localhost",
            "none,x",
            "localhost:9000",
            "a b",
            "[::1]:9000",
        ] {
            assert!(bad.parse::<HostAllowList>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_request_must_name_an_allowed_host() {
        let l = list("localhost");
        let uri: Uri = "/upcheck".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert!(!l.allows_request(&uri, &headers), "no Host");
        assert!(HostAllowList::Any.allows_request(&uri, &headers));
        headers.insert(header::HOST, "localhost:9000".parse().unwrap());
        assert!(l.allows_request(&uri, &headers));
        headers.append(header::HOST, "evil.example".parse().unwrap());
        assert!(!l.allows_request(&uri, &headers), "a second Host header");
        let absolute: Uri = "http://evil.example/upcheck".parse().unwrap();
        let mut one = HeaderMap::new();
        one.insert(header::HOST, "localhost".parse().unwrap());
        assert!(!l.allows_request(&absolute, &one), "absolute-form URI");
    }
}
