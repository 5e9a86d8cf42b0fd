//! The account a person sees at `GET /api/user/v1/accounts/{username}`
//! ([`wire`](crate::wire#the-user-apis)).
//!
//! The LMS returns many fields, and fields the serializer does not fill come back as `null`, so
//! everything but `username` is optional and unknown fields are ignored.

use serde::{Deserialize, Serialize};

/// `GET /api/user/v1/me`: exactly `{"username": "..."}`.
#[derive(Clone, Debug, Deserialize)]
pub struct Me {
    /// The username of whoever the token belongs to.
    pub username: String,
}

/// `GET /api/user/v1/accounts/{username}`: the fields an app shows of a person. Which fields
/// arrive depends on who asks: all of them for one's own account (or for staff), only the shared
/// ones for someone else's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// The username, always present.
    pub username: String,
    /// The numeric user id (own account only).
    #[serde(default)]
    pub id: Option<i64>,
    /// The full name (own account only, unless the owner shares it).
    #[serde(default)]
    pub name: Option<String>,
    /// The email address (own account only).
    #[serde(default)]
    pub email: Option<String>,
    /// An ISO 3166 country code, e.g. `GB`.
    #[serde(default)]
    pub country: Option<String>,
    /// ISO 8601, e.g. `2024-01-15T10:00:00Z`.
    #[serde(default)]
    pub date_joined: Option<String>,
    /// The person's "about me".
    #[serde(default)]
    pub bio: Option<String>,
    /// The languages the person speaks (`null` from the LMS reads as none).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub language_proficiencies: Vec<LanguageProficiency>,
    /// The profile image, or the LMS's default one.
    #[serde(default)]
    pub profile_image: Option<ProfileImage>,
}

/// One entry of `language_proficiencies`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LanguageProficiency {
    /// An ISO 639-1 language code, e.g. `fr`.
    pub code: String,
}

/// The account's `profile_image` object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileImage {
    /// Whether the person uploaded an image; if not, the URLs point at the LMS's default image.
    #[serde(default)]
    pub has_image: bool,
    /// The image at 500 px.
    #[serde(default)]
    pub image_url_full: Option<String>,
    /// The image at 120 px.
    #[serde(default)]
    pub image_url_large: Option<String>,
    /// The image at 50 px.
    #[serde(default)]
    pub image_url_medium: Option<String>,
    /// The image at 30 px.
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
