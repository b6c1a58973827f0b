//! Signed tokens (JWS compact JWTs) that open named stores until they expire.
//!
//! Three algorithms: `HS256` with a shared secret, `RS256` and `ES256` with public keys from a
//! configured JWKS. The token's `alg` picks the key family and nothing else does: an `HS256` token
//! is only ever checked against the secret, never against a public key's bytes, and an `RS256` or
//! `ES256` token only against a JWKS key of exactly that algorithm, so a token cannot choose how it
//! is verified (no `alg: none`, no algorithm confusion). Keys embedded in a token (`jwk`, `jku`,
//! `x5u`, `x5c`) are ignored.
//!
//! The signature is checked before any claim is looked at, so a reason such as "expired" is only
//! ever given for an authentic token. Claims:
//!
//! - `stores` (required): an array of storeIds; the token opens exactly these (exact string match).
//! - `exp` (required) and `nbf` (optional): NumericDates, with [`LEEWAY_SECS`] of clock skew allowed.
//! - `access` (optional): `"read"` limits the token to pulls; `"readwrite"` (or no claim) allows
//!   pushes too; any other value refuses the token, so a typo never grants more than meant.
//! - `aud`, `iss`: checked when the verifier has an audience / issuer. A token with an `aud` is
//!   refused by a verifier without one (RFC 7519 §4.1.3: a recipient not named must reject it).
//!
//! Pure: no Worker types, no clock (callers pass the time), no panics on any input.

use base64ct::{Base64UrlUnpadded, Encoding};
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use crate::access::Grant;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 30;

/// The latest expiry a socket is closed at (2160-02-05): later ones are never reached, and
/// the runtime's alarms refuse dates after 2189.
const LAST_EXPIRY_SECS: f64 = 6e9;

/// Longest token looked at. Real tokens are well under 2 KB; the bound keeps an attacker's
/// token from costing more than a small decode.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// Shortest `HS256` secret accepted: RFC 7518 §3.2 requires a key at least as long as the hash.
pub const MIN_SECRET_BYTES: usize = 32;

/// Smallest RSA modulus accepted, in bits; shorter keys are factorable in practice.
pub const MIN_RSA_BITS: usize = 2048;

/// The signature algorithms understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// HMAC with SHA-256, keyed with the configured secret.
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA on P-256 with SHA-256, signature as `r || s` (64 bytes).
    Es256,
}

impl Alg {
    /// The algorithm of a JOSE `alg` name; names are case-sensitive (RFC 7515 §4.1.1), and
    /// `none` and everything else not listed are `None`.
    pub fn from_name(name: &str) -> Option<Alg> {
        match name {
            "HS256" => Some(Alg::Hs256),
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }
}

/// Why a token was refused. The [`Display`](std::fmt::Display) text is short, fixed, and never
/// contains any part of the token, so it can be sent to the client and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Longer than [`MAX_TOKEN_BYTES`].
    TooLong,
    /// Not three base64url segments, or a header or claims segment that is not the expected JSON.
    Malformed,
    /// `alg` is `none` or an algorithm not supported.
    UnsupportedAlg,
    /// The header lists `crit` extensions, none of which are supported.
    UnsupportedCrit,
    /// A supported algorithm for which nothing is configured (e.g. `HS256` without a secret).
    AlgNotAccepted,
    /// No configured key has the token's `kid` and algorithm.
    UnknownKey,
    /// Several keys could verify the token and it names none (`kid`).
    KidRequired,
    /// The signature does not verify.
    BadSignature,
    /// No `exp` claim.
    MissingExp,
    /// `exp` has passed.
    Expired,
    /// `exp` lies further ahead than the configured longest lifetime (`JWT_MAX_LIFETIME`).
    LifetimeTooLong,
    /// `nbf` is still ahead.
    NotYetValid,
    /// `aud` does not name the configured audience, or is present when none is configured.
    WrongAudience,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// No `stores` claim.
    MissingStores,
    /// The store asked for is not in `stores`.
    WrongStore,
    /// `access` is neither `"read"` nor `"readwrite"`.
    BadAccess,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rejection::TooLong => "token too long",
            Rejection::Malformed => "malformed token",
            Rejection::UnsupportedAlg => "unsupported algorithm",
            Rejection::UnsupportedCrit => "unsupported critical header",
            Rejection::AlgNotAccepted => "algorithm not accepted by this server",
            Rejection::UnknownKey => "unknown signing key",
            Rejection::KidRequired => "token has no kid and several keys could match",
            Rejection::BadSignature => "bad signature",
            Rejection::MissingExp => "token has no exp",
            Rejection::Expired => "token expired",
            Rejection::LifetimeTooLong => "token lifetime too long",
            Rejection::NotYetValid => "token not valid yet",
            Rejection::WrongAudience => "wrong audience",
            Rejection::WrongIssuer => "wrong issuer",
            Rejection::MissingStores => "token names no stores",
            Rejection::WrongStore => "token not valid for this store",
            Rejection::BadAccess => "bad access claim",
        })
    }
}

