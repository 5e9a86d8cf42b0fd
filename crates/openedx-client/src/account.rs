//! The account a person sees at `GET /api/user/v1/accounts/{username}` (`../shared/openedx.md` §6).
//!
//! The LMS returns many fields, and fields the serializer does not fill come back as `null`, so
//! everything but `username` is optional and unknown fields are ignored.

use serde::{Deserialize, Serialize};

/// `GET /api/user/v1/me`: exactly `{"username": "..."}`.
#[derive(Clone, Debug, Deserialize)]
pub struct Me {
    pub username: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub username: String,
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    /// ISO 8601, e.g. `2024-01-15T10:00:00Z`.
    #[serde(default)]
    pub date_joined: Option<String>,
    #[serde(default)]
    pub bio: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub language_proficiencies: Vec<LanguageProficiency>,
    #[serde(default)]
    pub profile_image: Option<ProfileImage>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LanguageProficiency {
    pub code: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileImage {
    #[serde(default)]
    pub has_image: bool,
    #[serde(default)]
    pub image_url_full: Option<String>,
    #[serde(default)]
    pub image_url_large: Option<String>,
    #[serde(default)]
    pub image_url_medium: Option<String>,
    #[serde(default)]
    pub image_url_small: Option<String>,
}

impl Account {
    /// The uploaded profile image, if the person has one. The LMS also sends URLs of a default
    /// image when `has_image` is false; those are not the person's picture.
    pub fn image_url(&self) -> Option<&str> {
        let image = self.profile_image.as_ref().filter(|i| i.has_image)?;
        [
            &image.image_url_large,
            &image.image_url_full,
            &image.image_url_medium,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .find(|url| url.starts_with("https://") || url.starts_with("http://"))
    }
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_with_nulls_and_unknown_fields_parses() {
        let account: Account = serde_json::from_str(
            r#"{"username":"ada","name":null,"bio":null,"language_proficiencies":null,
                "profile_image":{"has_image":false,"image_url_full":"http://lms/default_500.png"},
                "social_links":[],"goals":null}"#,
        )
        .expect("parses");
        assert_eq!(account.username, "ada");
        assert!(account.language_proficiencies.is_empty());
        assert_eq!(
            account.image_url(),
            None,
            "the default image is not the person's"
        );
    }

    #[test]
    fn an_uploaded_image_prefers_the_large_size_and_only_http_urls() {
        let mut account = Account {
            profile_image: Some(ProfileImage {
                has_image: true,
                image_url_full: Some("https://lms/full.jpg".into()),
                image_url_large: Some("javascript:alert(1)".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(account.image_url(), Some("https://lms/full.jpg"));
        account.profile_image = Some(ProfileImage {
            has_image: true,
            image_url_large: Some("https://lms/large.jpg".into()),
            ..Default::default()
        });
        assert_eq!(account.image_url(), Some("https://lms/large.jpg"));
    }
}
