//! Who may call the API, and each tenant's own limits: the `--tenants` file (TOML, API.md
//! "Tenants and request security"), `--auth-token`s, and reloading on `SIGHUP`.
//!
//! ```toml
//! [tenants.acme]
//! token_sha256 = ["<hex SHA-256 of the token>"]   # one or more: rotation without downtime
//! notify_allow = ["hooks.acme.example", ".acme.example", "203.0.113.0/24"]
//! locations = ["local", "url"]        # a subset of --locations
//! image_subdir = "acme"               # local paths resolve inside IMAGE_DIR/acme
//! rate_limit = "50/s"                 # submissions; burst = 2 x the rate (n/s, n/m or n/h)
//! max_queued = 1000                   # this tenant's queue share
//! request_secret = ["whsec_..."]      # every POST of this tenant must be signed
//! ```

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use imgchkr_core::engine::Bucket;
use imgchkr_egress::{AllowRule, DestinationPolicy};
use imgchkr_notify::Secret;
use serde::Deserialize;

use crate::token::{TokenDigest, digest};

/// Why a tenants file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    /// The file cannot be read.
    #[error("cannot read the tenants file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("invalid tenants file {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why, naming the tenant and field.
        reason: String,
    },
}

/// One tenant's settings.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Tenant {
    /// Its name: the namespace of its jobs.
    pub name: String,
    /// Its notification (and `url` asset) destinations, on top of the global policy;
    /// `None`: the global policy alone.
    pub notify_allow: Option<DestinationPolicy>,
    /// The locations it may use (a subset of `--locations`); `None`: all of them.
    pub locations: Option<Vec<&'static str>>,
    /// Where its `local` paths resolve, under the image directory.
    pub image_subdir: Option<PathBuf>,
    /// Its submission rate.
    pub rate_limit: Option<Bucket>,
    /// Its share of the queue; `None`: the default share.
    pub max_queued: Option<u64>,
    /// The secrets its POSTs must be signed with; empty: unsigned requests are accepted.
    pub request_secrets: Vec<Secret>,
}

/// Every tenant, and the tokens that name them.
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    by_name: HashMap<String, Arc<Tenant>>,
    tokens: Vec<(TokenDigest, Arc<Tenant>)>,
}

/// The anonymous tenant: no tenant configured, `/assets` open.
static ANONYMOUS: std::sync::LazyLock<Arc<Tenant>> =
    std::sync::LazyLock::new(|| Arc::new(Tenant::default()));

impl Tenants {
    /// Whether callers must authenticate.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// How many tenants are configured (0 when `/assets` is open).
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// The configured tenants' names, in no order (the dashboard's search looks a job id up
    /// under each).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Whether no tenant is configured.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The tenant `name`, if configured (the anonymous one when none is).
    pub fn get(&self, name: &str) -> Option<Arc<Tenant>> {
        if !self.enabled() && name.is_empty() {
            return Some(Arc::clone(&ANONYMOUS));
        }
        self.by_name.get(name).cloned()
    }

    /// The tenant whose token has `presented` as SHA-256 digest. Every digest is compared in
    /// constant time, whichever matches.
    pub fn by_token(&self, presented: &TokenDigest) -> Option<Arc<Tenant>> {
        use subtle::ConstantTimeEq;
        let mut found = None;
        for (token, tenant) in &self.tokens {
            if bool::from(token.ct_eq(presented)) {
                found = Some(Arc::clone(tenant));
            }
        }
        found
    }

    /// The tenants of a tenants file's text (`path` names it in errors), plus the
    /// `--auth-token` pairs, checked against `locations` (those the server offers).
    pub fn parse(
        text: &str,
        path: &Path,
        auth_tokens: &[(String, String)],
        locations: &[&'static str],
    ) -> Result<Tenants, TenantsError> {
        let invalid = |reason: String| TenantsError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let file: File = toml::from_str(text).map_err(|e| invalid(e.message().to_owned()))?;
        let mut tenants = Tenants::default();
        for (name, entry) in file.tenants {
            let tenant = entry
                .build(&name, locations)
                .map_err(|why| invalid(format!("tenant {name:?}: {why}")))?;
            let tenant = Arc::new(tenant);
            for hex_digest in &entry.token_sha256 {
                let token = parse_digest(hex_digest)
                    .map_err(|why| invalid(format!("tenant {name:?}: token_sha256: {why}")))?;
                tenants.tokens.push((token, Arc::clone(&tenant)));
            }
            tenants.by_name.insert(name, tenant);
        }
        tenants.add_auth_tokens(auth_tokens).map_err(invalid)?;
        Ok(tenants)
    }

    /// The tenants of `--auth-token TENANT:TOKEN` pairs alone.
    pub fn from_auth_tokens(auth_tokens: &[(String, String)]) -> Tenants {
        let mut tenants = Tenants::default();
        // Without a file no digest can repeat another tenant's but by a repeated token,
        // which the last pair wins, as before.
        let _ = tenants.add_auth_tokens(auth_tokens);
        tenants
    }

    fn add_auth_tokens(&mut self, auth_tokens: &[(String, String)]) -> Result<(), String> {
        for (name, token) in auth_tokens {
            let tenant = self
                .by_name
                .entry(name.clone())
                .or_insert_with(|| {
                    Arc::new(Tenant {
                        name: name.clone(),
                        ..Tenant::default()
                    })
                })
                .clone();
            self.tokens.push((digest(token), tenant));
        }
        let mut seen = HashMap::new();
        for (token, tenant) in &self.tokens {
            if let Some(other) = seen.insert(*token, &tenant.name)
                && *other != tenant.name
            {
                return Err(format!(
                    "tenants {other:?} and {:?} have the same token",
                    tenant.name
                ));
            }
        }
        Ok(())
    }
}

fn parse_digest(text: &str) -> Result<TokenDigest, String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("{text:?} is not hex: {e}"))?;
    TokenDigest::try_from(bytes.as_slice())
        .map_err(|_| format!("{text:?} is not a SHA-256 digest (64 hex characters)"))
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tenants: HashMap<String, Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    token_sha256: Vec<String>,
    notify_allow: Option<Vec<String>>,
    locations: Option<Vec<String>>,
    image_subdir: Option<String>,
    rate_limit: Option<String>,
    max_queued: Option<u64>,
    #[serde(default)]
    request_secret: Vec<String>,
}