/// A key configuration that cannot be used. Messages are fixed text that never quotes the
/// configured value, since that may be a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// The `HS256` secret is shorter than [`MIN_SECRET_BYTES`].
    SecretTooShort,
    /// The JWKS text is not a JSON object with a `keys` array of objects.
    JwksNotJson,
    /// A JWK carries private or symmetric key material (`d`, `p`, `k`, …).
    PrivateMaterial,
    /// An RSA or P-256 key meant for signatures whose numbers do not make a valid public key.
    InvalidKey,
    /// An RSA modulus shorter than [`MIN_RSA_BITS`].
    WeakRsaKey,
    /// Two usable keys share a `kid` and algorithm, so a token could not pick one.
    DuplicateKid,
    /// No key in the set is an `RS256` or `ES256` signature key.
    NoUsableKeys,
}

impl KeyError {
    /// What a valid configuration looks like, for the operator.
    pub fn expected(self) -> &'static str {
        match self {
            KeyError::SecretTooShort => "a secret of at least 32 bytes (RFC 7518 §3.2)",
            KeyError::JwksNotJson => r#"a JWKS: a JSON object {"keys": [...]} of JWK objects"#,
            KeyError::PrivateMaterial => {
                "public keys only: a JWK with private or symmetric members (d, p, q, dp, dq, qi, oth, k) is refused"
            }
            KeyError::InvalidKey => "valid RSA (n, e) or P-256 (x, y) public keys, base64url without padding",
            KeyError::WeakRsaKey => "RSA keys of at least 2048 bits",
            KeyError::DuplicateKid => "a distinct kid for every key of the same algorithm",
            KeyError::NoUsableKeys => "at least one RS256 (kty RSA) or ES256 (kty EC, crv P-256) signature key",
        }
    }
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.expected())
    }
}

#[derive(Clone, PartialEq, Eq)]
enum PublicKey {
    Rs256(rsa::RsaPublicKey),
    Es256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    fn alg(&self) -> Alg {
        match self {
            PublicKey::Rs256(_) => Alg::Rs256,
            PublicKey::Es256(_) => Alg::Es256,
        }
    }

    fn verify(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Rs256(key) => {
                // A PKCS#1 v1.5 signature is exactly as long as the modulus.
                if signature.len() != key.size() {
                    return false;
                }
                let Ok(signature) = rsa::pkcs1v15::Signature::try_from(signature) else {
                    return false;
                };
                rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone())
                    .verify(signing_input, &signature)
                    .is_ok()
            }
            PublicKey::Es256(key) => {
                // JWS carries ECDSA signatures as fixed-size r || s, never DER (RFC 7518 §3.4).
                let Ok(signature) = p256::ecdsa::Signature::from_slice(signature) else {
                    return false;
                };
                key.verify(signing_input, &signature).is_ok()
            }
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
struct Jwk {
    kid: Option<String>,
    key: PublicKey,
}

/// Checks signed tokens against the configured secret and public keys, and their claims against
/// the configured audience and issuer.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Verifier {
    hs256_secret: Option<Vec<u8>>,
    keys: Vec<Jwk>,
    audience: Option<String>,
    issuer: Option<String>,
    /// Longest a token may still be valid, in seconds; `None`: no cap.
    max_lifetime: Option<i64>,
}

impl std::fmt::Debug for Verifier {
    // The secret must never reach a log line, not even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| format!("{}:{}", k.key.alg().name(), k.kid.as_deref().unwrap_or("-")))
            .collect();
        f.debug_struct("Verifier")
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "<redacted>"))
            .field("keys", &keys)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("max_lifetime", &self.max_lifetime)
            .finish()
    }
}

/// Members that make a JWK private or symmetric; such a key does not belong in a var.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn b64(segment: &str) -> Option<Vec<u8>> {
    // Strict: unpadded, canonical (no stray trailing bits), so one token has one encoding.
    Base64UrlUnpadded::decode_vec(segment).ok()
}

