//! API keys and admin tokens: HS256 JWTs signed with one platform secret.
//!
//! Two kinds of token share the secret and are told apart by their audience:
//!
//! - **tenant API keys** ([`TenantClaims`], audience [`TENANT_AUDIENCE`]) carry the tenant, the key
//!   id (`jti`, checked against the store's revocation list by the caller) and the scopes. They have
//!   no `exp` and stay valid until revoked; a key that does carry an `exp` is refused once it passed.
//! - **admin tokens** ([`AdminClaims`], audience [`ADMIN_AUDIENCE`]) carry the `admin` role and
//!   always expire.
//!
//! Verification pins the algorithm to HS256 (HS512, RS256 and `alg: none` are refused), requires
//! `iss`, `aud`, `sub` and a non-empty `jti`, and checks issuer and audience, so a token of one kind
//! is never accepted as the other. Refusals come back as [`AuthError::Rejected`] with a short reason
//! meant for logs; neither secrets nor whole tokens are ever logged here.
//!
//! [`resolve_secret`] decides which secret to sign with (environment, or a file generated once in
//! the SQLite data folder); [`Keys::new`] refuses short secrets and checks that jsonwebtoken's
//! crypto backend works before the server starts.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The `iss` of every token this platform issues and the only issuer it accepts.
pub const ISSUER: &str = "functionary";
/// The `aud` of tenant API keys.
pub const TENANT_AUDIENCE: &str = "functionary-tenant";
/// The `aud` of admin tokens; different from [`TENANT_AUDIENCE`] so neither kind passes as the other.
pub const ADMIN_AUDIENCE: &str = "functionary-admin";
/// The shortest signing secret accepted, in bytes (HS256 wants at least its 256-bit output size).
pub const MIN_SECRET_BYTES: usize = 32;
/// Name of the file, inside the SQLite data folder, that keeps the generated secret (hex).
pub const SECRET_FILE_NAME: &str = "jwt-secret";

/// The one signing algorithm issued and accepted.
const ALGORITHM: Algorithm = Algorithm::HS256;
/// Clock skew tolerated on `exp`, in seconds.
const LEEWAY_SECS: u64 = 30;
/// Tokens longer than this are refused before any decoding (ours are a few hundred bytes).
const MAX_TOKEN_BYTES: usize = 4096;
/// The `role` claim of admin tokens.
const ADMIN_ROLE: &str = "admin";
/// The `sub` claim of admin tokens issued by [`Keys::issue_admin_token`].
const ADMIN_SUBJECT: &str = "admin";

/// What a tenant API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum Scope {
    /// Write calls: identify, events, batch.
    Ingest,
    /// The GET and DELETE calls.
    Read,
}

impl Scope {
    /// Every scope, in canonical order (the order used inside issued keys).
    pub const ALL: [Scope; 2] = [Scope::Ingest, Scope::Read];

    /// The scope's name as it appears in tokens and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
        }
    }

    /// Parses a scope name (`ingest` or `read`, exact case); `None` for anything else.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The claims of a tenant API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// Always [`TENANT_AUDIENCE`].
    pub aud: String,
    /// The tenant's slug.
    pub sub: String,
    /// The tenant's id in the store.
    pub tid: String,
    /// The key id; revocation is looked up by it.
    pub jti: String,
    /// What the key may do; never empty.
    pub scopes: Vec<Scope>,
    /// Issued at, in seconds since the Unix epoch.
    pub iat: i64,
    /// Expiry in seconds since the Unix epoch; keys issued here have none (valid until revoked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

/// The claims of an admin token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// Always [`ADMIN_AUDIENCE`].
    pub aud: String,
    /// Who the token was issued to (`admin` for tokens from [`Keys::issue_admin_token`]).
    pub sub: String,
    /// A fresh UUIDv7 per token.
    pub jti: String,
    /// Always `admin`.
    pub role: String,
    /// Issued at, in seconds since the Unix epoch.
    pub iat: i64,
    /// Expiry in seconds since the Unix epoch; required.
    pub exp: i64,
}

