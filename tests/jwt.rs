//! Signed tokens: what the verifier accepts and everything it must refuse. Keys are the fixtures
//! in tests/fixtures/jwt (made once with Node's crypto); tokens are minted here with the crates'
//! signing side, and three tokens signed by Node check the verifier against another
//! implementation.

use base64ct::{Base64UrlUnpadded, Encoding};
use hmac::{Hmac, Mac};
use livestore_sync::jwt::{is_jwt, KeyError, Rejection, Verifier, LEEWAY_SECS, MAX_TOKEN_BYTES};
use p256::pkcs8::DecodePrivateKey as _;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{json, Value};
use sha2::Sha256;

const JWKS: &str = include_str!("fixtures/jwt/jwks.json");
const VECTORS: &str = include_str!("fixtures/jwt/vectors.json");
const RSA_PRIVATE: &str = include_str!("fixtures/jwt/rsa-private.pem");
const RSA2_PRIVATE: &str = include_str!("fixtures/jwt/rsa2-private.pem");
const EC_PRIVATE: &str = include_str!("fixtures/jwt/ec-private.pem");
const RSA_PUBLIC_PEM: &str = include_str!("fixtures/jwt/rsa-public.pem");
const RSA_PUBLIC_DER: &[u8] = include_bytes!("fixtures/jwt/rsa-public.der");
const RSA2_PUBLIC_JWK: &str = include_str!("fixtures/jwt/rsa2-public.jwk.json");
const WEAK_RSA_JWK: &str = include_str!("fixtures/jwt/weak-rsa-public.jwk.json");
const EC_PRIVATE_JWK: &str = include_str!("fixtures/jwt/ec-private.jwk.json");

const SECRET: &[u8] = b"unit-test-secret-0123456789abcdef-0123";
/// 2027-01-15: inside every fixture token's validity.
const NOW: i64 = 1_800_000_000;

