//! API tokens with roles. Reads are open; each mutating endpoint requires a minimum role.
//!
//! Tokens come from the server configuration (`--token NAME:ROLE:SECRET`, or the
//! `SIGHTLINE_API_TOKENS` variable with comma-separated entries). A request presents its secret
//! as `Authorization: Bearer <secret>`. With no token configured, the server runs in open mode
//! (every caller is admin) and says so in its startup log; bind it to localhost in that case.
//!
//! Handlers state their role with an extractor: [`Viewer`], [`Operator`], [`Engineer`],
//! [`Admin`] (a fixed minimum), or [`Credentials`] when the role depends on the request.

use std::collections::HashMap;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// Roles, ordered by power: each role may do what the lower ones may.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only.
    Viewer,
    /// Send inspections, make corrections.
    Operator,
    /// Register models, record metrics, set aliases, deploy.
    Engineer,
    /// Everything, including projects and forced promotions.
    Admin,
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "engineer" => Ok(Role::Engineer),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}`; expected viewer, operator, engineer or admin"
            )),
        }
    }
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Token name (`anonymous` in open mode).
    pub name: String,
    /// Role.
    pub role: Role,
}

/// The configured tokens (secrets kept only as SHA-256).
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Caller>,
}

impl Tokens {
    /// Parse `NAME:ROLE:SECRET` entries.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut t = Tokens::default();
        for e in entries {
            let mut parts = e.splitn(3, ':');
            let (Some(name), Some(role), Some(secret)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!(
                    "API token entry must be NAME:ROLE:SECRET, got `{}`",
                    e.split(':').next().unwrap_or("")
                ));
            };
            if name.is_empty() || secret.len() < 8 {
                return Err(format!(
                    "API token `{name}`: name must be non-empty and the secret at least 8 characters"
                ));
            }
            let role = role.parse()?;
            t.by_hash.insert(
                Sha256::digest(secret.as_bytes()).into(),
                Caller {
                    name: name.to_string(),
                    role,
                },
            );
        }
        Ok(t)
    }

    /// Whether no token is configured (open mode).
    pub fn is_open(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Identify the caller of a request and check it has at least `needed`: what the role
    /// extractors ([`Viewer`], [`Operator`], [`Engineer`], [`Admin`]) do.
    pub fn authorize(&self, headers: &HeaderMap, needed: Role) -> Result<Caller, ApiError> {
        self.credentials(headers).require(needed)
    }

    /// What the request's `Authorization` header presents, looked up but not yet judged
    /// ([`Credentials::require`] decides once the needed role is known).
    pub fn credentials(&self, headers: &HeaderMap) -> Credentials {
        if self.is_open() {
            return Credentials(Presented::Open);
        }
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(secret) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return Credentials(Presented::Nothing);
        };
        let hash: [u8; 32] = Sha256::digest(secret.trim().as_bytes()).into();
        Credentials(match self.by_hash.get(&hash) {
            Some(caller) => Presented::Known(caller.clone()),
            None => Presented::Unknown,
        })
    }
}

/// A request's credentials, for an endpoint whose needed role depends on the request itself
/// (e.g. `force` needs admin): extract them, read the request, then [`Credentials::require`]
/// the role. Endpoints with one fixed role take [`Viewer`], [`Operator`], [`Engineer`] or
/// [`Admin`] instead.
#[derive(Debug, Clone)]
pub struct Credentials(Presented);

#[derive(Debug, Clone)]
enum Presented {
    /// No token is configured: everyone is admin.
    Open,
    /// No `Authorization: Bearer` header.
    Nothing,
    /// A bearer token that matches no configured one.
    Unknown,
    /// A configured token.
    Known(Caller),
}

impl Credentials {
    /// The caller, if it has at least `needed`: 401 without a token (except for viewer reads,
    /// which are open to anonymous callers) or with an unknown one, 403 with too low a role.
    pub fn require(self, needed: Role) -> Result<Caller, ApiError> {
        match self.0 {
            Presented::Open => Ok(Caller {
                name: "anonymous".into(),
                role: Role::Admin,
            }),
            Presented::Nothing if needed == Role::Viewer => Ok(Caller {
                name: "anonymous".into(),
                role: Role::Viewer,
            }),
            Presented::Nothing => Err(ApiError::Unauthorized(format!(
                "this endpoint needs an API token with role {} or higher (Authorization: Bearer <token>)",
                role_name(needed)
            ))),
            Presented::Unknown => Err(ApiError::Unauthorized("unknown API token".into())),
            Presented::Known(caller) if caller.role < needed => Err(ApiError::Forbidden(format!(
                "token `{}` has role {}, this endpoint needs {} or higher",
                caller.name,
                role_name(caller.role),
                role_name(needed)
            ))),
            Presented::Known(caller) => Ok(caller),
        }
    }
}

impl FromRequestParts<AppState> for Credentials {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(state.tokens().credentials(&parts.headers))
    }
}

/// Role extractors: a handler argument `Engineer(caller): Engineer` answers 401/403 (the
/// [`ApiError`] of [`Credentials::require`]) before the handler runs unless the caller has at
/// least that role. Put it after the path and query extractors and before the body, where a
/// hand-written check used to run.
macro_rules! role_extractor {
    ($($(#[$doc:meta])* $name:ident => $role:expr;)+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub Caller);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, Self::Rejection> {
                state.tokens().authorize(&parts.headers, $role).map($name)
            }
        }
    )+};
}

role_extractor! {
    /// A caller with at least [`Role::Viewer`] (anonymous callers are viewers).
    Viewer => Role::Viewer;
    /// A caller with at least [`Role::Operator`].
    Operator => Role::Operator;
    /// A caller with at least [`Role::Engineer`].
    Engineer => Role::Engineer;
    /// A caller with [`Role::Admin`].
    Admin => Role::Admin;
}

/// Lowercase name of a role.
pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Engineer => "engineer",
        Role::Admin => "admin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(secret: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {secret}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn roles_are_ordered_and_checked() {
        let t = Tokens::parse(&[
            "line1:operator:op-secret-1".into(),
            "eng:engineer:eng-secret".into(),
        ])
        .unwrap();
        assert!(t.authorize(&headers("op-secret-1"), Role::Operator).is_ok());
        assert!(matches!(
            t.authorize(&headers("op-secret-1"), Role::Engineer),
            Err(ApiError::Forbidden(_))
        ));
        assert_eq!(
            t.authorize(&headers("eng-secret"), Role::Operator)
                .unwrap()
                .name,
            "eng"
        );
        assert!(matches!(
            t.authorize(&headers("nope-nope"), Role::Viewer),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            t.authorize(&HeaderMap::new(), Role::Operator),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(t.authorize(&HeaderMap::new(), Role::Viewer).is_ok());
    }

    #[test]
    fn bad_entries_are_rejected_without_echoing_secrets() {
        let e = Tokens::parse(&["a:boss:secretsecret".into()]).unwrap_err();
        assert!(e.contains("unknown role"));
        let e = Tokens::parse(&["a:admin:short".into()]).unwrap_err();
        assert!(!e.contains("short"), "{e}");
        assert!(Tokens::parse(&[]).unwrap().is_open());
    }
}