/// Everything that can go wrong with secrets, issuing and verifying tokens.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The signing secret is shorter than [`MIN_SECRET_BYTES`].
    #[error("jwt secret is {bytes} bytes long, at least {min} random bytes are required", min = MIN_SECRET_BYTES)]
    SecretTooShort {
        /// The length of the refused secret.
        bytes: usize,
    },
    /// PostgreSQL deployment without `FUNCTIONARY_JWT_SECRET`: there is no local folder to keep a
    /// generated secret in, and every node must share the same one.
    #[error(
        "the FUNCTIONARY_JWT_SECRET environment variable is required with postgresql (at least {min} random bytes)",
        min = MIN_SECRET_BYTES
    )]
    SecretMissing,
    /// The secret file in the SQLite data folder could not be read, written or understood; the
    /// message names the path.
    #[error("jwt secret file: {0}")]
    SecretFile(String),
    /// jsonwebtoken has no usable crypto backend (no `rust_crypto` / `aws_lc_rs` feature, or both),
    /// or signing and verifying a probe token failed.
    #[error("jwt crypto backend unusable: {0}")]
    CryptoProvider(String),
    /// A token was refused; the reason is short, lower case and safe to log (e.g. `expired`,
    /// `wrong audience`, `bad signature`, `missing claim jti`, `algorithm not allowed`).
    #[error("token rejected: {0}")]
    Rejected(String),
    /// A token could not be issued (bad input or a signing failure).
    #[error("cannot issue token: {0}")]
    Encode(String),
}

/// Signing and verification keys for both token kinds, built from one secret.
///
/// Cheap to clone (shared behind an `Arc`). Its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct Keys {
    inner: Arc<KeysInner>,
}