enum Key<'a> {
    Hs(&'a [u8]),
    Rsa(&'a str),
    Ec(&'a str),
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// A compact JWS of `header` and `claims` (raw JSON texts), signed with `key`.
fn sign_raw(header: &str, claims: &str, key: Key) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let signature = match key {
        Key::Hs(secret) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Key::Rsa(pem) => {
            let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap();
            rsa::pkcs1v15::SigningKey::<Sha256>::new(key)
                .sign(input.as_bytes())
                .to_vec()
        }
        Key::Ec(pem) => {
            let key = p256::ecdsa::SigningKey::from_pkcs8_pem(pem).unwrap();
            let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
            signature.to_bytes().to_vec()
        }
    };
    format!("{input}.{}", b64(&signature))
}

fn sign(header: Value, claims: Value, key: Key) -> String {
    sign_raw(&header.to_string(), &claims.to_string(), key)
}

fn claims_for(stores: &[&str]) -> Value {
    json!({ "sub": "user-1", "stores": stores, "iat": NOW, "exp": NOW + 3600 })
}

fn hs256(claims: Value) -> String {
    sign(json!({"alg": "HS256", "typ": "JWT"}), claims, Key::Hs(SECRET))
}

fn rs256(claims: Value) -> String {
    sign(json!({"alg": "RS256", "kid": "rsa-1"}), claims, Key::Rsa(RSA_PRIVATE))
}

fn es256(claims: Value) -> String {
    sign(json!({"alg": "ES256", "kid": "ec-1"}), claims, Key::Ec(EC_PRIVATE))
}

fn verifier() -> Verifier {
    Verifier::new()
        .with_hs256_secret(SECRET)
        .unwrap()
        .with_jwks(JWKS)
        .unwrap()
}

fn jwks_only() -> Verifier {
    Verifier::new().with_jwks(JWKS).unwrap()
}

fn vectors() -> Value {
    serde_json::from_str(VECTORS).unwrap()
}

#[test]
fn tokens_signed_by_node_verify() {
    let v = vectors();
    let secret = v["hs256_secret"].as_str().unwrap().as_bytes();
    let node = Verifier::new()
        .with_hs256_secret(secret)
        .unwrap()
        .with_jwks(JWKS)
        .unwrap();
    for alg in ["hs256", "rs256", "es256"] {
        let token = v[alg].as_str().unwrap();
        assert!(is_jwt(token), "{alg}");
        for store in ["store-a", "store-b"] {
            assert_eq!(node.verify(token, store, NOW).map(drop), Ok(()), "{alg} {store}");
        }
        assert_eq!(
            node.verify(token, "store-c", NOW).map(drop),
            Err(Rejection::WrongStore),
            "{alg}"
        );
        // exp 2000000000, nbf 1700000000, both with the leeway.
        assert_eq!(
            node.verify(token, "store-a", 2_000_000_000 + LEEWAY_SECS - 1).map(drop),
            Ok(())
        );
        assert_eq!(
            node.verify(token, "store-a", 2_000_000_000 + LEEWAY_SECS).map(drop),
            Err(Rejection::Expired)
        );
        assert_eq!(
            node.verify(token, "store-a", 1_700_000_000 - LEEWAY_SECS).map(drop),
            Ok(())
        );
        assert_eq!(
            node.verify(token, "store-a", 1_700_000_000 - LEEWAY_SECS - 1).map(drop),
            Err(Rejection::NotYetValid)
        );
    }
    // The HS256 vector under another secret.
    assert_eq!(
        verifier()
            .verify(v["hs256"].as_str().unwrap(), "store-a", NOW)
            .map(drop),
        Err(Rejection::BadSignature)
    );
}

#[test]
fn each_algorithm_opens_exactly_its_listed_stores() {
    let v = verifier();
    for token in [
        hs256(claims_for(&["a", "b"])),
        rs256(claims_for(&["a", "b"])),
        es256(claims_for(&["a", "b"])),
    ] {
        assert_eq!(v.verify(&token, "a", NOW).map(drop), Ok(()));
        assert_eq!(v.verify(&token, "b", NOW).map(drop), Ok(()));
        // Exact matches only: no prefixes, suffixes, case folding or globbing.
        for other in ["c", "", "A", "a ", "ab", "a*", "*", "b/a"] {
            assert_eq!(
                v.verify(&token, other, NOW).map(drop),
                Err(Rejection::WrongStore),
                "{other:?}"
            );
        }
    }
    let wildcard = hs256(claims_for(&["*", "store-*"]));
    assert_eq!(
        v.verify(&wildcard, "store-1", NOW).map(drop),
        Err(Rejection::WrongStore)
    );
    assert_eq!(
        v.verify(&hs256(claims_for(&[])), "a", NOW).map(drop),
        Err(Rejection::WrongStore)
    );
}

/// A token whose `exp` lies further ahead than the configured cap is refused, whatever the
/// algorithm; `exp: 1e308` (once accepted) among them.
#[test]
fn lifetimes_past_the_cap_are_refused() {
    let week = 7 * 24 * 3600;
    let v = verifier().with_max_lifetime(Some(week));
    for token in [
        hs256(json!({"stores": ["s"], "exp": 1e308})),
        hs256(json!({"stores": ["s"], "exp": NOW + week + LEEWAY_SECS + 1})),
        rs256(json!({"stores": ["s"], "exp": NOW + 10 * week})),
        es256(json!({"stores": ["s"], "exp": NOW + 10 * week})),
    ] {
        assert_eq!(v.verify(&token, "s", NOW).map(drop), Err(Rejection::LifetimeTooLong));
    }
    assert_eq!(Rejection::LifetimeTooLong.to_string(), "token lifetime too long");
    assert_eq!(
        v.verify(&hs256(json!({"stores": ["s"], "exp": NOW + week})), "s", NOW)
            .map(drop),
        Ok(())
    );
    // Without a cap, far-off expiries pass as before.
    let uncapped = verifier().with_max_lifetime(None);
    assert_eq!(
        uncapped
            .verify(&hs256(json!({"stores": ["s"], "exp": 1e308})), "s", NOW)
            .map(drop),
        Ok(())
    );
}

#[test]
fn expiry_and_not_before() {
    let v = verifier();
    let at = |exp: i64, nbf: Option<i64>| {
        let mut c = json!({"stores": ["s"], "exp": exp});
        if let Some(nbf) = nbf {
            c["nbf"] = json!(nbf);
        }
        c
    };
    for token in [
        hs256(at(NOW - 100, None)),
        rs256(at(NOW - 100, None)),
        es256(at(NOW - 100, None)),
    ] {
        assert_eq!(v.verify(&token, "s", NOW).map(drop), Err(Rejection::Expired));
    }
    // Exactly at exp (+ leeway) it is over; one second before, it is not.
    assert_eq!(
        v.verify(&hs256(at(NOW - LEEWAY_SECS, None)), "s", NOW).map(drop),
        Err(Rejection::Expired)
    );
    assert_eq!(
        v.verify(&hs256(at(NOW - LEEWAY_SECS + 1, None)), "s", NOW).map(drop),
        Ok(())
    );
    // Fractional NumericDates are allowed.
    let fractional = hs256(json!({"stores": ["s"], "exp": NOW as f64 + 0.5}));
    assert_eq!(v.verify(&fractional, "s", NOW).map(drop), Ok(()));
    for token in [
        hs256(at(NOW + 3600, Some(NOW + 600))),
        rs256(at(NOW + 3600, Some(NOW + 600))),
        es256(at(NOW + 3600, Some(NOW + 600))),
    ] {
        assert_eq!(v.verify(&token, "s", NOW).map(drop), Err(Rejection::NotYetValid));
    }
    assert_eq!(
        v.verify(&hs256(at(NOW + 3600, Some(NOW + LEEWAY_SECS))), "s", NOW)
            .map(drop),
        Ok(())
    );
    assert_eq!(
        v.verify(&hs256(at(NOW + 3600, Some(NOW + LEEWAY_SECS + 1))), "s", NOW)
            .map(drop),
        Err(Rejection::NotYetValid)
    );
}

#[test]
fn access_claim_and_expiry_grant() {
    let v = verifier();
    let grant = |claims: Value| v.verify(&hs256(claims), "s", NOW);
    let full = grant(json!({"stores": ["s"], "exp": NOW + 60})).unwrap();
    assert!(!full.read_only);
    // A socket admitted by it closes when the token stops being accepted: exp plus the leeway.
    assert_eq!(full.expires_at, Some(NOW + 60 + LEEWAY_SECS));
    let read = grant(json!({"stores": ["s"], "exp": NOW + 60, "access": "read"})).unwrap();
    assert!(read.read_only);
    let rw = grant(json!({"stores": ["s"], "exp": NOW + 60, "access": "readwrite"})).unwrap();
    assert!(!rw.read_only);
    // Fractions round up, to the second the token is refused at.
    let frac = grant(json!({"stores": ["s"], "exp": NOW as f64 + 0.5})).unwrap();
    assert_eq!(frac.expires_at, Some(NOW + 1 + LEEWAY_SECS));
    // Past any date an alarm can hold: never closed.
    let uncapped = verifier().with_max_lifetime(None);
    let far = uncapped
        .verify(&hs256(json!({"stores": ["s"], "exp": 1e13})), "s", NOW)
        .unwrap();
    assert_eq!(far.expires_at, None);
    for bad in [json!("write"), json!("READ"), json!(true), json!(["read"]), json!("")] {
        assert_eq!(
            grant(json!({"stores": ["s"], "exp": NOW + 60, "access": bad})).map(drop),
            Err(Rejection::BadAccess),
            "{bad}"
        );
    }
}

#[test]
fn required_claims_and_their_types() {
    let v = verifier();
    assert_eq!(
        v.verify(&hs256(json!({"stores": ["s"]})), "s", NOW).map(drop),
        Err(Rejection::MissingExp)
    );
    assert_eq!(
        v.verify(&es256(json!({"stores": ["s"], "exp": null})), "s", NOW)
            .map(drop),
        Err(Rejection::MissingExp)
    );
    assert_eq!(
        v.verify(&rs256(json!({"exp": NOW + 60})), "s", NOW).map(drop),
        Err(Rejection::MissingStores)
    );
    for claims in [
        json!({"stores": ["s"], "exp": "2030-01-01"}),
        json!({"stores": "s", "exp": NOW + 60}),
        json!({"stores": ["s", 1], "exp": NOW + 60}),
        json!({"stores": ["s"], "exp": NOW + 60, "nbf": "soon"}),
        json!({"stores": ["s"], "exp": NOW + 60, "iss": 7}),
        json!(["not", "an", "object"]),
    ] {
        assert_eq!(
            v.verify(&hs256(claims.clone()), "s", NOW).map(drop),
            Err(Rejection::Malformed),
            "{claims}"
        );
    }
    // A claim given twice is not "last one wins".
    let header = r#"{"alg":"HS256"}"#;
    let twice = sign_raw(
        header,
        &format!(r#"{{"stores":["s"],"exp":{},"exp":{}}}"#, NOW - 3600, NOW + 3600),
        Key::Hs(SECRET),
    );
    assert_eq!(v.verify(&twice, "s", NOW).map(drop), Err(Rejection::Malformed));
    let stores_twice = sign_raw(
        header,
        &format!(r#"{{"stores":["other"],"exp":{},"stores":["s"]}}"#, NOW + 3600),
        Key::Hs(SECRET),
    );
    assert_eq!(v.verify(&stores_twice, "s", NOW).map(drop), Err(Rejection::Malformed));
    // Signed claims that are not JSON.
    let not_json = sign_raw(header, "stores=s", Key::Hs(SECRET));
    assert_eq!(v.verify(&not_json, "s", NOW).map(drop), Err(Rejection::Malformed));
}

#[test]
fn audience_and_issuer() {
    let v = verifier().with_audience("sync").with_issuer("https://auth.example");
    let with = |aud: Value, iss: Value| {
        let mut c = claims_for(&["s"]);
        if !aud.is_null() {
            c["aud"] = aud;
        }
        if !iss.is_null() {
            c["iss"] = iss;
        }
        hs256(c)
    };
    let iss = json!("https://auth.example");
    assert_eq!(v.verify(&with(json!("sync"), iss.clone()), "s", NOW).map(drop), Ok(()));
    assert_eq!(
        v.verify(&with(json!(["other", "sync"]), iss.clone()), "s", NOW)
            .map(drop),
        Ok(())
    );
    for aud in [json!("other"), json!(["other"]), json!([]), json!("SYNC"), Value::Null] {
        assert_eq!(
            v.verify(&with(aud.clone(), iss.clone()), "s", NOW).map(drop),
            Err(Rejection::WrongAudience),
            "{aud}"
        );
    }
    for iss in [
        json!("https://evil.example"),
        json!("https://auth.example/"),
        Value::Null,
    ] {
        assert_eq!(
            v.verify(&with(json!("sync"), iss.clone()), "s", NOW).map(drop),
            Err(Rejection::WrongIssuer),
            "{iss}"
        );
    }
    // Without a configured audience, a token addressed to someone is not for us (RFC 7519 §4.1.3);
    // without a configured issuer, iss is not looked at.
    let plain = verifier();
    assert_eq!(
        plain.verify(&with(json!("sync"), Value::Null), "s", NOW).map(drop),
        Err(Rejection::WrongAudience)
    );
    assert_eq!(
        plain.verify(&with(Value::Null, json!("anyone")), "s", NOW).map(drop),
        Ok(())
    );
}

#[test]
fn signatures_that_do_not_verify() {
    let v = verifier();
    // Signed by a key no one trusts, claiming a trusted kid.
    let forged = sign(
        json!({"alg": "RS256", "kid": "rsa-1"}),
        claims_for(&["s"]),
        Key::Rsa(RSA2_PRIVATE),
    );
    assert_eq!(v.verify(&forged, "s", NOW).map(drop), Err(Rejection::BadSignature));
    let forged_hs = sign(
        json!({"alg": "HS256"}),
        claims_for(&["s"]),
        Key::Hs(b"another-secret-0123456789abcdef-xyz"),
    );
    assert_eq!(v.verify(&forged_hs, "s", NOW).map(drop), Err(Rejection::BadSignature));

    // Tampered claims: the signature of one claims set on another (widening the stores).
    for token in [
        hs256(claims_for(&["s"])),
        rs256(claims_for(&["s"])),
        es256(claims_for(&["s"])),
    ] {
        let parts: Vec<&str> = token.split('.').collect();
        let wider = b64(claims_for(&["s", "victim"]).to_string().as_bytes());
        let tampered = format!("{}.{}.{}", parts[0], wider, parts[2]);
        assert_eq!(
            v.verify(&tampered, "victim", NOW).map(drop),
            Err(Rejection::BadSignature)
        );
        // Tampered header (kid or alg) with the same signature.
        let header: Value = serde_json::from_slice(&Base64UrlUnpadded::decode_vec(parts[0]).unwrap()).unwrap();
        let mut retyped = header.clone();
        retyped["typ"] = json!("at+jwt");
        let tampered = format!("{}.{}.{}", b64(retyped.to_string().as_bytes()), parts[1], parts[2]);
        assert_eq!(v.verify(&tampered, "s", NOW).map(drop), Err(Rejection::BadSignature));
        // A signature cut short, or extended.
        let short = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..parts[2].len() - 4]);
        assert!(v.verify(&short, "s", NOW).map(drop).is_err());
        let long = format!("{}.{}.{}AAAA", parts[0], parts[1], parts[2]);
        assert!(v.verify(&long, "s", NOW).map(drop).is_err());
        // No signature at all.
        let bare = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(v.verify(&bare, "s", NOW).map(drop), Err(Rejection::BadSignature));
    }

    // An ES256 signature in DER form, as some libraries produce, is not JWS.
    let token = es256(claims_for(&["s"]));
    let (input, sig) = token.rsplit_once('.').unwrap();
    let raw = p256::ecdsa::Signature::from_slice(&Base64UrlUnpadded::decode_vec(sig).unwrap()).unwrap();
    let der = format!("{input}.{}", b64(raw.to_der().as_bytes()));
    assert_eq!(v.verify(&der, "s", NOW).map(drop), Err(Rejection::BadSignature));
}

#[test]
fn alg_none_and_unknown_algorithms() {
    let v = verifier();
    let claims = b64(claims_for(&["s"]).to_string().as_bytes());
    for alg in [
        "none", "None", "NONE", "nOnE", "", "HS384", "HS512", "RS512", "PS256", "ES384", "EdDSA", "hs256",
    ] {
        let header = b64(json!({"alg": alg}).to_string().as_bytes());
        for signature in ["", "c2ln"] {
            let token = format!("{header}.{claims}.{signature}");
            assert_eq!(
                v.verify(&token, "s", NOW).map(drop),
                Err(Rejection::UnsupportedAlg),
                "{alg} {signature:?}"
            );
        }
    }
    // Even with a valid HS256 MAC attached, "none" is not accepted.
    let none = sign(json!({"alg": "none"}), claims_for(&["s"]), Key::Hs(SECRET));
    assert_eq!(v.verify(&none, "s", NOW).map(drop), Err(Rejection::UnsupportedAlg));
    // alg must be a string.
    let header = b64(br#"{"alg":["HS256"]}"#);
    assert_eq!(
        v.verify(&format!("{header}.{claims}.x"), "s", NOW).map(drop),
        Err(Rejection::Malformed)
    );
    // Critical extensions are not understood, so tokens that require them are refused.
    let crit = sign(
        json!({"alg": "HS256", "crit": ["exp"], "exp": 1}),
        claims_for(&["s"]),
        Key::Hs(SECRET),
    );
    assert_eq!(v.verify(&crit, "s", NOW).map(drop), Err(Rejection::UnsupportedCrit));
}

#[test]
fn algorithm_confusion_public_key_bytes_as_hmac_secret() {
    let jwks_text = JWKS.as_bytes();
    let rsa_jwk = serde_json::to_vec(&serde_json::from_str::<Value>(JWKS).unwrap()["keys"][0]).unwrap();
    let public_bytes: [&[u8]; 4] = [RSA_PUBLIC_PEM.as_bytes(), RSA_PUBLIC_DER, jwks_text, &rsa_jwk];
    for secret in public_bytes {
        for header in [json!({"alg": "HS256"}), json!({"alg": "HS256", "kid": "rsa-1"})] {
            let token = sign(header, claims_for(&["s"]), Key::Hs(secret));
            // Only public keys configured: HS256 is not accepted at all.
            assert_eq!(
                jwks_only().verify(&token, "s", NOW).map(drop),
                Err(Rejection::AlgNotAccepted)
            );
            // A secret configured too: the token is checked against that secret, never the key.
            assert_eq!(
                verifier().verify(&token, "s", NOW).map(drop),
                Err(Rejection::BadSignature)
            );
        }
    }
    // And the other way: a token whose header claims RS256 but carries an HMAC by the secret.
    let mac_as_rsa = sign(
        json!({"alg": "RS256", "kid": "rsa-1"}),
        claims_for(&["s"]),
        Key::Hs(SECRET),
    );
    assert_eq!(
        verifier().verify(&mac_as_rsa, "s", NOW).map(drop),
        Err(Rejection::BadSignature)
    );
    // A secret-only verifier takes no RS256 / ES256 tokens.
    let secret_only = Verifier::new().with_hs256_secret(SECRET).unwrap();
    assert_eq!(
        secret_only.verify(&rs256(claims_for(&["s"])), "s", NOW).map(drop),
        Err(Rejection::AlgNotAccepted)
    );
    assert_eq!(
        secret_only.verify(&es256(claims_for(&["s"])), "s", NOW).map(drop),
        Err(Rejection::AlgNotAccepted)
    );
    assert_eq!(
        secret_only.verify(&hs256(claims_for(&["s"])), "s", NOW).map(drop),
        Ok(())
    );
}

#[test]
fn keys_are_chosen_by_kid_and_algorithm() {
    let v = verifier();
    // Unknown kid.
    let unknown = sign(
        json!({"alg": "RS256", "kid": "rsa-9"}),
        claims_for(&["s"]),
        Key::Rsa(RSA_PRIVATE),
    );
    assert_eq!(v.verify(&unknown, "s", NOW).map(drop), Err(Rejection::UnknownKey));
    // A kid of a key of another algorithm does not select it.
    let crossed = sign(
        json!({"alg": "RS256", "kid": "ec-1"}),
        claims_for(&["s"]),
        Key::Rsa(RSA_PRIVATE),
    );
    assert_eq!(v.verify(&crossed, "s", NOW).map(drop), Err(Rejection::UnknownKey));
    let crossed = sign(
        json!({"alg": "ES256", "kid": "rsa-1"}),
        claims_for(&["s"]),
        Key::Ec(EC_PRIVATE),
    );
    assert_eq!(v.verify(&crossed, "s", NOW).map(drop), Err(Rejection::UnknownKey));
    // Without a kid, the only key of the token's algorithm.
    let no_kid = sign(json!({"alg": "ES256"}), claims_for(&["s"]), Key::Ec(EC_PRIVATE));
    assert_eq!(v.verify(&no_kid, "s", NOW).map(drop), Ok(()));
    let no_kid = sign(json!({"alg": "RS256"}), claims_for(&["s"]), Key::Rsa(RSA_PRIVATE));
    assert_eq!(v.verify(&no_kid, "s", NOW).map(drop), Ok(()));
    // With two RSA keys, a token must say which.
    let mut set: Value = serde_json::from_str(JWKS).unwrap();
    set["keys"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::from_str(RSA2_PUBLIC_JWK).unwrap());
    let two = Verifier::new().with_jwks(&set.to_string()).unwrap();
    assert_eq!(two.verify(&no_kid, "s", NOW).map(drop), Err(Rejection::KidRequired));
    assert_eq!(two.verify(&rs256(claims_for(&["s"])), "s", NOW).map(drop), Ok(()));
    let by_second = sign(
        json!({"alg": "RS256", "kid": "rsa-2"}),
        claims_for(&["s"]),
        Key::Rsa(RSA2_PRIVATE),
    );
    assert_eq!(two.verify(&by_second, "s", NOW).map(drop), Ok(()));
    assert_eq!(v.verify(&by_second, "s", NOW).map(drop), Err(Rejection::UnknownKey));
    // Keys embedded in the token are ignored.
    let embedded = sign(
        json!({"alg": "RS256", "kid": "rsa-2", "jwk": serde_json::from_str::<Value>(RSA2_PUBLIC_JWK).unwrap()}),
        claims_for(&["s"]),
        Key::Rsa(RSA2_PRIVATE),
    );
    assert_eq!(v.verify(&embedded, "s", NOW).map(drop), Err(Rejection::UnknownKey));
}

#[test]
fn malformed_tokens() {
    let v = verifier();
    let good = hs256(claims_for(&["s"]));
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        String::new(),
        "insecure-token-change-me".into(),
        "a.b".into(),
        "a.b.c".into(),
        ".".into(),
        "..".into(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.extra"),
        format!("{}..{}", parts[0], parts[2]),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}=.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}+/", parts[0], parts[1], parts[2]),
        format!("{}.{}!.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"not json"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(br#"["HS256"]"#), parts[1], parts[2]),
        format!("{}.{}.{}", b64(br#"{"typ":"JWT"}"#), parts[1], parts[2]),
        format!("{}.{}.{}", b64(&[0xff, 0xfe, b'{']), parts[1], parts[2]),
        format!(" {good}"),
        good.replace('.', ". "),
    ];
    for token in &cases {
        let result = v.verify(token, "s", NOW).map(drop);
        // Anything not shaped like a JWT is malformed; a well-formed header over a mangled rest
        // fails the signature before its claims are read.
        let expected = if is_jwt(token) {
            [Rejection::Malformed, Rejection::BadSignature].as_slice()
        } else {
            [Rejection::Malformed].as_slice()
        };
        assert!(
            matches!(result, Err(e) if expected.contains(&e)),
            "{token:?}: {result:?}"
        );
    }
    assert_eq!(v.verify("a.b.c", "s", NOW).map(drop), Err(Rejection::Malformed));
    // A token has one encoding: changing the unused low bits of the last base64 character
    // (which a lenient decoder would ignore) makes it invalid rather than the same token.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = *good.as_bytes().last().unwrap();
    let index = ALPHABET.iter().position(|&c| c == last).unwrap();
    let mut same_bytes = good.clone();
    same_bytes.pop();
    same_bytes.push(ALPHABET[index ^ 1] as char);
    assert_eq!(v.verify(&same_bytes, "s", NOW).map(drop), Err(Rejection::Malformed));
    // Too long to look at.
    let mut huge = claims_for(&["s"]);
    huge["pad"] = json!("x".repeat(MAX_TOKEN_BYTES));
    assert_eq!(v.verify(&hs256(huge), "s", NOW).map(drop), Err(Rejection::TooLong));
}

#[test]
fn what_counts_as_a_jwt() {
    assert!(is_jwt(&hs256(claims_for(&["s"]))));
    assert!(is_jwt(&format!("{}.e30.", b64(br#"{"alg":"none"}"#))));
    for not in [
        "",
        "insecure-token-change-me",
        "a.b.c",
        "x.y",
        "opaque-session.id.value",
    ] {
        assert!(!is_jwt(not), "{not:?}");
    }
}

#[test]
fn no_mutation_of_a_token_verifies_or_panics() {
    let v = verifier();
    let tokens = [
        (hs256(claims_for(&["s"])), 1),
        (es256(claims_for(&["s"])), 5),
        (rs256(claims_for(&["s"])), 9),
    ];
    for (token, step) in &tokens {
        assert_eq!(v.verify(token, "s", NOW).map(drop), Ok(()));
        let bytes = token.as_bytes();
        for i in (0..bytes.len()).step_by(*step) {
            for replacement in [b'A', b'_', b'.', b'=', b'z', 0xc3] {
                if bytes[i] == replacement {
                    continue;
                }
                let mut mutated = bytes.to_vec();
                mutated[i] = replacement;
                let Ok(mutated) = String::from_utf8(mutated) else {
                    continue;
                };
                assert!(
                    v.verify(&mutated, "s", NOW).map(drop).is_err(),
                    "byte {i} -> {replacement}"
                );
            }
            let truncated = &token[..i];
            assert!(v.verify(truncated, "s", NOW).map(drop).is_err(), "cut at {i}");
        }
    }
}

#[test]
fn key_configuration_errors() {
    assert_eq!(
        Verifier::new().with_hs256_secret(&SECRET[..31]).unwrap_err(),
        KeyError::SecretTooShort
    );
    assert!(Verifier::new().with_hs256_secret(&[7; 32]).is_ok());
    for text in [
        "",
        "[]",
        "{}",
        r#"{"keys": {}}"#,
        r#"{"keys": [1]}"#,
        r#"{"keys": [{"n": "AQAB"}]}"#,
        "not json",
    ] {
        assert_eq!(
            Verifier::new().with_jwks(text).unwrap_err(),
            KeyError::JwksNotJson,
            "{text}"
        );
    }
    let set = |keys: Vec<Value>| json!({ "keys": keys }).to_string();
    let jwks: Value = serde_json::from_str(JWKS).unwrap();
    let (rsa_key, ec_key) = (jwks["keys"][0].clone(), jwks["keys"][1].clone());

    // Private or symmetric key material never belongs in the configuration.
    let private: Value = serde_json::from_str(EC_PRIVATE_JWK).unwrap();
    assert_eq!(
        Verifier::new()
            .with_jwks(&set(vec![rsa_key.clone(), private]))
            .unwrap_err(),
        KeyError::PrivateMaterial
    );
    let oct = json!({"kty": "oct", "k": b64(SECRET), "alg": "HS256"});
    assert_eq!(
        Verifier::new().with_jwks(&set(vec![oct])).unwrap_err(),
        KeyError::PrivateMaterial
    );

    let weak: Value = serde_json::from_str(WEAK_RSA_JWK).unwrap();
    assert_eq!(
        Verifier::new().with_jwks(&set(vec![weak])).unwrap_err(),
        KeyError::WeakRsaKey
    );

    let mut off_curve = ec_key.clone();
    off_curve["y"] = json!(b64(&[1; 32]));
    assert_eq!(
        Verifier::new().with_jwks(&set(vec![off_curve])).unwrap_err(),
        KeyError::InvalidKey
    );
    let mut short_x = ec_key.clone();
    short_x["x"] = json!(b64(&[1; 31]));
    assert_eq!(
        Verifier::new().with_jwks(&set(vec![short_x])).unwrap_err(),
        KeyError::InvalidKey
    );
    let mut padded = rsa_key.clone();
    padded["e"] = json!("AQAB==");
    assert_eq!(
        Verifier::new().with_jwks(&set(vec![padded])).unwrap_err(),
        KeyError::InvalidKey
    );
    let mut no_n = rsa_key.clone();
    no_n.as_object_mut().unwrap().remove("n");
    assert_eq!(
        Verifier::new().with_jwks(&set(vec![no_n])).unwrap_err(),
        KeyError::InvalidKey
    );

    assert_eq!(
        Verifier::new()
            .with_jwks(&set(vec![rsa_key.clone(), rsa_key.clone()]))
            .unwrap_err(),
        KeyError::DuplicateKid
    );

    // Keys for other algorithms, curves or uses are skipped, so a provider's whole set can be
    // pasted; a set with nothing usable is an error.
    let mut enc = rsa_key.clone();
    enc["use"] = json!("enc");
    let mut ps256 = rsa_key.clone();
    ps256["alg"] = json!("PS256");
    let mut p384 = ec_key.clone();
    p384["crv"] = json!("P-384");
    let mut sign_only = ec_key.clone();
    sign_only["key_ops"] = json!(["sign"]);
    let okp = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[9; 32]), "kid": "ed"});
    let unusable = vec![enc, ps256, p384, sign_only, okp];
    assert_eq!(
        Verifier::new().with_jwks(&set(unusable.clone())).unwrap_err(),
        KeyError::NoUsableKeys
    );
    let mut mixed = unusable;
    mixed.push(rsa_key);
    let v = Verifier::new().with_jwks(&set(mixed)).unwrap();
    assert_eq!(v.verify(&rs256(claims_for(&["s"])), "s", NOW).map(drop), Ok(()));
    assert_eq!(
        v.verify(&es256(claims_for(&["s"])), "s", NOW).map(drop),
        Err(Rejection::AlgNotAccepted)
    );
}

#[test]
fn nothing_secret_in_debug_or_messages() {
    let v = verifier().with_audience("sync");
    let debug = format!("{v:?}");
    let v = verifier();
    assert!(!debug.contains(std::str::from_utf8(SECRET).unwrap()), "{debug}");
    assert!(debug.contains("rsa-1") && debug.contains("<redacted>"), "{debug}");
    // Rejection texts are fixed: nothing from the token reaches them.
    let token = hs256(claims_for(&["other"]));
    let reason = v.verify(&token, "s", NOW).map(drop).unwrap_err().to_string();
    assert_eq!(reason, "token not valid for this store");
}