/// Parses one JWK; `Ok(None)` for a key that is not an `RS256`/`ES256` signature key (another
/// algorithm, curve or use), which is skipped so a provider's full JWKS can be pasted as is.
fn parse_jwk(jwk: &serde_json::Map<String, Value>) -> Result<Option<Jwk>, KeyError> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(KeyError::PrivateMaterial);
    }
    let text = |name: &str| -> Result<Option<&str>, KeyError> {
        match jwk.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(KeyError::JwksNotJson),
        }
    };
    if text("use")?.is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    if let Some(ops) = jwk.get("key_ops") {
        let Some(ops) = ops.as_array() else {
            return Err(KeyError::JwksNotJson);
        };
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Ok(None);
        }
    }
    let alg = text("alg")?;
    let kid = text("kid")?.map(str::to_owned);
    let bytes = |name: &str| -> Result<Vec<u8>, KeyError> { text(name)?.and_then(b64).ok_or(KeyError::InvalidKey) };
    let key = match text("kty")? {
        Some("RSA") if alg.is_none() || alg == Some("RS256") => {
            let n = rsa::BigUint::from_bytes_be(&bytes("n")?);
            let e = rsa::BigUint::from_bytes_be(&bytes("e")?);
            if n.bits() < MIN_RSA_BITS {
                return Err(KeyError::WeakRsaKey);
            }
            // `new` also bounds the modulus (4096 bits) and the exponent, so verifying stays cheap.
            PublicKey::Rs256(rsa::RsaPublicKey::new(n, e).map_err(|_| KeyError::InvalidKey)?)
        }
        Some("EC") if text("crv")? == Some("P-256") && (alg.is_none() || alg == Some("ES256")) => {
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err(KeyError::InvalidKey);
            }
            // SEC1 uncompressed form: 0x04 || x || y.
            let mut sec1 = Vec::with_capacity(65);
            sec1.push(4);
            sec1.extend_from_slice(&x);
            sec1.extend_from_slice(&y);
            // Checks that the point is on the curve, which is what keeps invalid-curve tricks out.
            PublicKey::Es256(p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| KeyError::InvalidKey)?)
        }
        Some(_) => return Ok(None),
        None => return Err(KeyError::JwksNotJson),
    };
    Ok(Some(Jwk { kid, key }))
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

// Derived, so a claim given twice is an error rather than "last one wins".
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    nbf: Option<f64>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    stores: Option<Vec<String>>,
    // Any JSON value, so that a wrong type is a `BadAccess` rather than a malformed token.
    #[serde(default)]
    access: Option<Value>,
}

/// Decodes a segment holding a JSON object. Checking for `{` first keeps serde from accepting a
/// JSON array in the object's place.
fn json_object<T: serde::de::DeserializeOwned>(segment: &str) -> Option<T> {
    let bytes = b64(segment)?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

struct Parts<'t> {
    header: Header,
    signing_input: &'t str,
    claims: &'t str,
    signature: &'t str,
}

fn split(token: &str) -> Option<Parts<'_>> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let (header, claims) = signing_input.split_once('.')?;
    if claims.contains('.') {
        return None;
    }
    Some(Parts {
        header: json_object(header)?,
        signing_input,
        claims,
        signature,
    })
}

/// Whether `token` is shaped like a JWT: three base64url segments, the first a JSON object with
/// an `alg`. Anything else (an opaque shared token, a session id in a header) is not one, and is
/// never verified as one.
pub fn is_jwt(token: &str) -> bool {
    token.len() <= MAX_TOKEN_BYTES && split(token).is_some()
}

impl Verifier {
    /// A verifier that accepts nothing until a secret or keys are added.
    pub fn new() -> Verifier {
        Verifier::default()
    }