struct KeysInner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    tenant: Validation,
    admin: Validation,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("algorithm", &ALGORITHM)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl Keys {
    /// Builds the keys from `secret`.
    ///
    /// Refuses secrets shorter than [`MIN_SECRET_BYTES`]. Then proves the crypto backend works by
    /// issuing and verifying a probe key: jsonwebtoken 12 compiles without a backend (or with two,
    /// through feature unification) and would panic at the first real request, so that case is
    /// turned into [`AuthError::CryptoProvider`] at start-up instead.
    pub fn new(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthError::SecretTooShort {
                bytes: secret.len(),
            });
        }
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err(AuthError::CryptoProvider(
                "jsonwebtoken has no crypto provider: enable exactly one of its rust_crypto and aws_lc_rs features"
                    .to_owned(),
            ));
        }
        let encoding = EncodingKey::from_secret(secret)
            .map_err(|e| AuthError::CryptoProvider(format!("encoding key: {e}")))?;
        let decoding = DecodingKey::from_secret(secret)
            .map_err(|e| AuthError::CryptoProvider(format!("decoding key: {e}")))?;
        let keys = Keys {
            inner: Arc::new(KeysInner {
                encoding,
                decoding,
                tenant: validation(TENANT_AUDIENCE, &["iss", "aud", "sub"]),
                admin: validation(ADMIN_AUDIENCE, &["iss", "aud", "sub", "exp"]),
            }),
        };
        keys.self_test()?;
        Ok(keys)
    }

    /// Signs and verifies one key of each kind, so a broken backend shows at start-up.
    fn self_test(&self) -> Result<(), AuthError> {
        let probe = |e: AuthError| AuthError::CryptoProvider(format!("self-test failed: {e}"));
        let key = self
            .issue_tenant_key("probe", "probe", "probe", &Scope::ALL)
            .map_err(probe)?;
        let claims = self.verify_tenant(&key).map_err(probe)?;
        if claims.jti != "probe" || claims.scopes != Scope::ALL {
            return Err(AuthError::CryptoProvider(
                "self-test failed: claims changed in a round trip".to_owned(),
            ));
        }
        let token = self
            .issue_admin_token(Duration::from_secs(60))
            .map_err(probe)?;
        self.verify_admin(&token).map_err(probe)?;
        Ok(())
    }

    /// Issues a tenant API key: `sub` = the tenant slug, `tid` = the tenant's store id, `jti` = the
    /// key id. The key has no `exp`; it lives until revoked.
    ///
    /// Scopes are de-duplicated and put in canonical order; an empty scope list, or an empty id or
    /// slug, is refused with [`AuthError::Encode`] (such a key could never verify).
    pub fn issue_tenant_key(
        &self,
        tenant_id: &str,
        tenant_slug: &str,
        key_id: &str,
        scopes: &[Scope],
    ) -> Result<String, AuthError> {
        for (name, value) in [
            ("tenant id", tenant_id),
            ("tenant slug", tenant_slug),
            ("key id", key_id),
        ] {
            if value.is_empty() {
                return Err(AuthError::Encode(format!("{name} is empty")));
            }
        }
        let scopes: Vec<Scope> = Scope::ALL
            .into_iter()
            .filter(|scope| scopes.contains(scope))
            .collect();
        if scopes.is_empty() {
            return Err(AuthError::Encode(
                "an api key needs at least one scope".to_owned(),
            ));
        }
        let claims = TenantClaims {
            iss: ISSUER.to_owned(),
            aud: TENANT_AUDIENCE.to_owned(),
            sub: tenant_slug.to_owned(),
            tid: tenant_id.to_owned(),
            jti: key_id.to_owned(),
            scopes,
            iat: now(),
            exp: None,
        };
        self.sign(&claims)
    }

    /// Issues an admin token valid for `ttl` (whole seconds, at least one): `sub` and `role` are
    /// `admin`, `jti` a new UUIDv7.
    pub fn issue_admin_token(&self, ttl: Duration) -> Result<String, AuthError> {
        let ttl_secs = i64::try_from(ttl.as_secs())
            .map_err(|_| AuthError::Encode("admin token ttl is too large".to_owned()))?;
        if ttl_secs == 0 {
            return Err(AuthError::Encode(
                "admin token ttl must be at least one second".to_owned(),
            ));
        }
        let iat = now();
        let exp = iat
            .checked_add(ttl_secs)
            .ok_or_else(|| AuthError::Encode("admin token ttl is too large".to_owned()))?;
        let claims = AdminClaims {
            iss: ISSUER.to_owned(),
            aud: ADMIN_AUDIENCE.to_owned(),
            sub: ADMIN_SUBJECT.to_owned(),
            jti: uuid::Uuid::now_v7().to_string(),
            role: ADMIN_ROLE.to_owned(),
            iat,
            exp,
        };
        self.sign(&claims)
    }

    /// Verifies a tenant API key: signature (HS256 only), issuer, audience [`TENANT_AUDIENCE`],
    /// `exp` if present, and the presence of `sub`, `tid`, `jti`, `iat` and at least one known scope.
    ///
    /// Revocation is not checked here: the caller looks `jti` up in the store.
    pub fn verify_tenant(&self, token: &str) -> Result<TenantClaims, AuthError> {
        let raw = self.decode(token, &self.inner.tenant)?;
        let scopes = raw
            .scopes
            .ok_or_else(|| rejected("missing claim scopes"))?
            .iter()
            .map(|name| Scope::parse(name).ok_or_else(|| rejected("unknown scope")))
            .collect::<Result<Vec<_>, _>>()?;
        if scopes.is_empty() {
            return Err(rejected("no scopes"));
        }
        Ok(TenantClaims {
            iss: required("iss", raw.iss)?,
            aud: required("aud", raw.aud)?,
            sub: required("sub", raw.sub)?,
            tid: required("tid", raw.tid)?,
            jti: required("jti", raw.jti)?,
            scopes,
            iat: raw.iat.ok_or_else(|| rejected("missing claim iat"))?,
            exp: raw.exp,
        })
    }

    /// Verifies an admin token: signature (HS256 only), issuer, audience [`ADMIN_AUDIENCE`], an
    /// `exp` that has not passed (30 s leeway), a non-empty `sub` and `jti`, and role `admin`.
    pub fn verify_admin(&self, token: &str) -> Result<AdminClaims, AuthError> {
        let raw = self.decode(token, &self.inner.admin)?;
        let role = required("role", raw.role)?;
        if role != ADMIN_ROLE {
            return Err(rejected("wrong role"));
        }
        Ok(AdminClaims {
            iss: required("iss", raw.iss)?,
            aud: required("aud", raw.aud)?,
            sub: required("sub", raw.sub)?,
            jti: required("jti", raw.jti)?,
            role,
            iat: raw.iat.ok_or_else(|| rejected("missing claim iat"))?,
            exp: raw.exp.ok_or_else(|| rejected("missing claim exp"))?,
        })
    }

    fn sign<T: Serialize>(&self, claims: &T) -> Result<String, AuthError> {
        jsonwebtoken::encode(&Header::new(ALGORITHM), claims, &self.inner.encoding)
            .map_err(|e| AuthError::Encode(e.to_string()))
    }

    /// Checks size, signature and the registered claims; the caller checks the private ones.
    fn decode(&self, token: &str, validation: &Validation) -> Result<RawClaims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(rejected("too long"));
        }
        jsonwebtoken::decode::<RawClaims>(token, &self.inner.decoding, validation)
            .map(|data| data.claims)
            .map_err(|e| AuthError::Rejected(rejection_reason(e.kind())))
    }
}

