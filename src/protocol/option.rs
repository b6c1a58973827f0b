//! Effect's `Option` encoding: `{"_tag":"None"}` or `{"_tag":"Some","value":…}`.

use serde::{Deserialize, Deserializer};

/// An `Option` as Effect Schema encodes it on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectOption<T>(pub Option<T>);

impl<T> EffectOption<T> {
    /// The plain Rust option.
    pub fn into_inner(self) -> Option<T> {
        self.0
    }

    /// A reference to the plain Rust option.
    pub fn as_ref(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

#[derive(Deserialize)]
struct Repr<T> {
    #[serde(rename = "_tag")]
    tag: String,
    value: Option<T>,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for EffectOption<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = Repr::<T>::deserialize(deserializer)?;
        match (repr.tag.as_str(), repr.value) {
            ("None", _) => Ok(EffectOption(None)),
            ("Some", Some(value)) => Ok(EffectOption(Some(value))),
            ("Some", None) => Err(serde::de::Error::custom("Option `Some` without a `value`")),
            (other, _) => Err(serde::de::Error::custom(format!(
                "expected an Option tagged `None` or `Some`, got `{other}`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_tags() {
        let none: EffectOption<String> = serde_json::from_str(r#"{"_tag":"None"}"#).unwrap();
        assert_eq!(none.0, None);
        let some: EffectOption<String> = serde_json::from_str(r#"{"_tag":"Some","value":"x"}"#).unwrap();
        assert_eq!(some.0.as_deref(), Some("x"));
        assert!(serde_json::from_str::<EffectOption<String>>(r#"{"_tag":"Some"}"#).is_err());
        assert!(serde_json::from_str::<EffectOption<String>>(r#"{"_tag":"Maybe"}"#).is_err());
        assert!(serde_json::from_str::<EffectOption<String>>(r#"null"#).is_err());
    }
}