    /// Accepts `HS256` tokens signed with `secret` (its bytes as given, not base64-decoded).
    pub fn with_hs256_secret(mut self, secret: &[u8]) -> Result<Verifier, KeyError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyError::SecretTooShort);
        }
        self.hs256_secret = Some(secret.to_vec());
        Ok(self)
    }

    /// Accepts `RS256` and `ES256` tokens signed by a key of `jwks` (a JWK Set, RFC 7517 §5).
    /// Keys for other algorithms, curves or uses are skipped; a key with private material, a
    /// broken or weak key, or a set with no usable key is an error.
    pub fn with_jwks(mut self, jwks: &str) -> Result<Verifier, KeyError> {
        let set: Value = serde_json::from_str(jwks).map_err(|_| KeyError::JwksNotJson)?;
        let keys = set.get("keys").and_then(Value::as_array).ok_or(KeyError::JwksNotJson)?;
        let mut parsed: Vec<Jwk> = Vec::new();
        for key in keys {
            let key = key.as_object().ok_or(KeyError::JwksNotJson)?;
            if let Some(jwk) = parse_jwk(key)? {
                if jwk.kid.is_some() && parsed.iter().any(|k| k.kid == jwk.kid && k.key.alg() == jwk.key.alg()) {
                    return Err(KeyError::DuplicateKid);
                }
                parsed.push(jwk);
            }
        }
        if parsed.is_empty() {
            return Err(KeyError::NoUsableKeys);
        }
        self.keys = parsed;
        Ok(self)
    }

    /// Requires `aud` to be, or to contain, `audience`.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Verifier {
        self.audience = Some(audience.into());
        self
    }

    /// Requires `iss` to equal `issuer`.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Verifier {
        self.issuer = Some(issuer.into());
        self
    }

    /// Refuses tokens that are still valid for more than `seconds` (`None`: no cap), so a token
    /// minted with an `exp` years ahead, by mistake or by an attacker holding the key for a
    /// moment, does not open stores for years.
    pub fn with_max_lifetime(mut self, seconds: Option<i64>) -> Verifier {
        self.max_lifetime = seconds;
        self
    }

    /// Whether anything can be verified at all (a secret or at least one key).
    pub fn is_configured(&self) -> bool {
        self.hs256_secret.is_some() || !self.keys.is_empty()
    }

    /// Checks that `token` is authentic, current at `now` (seconds since the Unix epoch), meant
    /// for this server's audience and issuer, and names `store_id` in its `stores` claim; and what
    /// it grants: read only or read and write, until its `exp` (plus the leeway).
    pub fn verify(&self, token: &str, store_id: &str, now: i64) -> Result<Grant, Rejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejection::TooLong);
        }
        let parts = split(token).ok_or(Rejection::Malformed)?;
        let alg = Alg::from_name(&parts.header.alg).ok_or(Rejection::UnsupportedAlg)?;
        if parts.header.crit.is_some() {
            return Err(Rejection::UnsupportedCrit);
        }
        let signature = b64(parts.signature).ok_or(Rejection::Malformed)?;
        let input = parts.signing_input.as_bytes();
        let authentic = match alg {
            Alg::Hs256 => {
                let secret = self.hs256_secret.as_deref().ok_or(Rejection::AlgNotAccepted)?;
                let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| Rejection::AlgNotAccepted)?;
                mac.update(input);
                // Constant-time comparison of the tags.
                mac.verify_slice(&signature).is_ok()
            }
            Alg::Rs256 | Alg::Es256 => self
                .public_key(alg, parts.header.kid.as_deref())?
                .verify(input, &signature),
        };
        if !authentic {
            return Err(Rejection::BadSignature);
        }
        let claims: Claims = json_object(parts.claims).ok_or(Rejection::Malformed)?;
        self.check_claims(&claims, store_id, now)
    }

    /// The one key that may verify a token of `alg` naming `kid`: never more than one, so a token
    /// costs at most one signature check.
    fn public_key(&self, alg: Alg, kid: Option<&str>) -> Result<&PublicKey, Rejection> {
        let mut of_alg = self.keys.iter().filter(|k| k.key.alg() == alg).peekable();
        if of_alg.peek().is_none() {
            return Err(Rejection::AlgNotAccepted);
        }
        match kid {
            Some(kid) => of_alg
                .find(|k| k.kid.as_deref() == Some(kid))
                .map(|k| &k.key)
                .ok_or(Rejection::UnknownKey),
            None => {
                let only = of_alg.next().map(|k| &k.key);
                if of_alg.next().is_some() {
                    return Err(Rejection::KidRequired);
                }
                only.ok_or(Rejection::UnknownKey)
            }
        }
    }

    fn check_claims(&self, claims: &Claims, store_id: &str, now: i64) -> Result<Grant, Rejection> {
        let now = now as f64;
        let leeway = LEEWAY_SECS as f64;
        let exp = claims.exp.ok_or(Rejection::MissingExp)?;
        if now >= exp + leeway {
            return Err(Rejection::Expired);
        }
        if self.max_lifetime.is_some_and(|max| exp - now > max as f64 + leeway) {
            return Err(Rejection::LifetimeTooLong);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now + leeway) {
            return Err(Rejection::NotYetValid);
        }
        match (&self.audience, &claims.aud) {
            (None, None) => {}
            (Some(wanted), Some(Audience::One(aud))) if aud == wanted => {}
            (Some(wanted), Some(Audience::Many(auds))) if auds.contains(wanted) => {}
            _ => return Err(Rejection::WrongAudience),
        }
        if let Some(wanted) = &self.issuer {
            if claims.iss.as_ref() != Some(wanted) {
                return Err(Rejection::WrongIssuer);
            }
        }
        let stores = claims.stores.as_ref().ok_or(Rejection::MissingStores)?;
        if !stores.iter().any(|s| s == store_id) {
            return Err(Rejection::WrongStore);
        }
        let read_only = match &claims.access {
            None => false,
            Some(Value::String(a)) if a == "readwrite" => false,
            Some(Value::String(a)) if a == "read" => true,
            Some(_) => return Err(Rejection::BadAccess),
        };
        // The instant the token stops being accepted: the same leeway as above. An end past the
        // last date an alarm can be set for (the runtime refuses dates after 2189), or not a
        // finite number, never closes the socket: no socket lives that long.
        let end = exp + leeway;
        let expires_at = (end.is_finite() && end < LAST_EXPIRY_SECS).then(|| end.ceil() as i64);
        Ok(Grant { read_only, expires_at })
    }
}