/// Every claim either token kind may carry, all optional, so that a missing one is reported by
/// name instead of as a generic parse failure.
#[derive(Deserialize)]
struct RawClaims {
    iss: Option<String>,
    aud: Option<String>,
    sub: Option<String>,
    tid: Option<String>,
    jti: Option<String>,
    scopes: Option<Vec<String>>,
    role: Option<String>,
    iat: Option<i64>,
    exp: Option<i64>,
}

/// The validation shared by both kinds, differing in audience and required claims.
///
/// `validate_exp` stays on: jsonwebtoken 12 then refuses a past `exp` but lets a token without
/// `exp` through unless `"exp"` is in the required claims — exactly what tenant keys need.
fn validation(audience: &str, required_claims: &[&str]) -> Validation {
    let mut validation = Validation::new(ALGORITHM);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(required_claims);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.leeway = LEEWAY_SECS;
    validation
}

/// A short reason for logs, never including the token or the secret.
fn rejection_reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::ExpiredSignature => "expired".to_owned(),
        ErrorKind::ImmatureSignature => "not yet valid".to_owned(),
        ErrorKind::InvalidIssuer => "wrong issuer".to_owned(),
        ErrorKind::InvalidAudience => "wrong audience".to_owned(),
        ErrorKind::InvalidSubject => "wrong subject".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("missing claim {claim}"),
        ErrorKind::InvalidClaimFormat(claim) => format!("malformed claim {claim}"),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => "algorithm not allowed".to_owned(),
        // An unknown `alg` such as `none` fails here: the header does not parse.
        ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::InvalidToken => "malformed".to_owned(),
        _ => "invalid token".to_owned(),
    }
}

fn rejected(reason: &str) -> AuthError {
    AuthError::Rejected(reason.to_owned())
}

/// A claim that must be present and non-empty.
fn required(name: &str, value: Option<String>) -> Result<String, AuthError> {
    match value {
        None => Err(AuthError::Rejected(format!("missing claim {name}"))),
        Some(value) if value.is_empty() => Err(AuthError::Rejected(format!("empty claim {name}"))),
        Some(value) => Ok(value),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The secret to sign with.
///
/// - `env_secret` (`FUNCTIONARY_JWT_SECRET`), when set and non-empty: its UTF-8 bytes, used as is
///   (no trimming); refused when shorter than [`MIN_SECRET_BYTES`].
/// - otherwise, with `sqlite_data_dir` (SQLite deployments): the hex secret kept in
///   `<dir>/jwt-secret`. On first use it is generated from [`MIN_SECRET_BYTES`] random bytes and
///   written with mode 0600 through a temporary file that is linked into place, so a crash never
///   leaves a half-written file and two processes starting at once end up with the same secret.
///   The directory is created if missing.
/// - otherwise (PostgreSQL): [`AuthError::SecretMissing`].
pub fn resolve_secret(
    env_secret: Option<&str>,
    sqlite_data_dir: Option<&Path>,
) -> Result<Vec<u8>, AuthError> {
    if let Some(secret) = env_secret.filter(|secret| !secret.is_empty()) {
        let bytes = secret.as_bytes().to_vec();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(AuthError::SecretTooShort { bytes: bytes.len() });
        }
        return Ok(bytes);
    }
    match sqlite_data_dir {
        Some(dir) => load_or_create_secret_file(dir),
        None => Err(AuthError::SecretMissing),
    }
}

fn load_or_create_secret_file(dir: &Path) -> Result<Vec<u8>, AuthError> {
    let path = dir.join(SECRET_FILE_NAME);
    if let Some(secret) = read_secret_file(&path)? {
        return Ok(secret);
    }

    fs::create_dir_all(dir).map_err(|e| file_error("cannot create directory", dir, &e))?;
    let mut secret = vec![0_u8; MIN_SECRET_BYTES];
    let mut suffix = [0_u8; 8];
    getrandom::fill(&mut secret)
        .and_then(|()| getrandom::fill(&mut suffix))
        .map_err(|e| {
            AuthError::SecretFile(format!(
                "cannot generate a secret for {}: {e}",
                path.display()
            ))
        })?;

    let tmp = dir.join(format!(".{SECRET_FILE_NAME}.{}.tmp", hex::encode(suffix)));
    let contents = format!("{}\n", hex::encode(&secret));
    if let Err(e) = write_new_private_file(&tmp, contents.as_bytes()) {
        remove_temp_file(&tmp);
        return Err(file_error("cannot write", &tmp, &e));
    }

    // A hard link never replaces an existing file: if another process created the secret in the
    // meantime, its secret wins and is read back below.
    match fs::hard_link(&tmp, &path) {
        Ok(()) => remove_temp_file(&tmp),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            remove_temp_file(&tmp);
            return read_secret_file(&path)?.ok_or_else(|| {
                AuthError::SecretFile(format!("{} vanished while starting", path.display()))
            });
        }
        // Some file systems have no hard links; a rename is still atomic, only not exclusive.
        Err(_) => {
            if let Err(e) = fs::rename(&tmp, &path) {
                remove_temp_file(&tmp);
                return Err(file_error("cannot create", &path, &e));
            }
        }
    }
    sync_dir(dir);
    tracing::info!(path = %path.display(), "generated a new jwt secret");
    Ok(secret)
}