impl Entry {
    fn build(&self, name: &str, offered: &[&'static str]) -> Result<Tenant, String> {
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err("a tenant name is 1 to 64 printable characters".into());
        }
        if self.token_sha256.is_empty() {
            return Err("token_sha256 lists no token".into());
        }
        let notify_allow = match &self.notify_allow {
            None => None,
            Some(rules) => {
                let rules = rules
                    .iter()
                    .map(|r| {
                        r.parse::<AllowRule>()
                            .map_err(|e| format!("notify_allow: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(DestinationPolicy::new(rules, false))
            }
        };
        let locations = match &self.locations {
            None => None,
            Some(names) => Some(
                names
                    .iter()
                    .map(|n| {
                        offered.iter().copied().find(|o| o == n).ok_or_else(|| {
                            format!(
                                "locations: {n:?} is not offered by this server (--locations: {})",
                                offered.join(", ")
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let image_subdir = match &self.image_subdir {
            None => None,
            Some(dir) => {
                let dir = PathBuf::from(dir);
                let inside = dir
                    .components()
                    .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
                if !inside || dir.as_os_str().is_empty() {
                    return Err(format!(
                        "image_subdir {dir:?} must be a relative path inside the image directory"
                    ));
                }
                Some(dir)
            }
        };
        let rate_limit = self
            .rate_limit
            .as_deref()
            .map(parse_rate)
            .transpose()
            .map_err(|why| format!("rate_limit: {why}"))?;
        let request_secrets = self
            .request_secret
            .iter()
            .map(|s| Secret::parse(s).map_err(|e| format!("request_secret: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Tenant {
            name: name.to_owned(),
            notify_allow,
            locations,
            image_subdir,
            rate_limit,
            max_queued: self.max_queued,
            request_secrets,
        })
    }
}

/// Parses `50/s`, `600/m`, `1000/h`: that many tokens per unit, a bucket of twice as many.
pub fn parse_rate(text: &str) -> Result<Bucket, String> {
    let (count, unit) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: expected <number>/s, /m or /h"))?;
    let count: f64 = count
        .trim()
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n > 0.0)
        .ok_or_else(|| format!("{text:?}: the count must be a positive number"))?;
    let per = match unit.trim() {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("{text:?}: unknown unit {other:?} (s, m or h)")),
    };
    let burst = (2.0 * count).ceil().clamp(1.0, f64::from(u32::MAX));
    Ok(Bucket {
        rate: count / per,
        burst: burst as u32,
    })
}

/// The tenants in force, replaced whole on a reload.
#[derive(Debug)]
pub struct TenantsHandle {
    current: RwLock<Arc<Tenants>>,
    file: Option<PathBuf>,
    auth_tokens: Vec<(String, String)>,
    locations: Vec<&'static str>,
}

impl TenantsHandle {
    /// Loads `file` (if any) and the `--auth-token` pairs.
    pub fn load(
        file: Option<&Path>,
        auth_tokens: &[(String, String)],
        locations: &[&'static str],
    ) -> Result<TenantsHandle, TenantsError> {
        let handle = TenantsHandle {
            current: RwLock::default(),
            file: file.map(Path::to_owned),
            auth_tokens: auth_tokens.to_vec(),
            locations: locations.to_vec(),
        };
        handle.reload()?;
        Ok(handle)
    }

    /// The tenants in force now.
    pub fn current(&self) -> Arc<Tenants> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads the file again; on an error the tenants in force stay.
    pub fn reload(&self) -> Result<(), TenantsError> {
        let tenants = match &self.file {
            None => Tenants::from_auth_tokens(&self.auth_tokens),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| TenantsError::Read {
                    path: path.clone(),
                    source,
                })?;
                Tenants::parse(&text, path, &self.auth_tokens, &self.locations)?
            }
        };
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(tenants);
        Ok(())
    }

    /// Whether a tenants file is in use (reloaded on `SIGHUP`).
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL_URL: &[&str] = &["local", "url"];

    fn parse(text: &str) -> Result<Tenants, TenantsError> {
        Tenants::parse(text, Path::new("t.toml"), &[], LOCAL_URL)
    }

    fn hex_of(token: &str) -> String {
        hex::encode(digest(token))
    }

    #[test]
    fn a_full_entry_parses() {
        let text = format!(
            r#"
            [tenants.acme]
            token_sha256 = ["{}", "{}"]
            notify_allow = ["hooks.acme.example", ".acme.example", "203.0.113.0/24"]
            locations = ["local"]
            image_subdir = "acme/images"
            rate_limit = "50/s"
            max_queued = 1000
            request_secret = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]

            [tenants.bob]
            token_sha256 = ["{}"]
            "#,
            hex_of("old"),
            hex_of("new"),
            hex_of("bob-token")
        );
        let tenants = parse(&text).unwrap();
        assert_eq!(tenants.len(), 2);
        let acme = tenants.by_token(&digest("new")).unwrap();
        assert_eq!(acme.name, "acme");
        assert_eq!(tenants.by_token(&digest("old")).unwrap().name, "acme");
        assert_eq!(acme.locations.as_deref(), Some(&["local"][..]));
        assert_eq!(acme.image_subdir.as_deref(), Some(Path::new("acme/images")));
        assert_eq!(
            acme.rate_limit,
            Some(Bucket {
                rate: 50.0,
                burst: 100
            })
        );
        assert_eq!(acme.max_queued, Some(1000));
        assert_eq!(acme.request_secrets.len(), 1);
        assert_eq!(acme.notify_allow.as_ref().unwrap().allow().len(), 3);
        let bob = tenants.get("bob").unwrap();
        assert!(bob.notify_allow.is_none() && bob.rate_limit.is_none());
        assert!(tenants.by_token(&digest("nope")).is_none());
    }

    #[test]
    fn mistakes_name_the_tenant_and_field() {
        let token = hex_of("t");
        for (text, want) in [
            (
                format!("[tenants.a]\ntoken_sha256 = [\"{token}\"]\nnope = 1"),
                "unknown field",
            ),
            (
                "[tenants.a]\ntoken_sha256 = [\"abcd\"]".to_owned(),
                "not a SHA-256",
            ),
            (
                "[tenants.a]\ntoken_sha256 = []".to_owned(),
                "lists no token",
            ),
            (
                format!("[tenants.a]\ntoken_sha256 = [\"{token}\"]\nlocations = [\"s3\"]"),
                "not offered",
            ),
            (
                format!("[tenants.a]\ntoken_sha256 = [\"{token}\"]\nimage_subdir = \"../x\""),
                "inside the image directory",
            ),
            (
                format!("[tenants.a]\ntoken_sha256 = [\"{token}\"]\nimage_subdir = \"/abs\""),
                "inside the image directory",
            ),
            (
                format!("[tenants.a]\ntoken_sha256 = [\"{token}\"]\nrate_limit = \"5/d\""),
                "unknown unit",
            ),
            (
                format!(
                    "[tenants.a]\ntoken_sha256 = [\"{token}\"]\nrequest_secret = [\"whsec_x\"]"
                ),
                "request_secret",
            ),
            (
                format!("[tenants.a]\ntoken_sha256 = [\"{token}\"]\nnotify_allow = [\"a b\"]"),
                "notify_allow",
            ),
            (
                format!(
                    "[tenants.a]\ntoken_sha256 = [\"{token}\"]\n[tenants.b]\ntoken_sha256 = [\"{token}\"]"
                ),
                "same token",
            ),
            ("not toml".to_owned(), "invalid tenants file"),
        ] {
            let error = parse(&text).unwrap_err().to_string();
            assert!(error.contains(want), "{text}: {error}");
        }
    }

    #[test]
    fn rates_take_three_units() {
        assert_eq!(
            parse_rate("50/s"),
            Ok(Bucket {
                rate: 50.0,
                burst: 100
            })
        );
        assert_eq!(
            parse_rate("120/m"),
            Ok(Bucket {
                rate: 2.0,
                burst: 240
            })
        );
        assert_eq!(
            parse_rate("0.5/s"),
            Ok(Bucket {
                rate: 0.5,
                burst: 1
            })
        );
        for bad in ["", "5", "0/s", "-1/s", "x/s", "5/y"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn auth_tokens_join_the_file_and_open_mode_has_one_anonymous_tenant() {
        let tenants = Tenants::parse(
            &format!("[tenants.a]\ntoken_sha256 = [\"{}\"]", hex_of("ta")),
            Path::new("t.toml"),
            &[("b".into(), "tb".into())],
            LOCAL_URL,
        )
        .unwrap();
        assert_eq!(tenants.by_token(&digest("tb")).unwrap().name, "b");
        assert_eq!(tenants.by_token(&digest("ta")).unwrap().name, "a");
        let open = Tenants::default();
        assert!(!open.enabled());
        assert_eq!(open.get("").unwrap().name, "");
        assert!(open.get("a").is_none());
    }
}