/// Reads an existing secret file; `None` when there is none.
fn read_secret_file(path: &Path) -> Result<Option<Vec<u8>>, AuthError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_error("cannot read", path, &e)),
    };
    warn_if_shared(path);
    let text = text.trim();
    if text.is_empty() {
        return Err(AuthError::SecretFile(format!(
            "{} is empty",
            path.display()
        )));
    }
    let secret = hex::decode(text).map_err(|_| {
        AuthError::SecretFile(format!("{} does not hold a hex secret", path.display()))
    })?;
    if secret.len() < MIN_SECRET_BYTES {
        return Err(AuthError::SecretFile(format!(
            "{} holds a {}-byte secret, at least {MIN_SECRET_BYTES} bytes are required",
            path.display(),
            secret.len()
        )));
    }
    Ok(Some(secret))
}

fn write_new_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

fn remove_temp_file(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove temporary jwt secret file");
    }
}

/// Makes the new directory entry durable, so a power loss does not bring back "no secret" and
/// silently invalidate every key issued since.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(e) = fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(path = %dir.display(), error = %e, "cannot sync the jwt secret directory");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the jwt secret file is readable by other users; restrict it to mode 600"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn file_error(what: &str, path: &Path, error: &io::Error) -> AuthError {
    AuthError::SecretFile(format!("{what} {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OTHER_SECRET: &[u8] = b"fedcba9876543210fedcba9876543210";
    /// base64url of `{"alg":"none","typ":"JWT"}`.
    const NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
    /// base64url of `{"alg":"RS256","typ":"JWT"}`.
    const RS256_HEADER: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9";

    fn keys() -> Keys {
        Keys::new(SECRET).expect("test secret is valid")
    }

    /// Signs arbitrary claims with jsonwebtoken directly, bypassing `Keys`.
    fn sign_raw(secret: &[u8], alg: Algorithm, claims: &Value) -> String {
        let key = EncodingKey::from_secret(secret).expect("non-empty secret");
        jsonwebtoken::encode(&Header::new(alg), claims, &key).expect("signing works")
    }

    fn tenant_claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": TENANT_AUDIENCE,
            "sub": "acme",
            "tid": "t-1",
            "jti": "k-1",
            "scopes": ["ingest", "read"],
            "iat": now(),
        })
    }

    fn admin_claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": ADMIN_AUDIENCE,
            "sub": "admin",
            "jti": "a-1",
            "role": "admin",
            "iat": now(),
            "exp": now() + 600,
        })
    }

    fn without(mut claims: Value, name: &str) -> Value {
        claims
            .as_object_mut()
            .expect("claims are an object")
            .remove(name);
        claims
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims
            .as_object_mut()
            .expect("claims are an object")
            .insert(name.to_owned(), value);
        claims
    }

    fn reason<T: fmt::Debug>(result: Result<T, AuthError>) -> String {
        match result {
            Err(AuthError::Rejected(reason)) => reason,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    fn segments(token: &str) -> [String; 3] {
        let parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts.try_into().expect("a jwt has three segments")
    }

    #[test]
    fn tenant_key_round_trip() {
        let keys = keys();
        let token = keys
            .issue_tenant_key(
                "t-1",
                "acme",
                "k-1",
                &[Scope::Read, Scope::Ingest, Scope::Read],
            )
            .unwrap();
        let claims = keys.verify_tenant(&token).unwrap();
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.aud, TENANT_AUDIENCE);
        assert_eq!(claims.sub, "acme");
        assert_eq!(claims.tid, "t-1");
        assert_eq!(claims.jti, "k-1");
        assert_eq!(claims.scopes, vec![Scope::Ingest, Scope::Read]);
        assert_eq!(claims.exp, None);
        assert!((claims.iat - now()).abs() < 5);
        assert!(!token.contains("\"exp\""));
    }

    #[test]
    fn admin_token_round_trip() {
        let keys = keys();
        let token = keys.issue_admin_token(Duration::from_secs(3600)).unwrap();
        let claims = keys.verify_admin(&token).unwrap();
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.aud, ADMIN_AUDIENCE);
        assert_eq!(claims.sub, "admin");
        assert_eq!(claims.role, "admin");
        assert_eq!(claims.exp - claims.iat, 3600);
        let jti = uuid::Uuid::parse_str(&claims.jti).unwrap();
        assert_eq!(jti.get_version_num(), 7);
        let second = keys.verify_admin(&keys.issue_admin_token(Duration::from_secs(60)).unwrap());
        assert_ne!(second.unwrap().jti, claims.jti);
    }

    #[test]
    fn tenant_key_refused_as_admin_token() {
        let keys = keys();
        let token = keys
            .issue_tenant_key("t-1", "acme", "k-1", &Scope::ALL)
            .unwrap();
        // Admin tokens must expire, so a real key already fails on the missing `exp`...
        assert_eq!(reason(keys.verify_admin(&token)), "missing claim exp");
        // ...and one that does carry an `exp` still fails on its audience.
        let with_exp = sign_raw(
            SECRET,
            Algorithm::HS256,
            &with(tenant_claims(), "exp", json!(now() + 600)),
        );
        assert_eq!(reason(keys.verify_admin(&with_exp)), "wrong audience");
    }

    #[test]
    fn admin_token_refused_as_tenant_key() {
        let keys = keys();
        let token = keys.issue_admin_token(Duration::from_secs(600)).unwrap();
        assert_eq!(reason(keys.verify_tenant(&token)), "wrong audience");
    }

    #[test]
    fn forged_signature_refused() {
        let forged = sign_raw(OTHER_SECRET, Algorithm::HS256, &tenant_claims());
        assert_eq!(reason(keys().verify_tenant(&forged)), "bad signature");
        let forged_admin = sign_raw(OTHER_SECRET, Algorithm::HS256, &admin_claims());
        assert_eq!(reason(keys().verify_admin(&forged_admin)), "bad signature");
    }

    #[test]
    fn tampered_payload_refused() {
        let keys = keys();
        let genuine = keys
            .issue_tenant_key("t-1", "acme", "k-1", &[Scope::Read])
            .unwrap();
        let other = keys
            .issue_tenant_key("t-2", "evil", "k-2", &Scope::ALL)
            .unwrap();
        let [header, _, signature] = segments(&genuine);
        let [_, other_payload, _] = segments(&other);
        let tampered = format!("{header}.{other_payload}.{signature}");
        assert_eq!(reason(keys.verify_tenant(&tampered)), "bad signature");
    }

    #[test]
    fn hs512_with_same_secret_refused() {
        let keys = keys();
        let tenant = sign_raw(SECRET, Algorithm::HS512, &tenant_claims());
        assert_eq!(reason(keys.verify_tenant(&tenant)), "algorithm not allowed");
        let admin = sign_raw(SECRET, Algorithm::HS512, &admin_claims());
        assert_eq!(reason(keys.verify_admin(&admin)), "algorithm not allowed");
    }

    #[test]
    fn rs256_header_with_hmac_signature_refused() {
        // The classic key-confusion forgery: an RS256 header, "signed" with the shared secret.
        let keys = keys();
        let [_, payload, _] = segments(
            &keys
                .issue_tenant_key("t-1", "acme", "k-1", &Scope::ALL)
                .unwrap(),
        );
        let message = format!("{RS256_HEADER}.{payload}");
        let key = EncodingKey::from_secret(SECRET).unwrap();
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
        let token = format!("{message}.{signature}");
        assert_eq!(reason(keys.verify_tenant(&token)), "algorithm not allowed");
    }

    #[test]
    fn alg_none_refused() {
        let keys = keys();
        let [_, payload, _] = segments(
            &keys
                .issue_tenant_key("t-1", "acme", "k-1", &Scope::ALL)
                .unwrap(),
        );
        let token = format!("{NONE_HEADER}.{payload}.");
        assert_eq!(reason(keys.verify_tenant(&token)), "malformed");
        let [_, admin_payload, _] =
            segments(&keys.issue_admin_token(Duration::from_secs(60)).unwrap());
        let admin = format!("{NONE_HEADER}.{admin_payload}.");
        assert!(keys.verify_admin(&admin).is_err());
    }

    #[test]
    fn tenant_key_with_future_exp_accepted() {
        let token = sign_raw(
            SECRET,
            Algorithm::HS256,
            &with(tenant_claims(), "exp", json!(now() + 600)),
        );
        let claims = keys().verify_tenant(&token).unwrap();
        assert!(claims.exp.is_some());
    }

    #[test]
    fn expired_tenant_key_refused() {
        let token = sign_raw(
            SECRET,
            Algorithm::HS256,
            &with(tenant_claims(), "exp", json!(now() - 3600)),
        );
        assert_eq!(reason(keys().verify_tenant(&token)), "expired");
    }

    #[test]
    fn tenant_key_with_negative_exp_refused() {
        let token = sign_raw(
            SECRET,
            Algorithm::HS256,
            &with(tenant_claims(), "exp", json!(-1)),
        );
        // jsonwebtoken reads `exp` as u64: a negative one is malformed, not "never expires".
        assert_eq!(reason(keys().verify_tenant(&token)), "malformed claim exp");
    }

    #[test]
    fn expired_admin_token_refused() {
        let token = sign_raw(
            SECRET,
            Algorithm::HS256,
            &with(admin_claims(), "exp", json!(now() - 3600)),
        );
        assert_eq!(reason(keys().verify_admin(&token)), "expired");
    }

    #[test]
    fn admin_token_without_exp_refused() {
        let token = sign_raw(SECRET, Algorithm::HS256, &without(admin_claims(), "exp"));
        assert_eq!(reason(keys().verify_admin(&token)), "missing claim exp");
    }

    #[test]
    fn admin_token_with_other_role_refused() {
        let token = sign_raw(
            SECRET,
            Algorithm::HS256,
            &with(admin_claims(), "role", json!("viewer")),
        );
        assert_eq!(reason(keys().verify_admin(&token)), "wrong role");
    }

    #[test]
    fn missing_or_empty_jti_refused() {
        let keys = keys();
        let tenant = sign_raw(SECRET, Algorithm::HS256, &without(tenant_claims(), "jti"));
        assert_eq!(reason(keys.verify_tenant(&tenant)), "missing claim jti");
        let admin = sign_raw(SECRET, Algorithm::HS256, &without(admin_claims(), "jti"));
        assert_eq!(reason(keys.verify_admin(&admin)), "missing claim jti");
        let empty = sign_raw(
            SECRET,
            Algorithm::HS256,
            &with(tenant_claims(), "jti", json!("")),
        );
        assert_eq!(reason(keys.verify_tenant(&empty)), "empty claim jti");
    }

    #[test]
    fn missing_sub_refused() {
        let keys = keys();
        let tenant = sign_raw(SECRET, Algorithm::HS256, &without(tenant_claims(), "sub"));
        assert_eq!(reason(keys.verify_tenant(&tenant)), "missing claim sub");
        let admin = sign_raw(SECRET, Algorithm::HS256, &without(admin_claims(), "sub"));
        assert_eq!(reason(keys.verify_admin(&admin)), "missing claim sub");
    }

    #[test]
    fn missing_iss_or_aud_refused() {
        let keys = keys();
        let no_iss = sign_raw(SECRET, Algorithm::HS256, &without(tenant_claims(), "iss"));
        assert_eq!(reason(keys.verify_tenant(&no_iss)), "missing claim iss");
        let no_aud = sign_raw(SECRET, Algorithm::HS256, &without(tenant_claims(), "aud"));
        assert_eq!(reason(keys.verify_tenant(&no_aud)), "missing claim aud");
    }

    #[test]
    fn wrong_issuer_refused() {
        let keys = keys();
        let tenant = sign_raw(
            SECRET,
            Algorithm::HS256,
            &with(tenant_claims(), "iss", json!("someone-else")),
        );
        assert_eq!(reason(keys.verify_tenant(&tenant)), "wrong issuer");
        let admin = sign_raw(
            SECRET,
            Algorithm::HS256,
            &with(admin_claims(), "iss", json!("someone-else")),
        );
        assert_eq!(reason(keys.verify_admin(&admin)), "wrong issuer");
    }

    #[test]
    fn empty_or_unknown_scopes_refused() {
        let keys = keys();
        let empty = sign_raw(
            SECRET,
            Algorithm::HS256,
            &with(tenant_claims(), "scopes", json!([])),
        );
        assert_eq!(reason(keys.verify_tenant(&empty)), "no scopes");
        let unknown = sign_raw(
            SECRET,
            Algorithm::HS256,
            &with(tenant_claims(), "scopes", json!(["admin"])),
        );
        assert_eq!(reason(keys.verify_tenant(&unknown)), "unknown scope");
        let missing = sign_raw(
            SECRET,
            Algorithm::HS256,
            &without(tenant_claims(), "scopes"),
        );
        assert_eq!(reason(keys.verify_tenant(&missing)), "missing claim scopes");
    }

    #[test]
    fn garbage_and_oversized_tokens_refused() {
        let keys = keys();
        assert_eq!(reason(keys.verify_tenant("")), "malformed");
        assert_eq!(reason(keys.verify_tenant("not.a.jwt")), "malformed");
        assert_eq!(
            reason(keys.verify_tenant(&"a".repeat(MAX_TOKEN_BYTES + 1))),
            "too long"
        );
    }

    #[test]
    fn issuing_refuses_unusable_input() {
        let keys = keys();
        assert!(matches!(
            keys.issue_tenant_key("t-1", "acme", "k-1", &[]),
            Err(AuthError::Encode(_))
        ));
        assert!(matches!(
            keys.issue_tenant_key("t-1", "acme", "", &Scope::ALL),
            Err(AuthError::Encode(_))
        ));
        assert!(matches!(
            keys.issue_admin_token(Duration::ZERO),
            Err(AuthError::Encode(_))
        ));
        assert!(matches!(
            keys.issue_admin_token(Duration::MAX),
            Err(AuthError::Encode(_))
        ));
    }

    #[test]
    fn short_secret_refused_and_32_bytes_accepted() {
        let err = Keys::new(&[7_u8; 31]).unwrap_err();
        assert!(
            matches!(err, AuthError::SecretTooShort { bytes: 31 }),
            "{err:?}"
        );
        assert!(Keys::new(&[7_u8; 32]).is_ok());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", keys());
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn scope_names_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            assert_eq!(serde_json::to_value(scope).unwrap(), json!(scope.as_str()));
        }
        assert_eq!(Scope::parse("Read"), None);
        assert_eq!(Scope::parse("write"), None);
    }

    #[test]
    fn resolve_secret_uses_env_value() {
        let dir = tempfile::tempdir().unwrap();
        let env = "x".repeat(40);
        let secret = resolve_secret(Some(&env), Some(dir.path())).unwrap();
        assert_eq!(secret, env.as_bytes());
        // The environment wins: no file is generated.
        assert!(!dir.path().join(SECRET_FILE_NAME).exists());
        assert_eq!(resolve_secret(Some(&env), None).unwrap(), env.as_bytes());
    }

    #[test]
    fn resolve_secret_refuses_short_env_value() {
        let err = resolve_secret(Some("too-short"), None).unwrap_err();
        assert!(
            matches!(err, AuthError::SecretTooShort { bytes: 9 }),
            "{err:?}"
        );
    }

    #[test]
    fn resolve_secret_generates_sqlite_file_once() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        let first = resolve_secret(None, Some(&dir)).unwrap();
        assert_eq!(first.len(), MIN_SECRET_BYTES);
        let path = dir.join(SECRET_FILE_NAME);
        let stored = fs::read_to_string(&path).unwrap();
        assert_eq!(stored.trim(), hex::encode(&first));
        // An empty env value counts as unset.
        let second = resolve_secret(Some(""), Some(&dir)).unwrap();
        assert_eq!(second, first);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(SECRET_FILE_NAME)]);
        assert!(Keys::new(&first).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn resolve_secret_refuses_broken_sqlite_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SECRET_FILE_NAME), "not hex\n").unwrap();
        let err = resolve_secret(None, Some(dir.path())).unwrap_err();
        assert!(
            matches!(&err, AuthError::SecretFile(msg) if msg.contains(SECRET_FILE_NAME)),
            "{err:?}"
        );
        fs::write(dir.path().join(SECRET_FILE_NAME), "abcd\n").unwrap();
        assert!(matches!(
            resolve_secret(None, Some(dir.path())),
            Err(AuthError::SecretFile(_))
        ));
    }

    #[test]
    fn resolve_secret_requires_env_with_postgres() {
        let err = resolve_secret(None, None).unwrap_err();
        assert!(matches!(err, AuthError::SecretMissing));
        assert!(err.to_string().contains("FUNCTIONARY_JWT_SECRET"));
        assert!(err.to_string().contains("postgresql"));
        assert!(matches!(
            resolve_secret(Some(""), None),
            Err(AuthError::SecretMissing)
        ));
    }
}
