//! Who the LMS knows: the DOT applications registered on it ([`RegisteredClient`], each with its
//! one [`GrantType`]), the learner accounts ([`LmsUser`], each with its [`AccountPrivacy`]), and
//! the scopes an application may ask for.

/// Scopes the LMS knows (`OAUTH2_PROVIDER['SCOPES']`).
pub const KNOWN_SCOPES: [&str; 8] = [
    "read",
    "write",
    "email",
    "profile",
    "certificates:read",
    "grades:read",
    "tpa:read",
    "user_id",
];
/// Scopes every application may ask for (`DEFAULT_SCOPES`), and the ones used when none are asked.
pub const DEFAULT_SCOPES: [&str; 4] = ["read", "write", "email", "profile"];

/// A DOT application as `create_dot_application` registers it.
#[derive(Clone, Debug)]
pub struct RegisteredClient {
    /// `--client-id`: what the application calls itself at the token endpoint.
    pub client_id: String,
    /// Empty for a public client (`--public`), which authenticates with its `client_id` alone.
    pub client_secret: String,
    /// `--redirect-uris`: where codes may be sent; an authorize request must name one exactly.
    pub redirect_uris: Vec<String>,
    /// `--skip-authorization`: no consent page.
    pub skip_authorization: bool,
    /// `--scopes`: the `ApplicationAccess` scopes beyond the defaults, e.g. `user_id`.
    pub scopes: Vec<String>,
    /// `--grant-type`: the one grant the application may use.
    pub grant_type: GrantType,
    /// The LMS user that owns the application; client-credentials tokens are theirs.
    pub owner: String,
}

impl RegisteredClient {
    /// A confidential authorization-code application, as this app is registered.
    pub fn authorization_code(
        client_id: &str,
        client_secret: &str,
        redirect_uris: Vec<String>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uris,
            skip_authorization: false,
            scopes: vec!["user_id".into()],
            grant_type: GrantType::AuthorizationCode,
            owner: "app-service".into(),
        }
    }

    /// A confidential application for service-to-service calls (`--grant-type
    /// client-credentials`): its tokens act as `owner`, a service account created with it.
    pub fn client_credentials(client_id: &str, client_secret: &str, owner: &str) -> Self {
        Self {
            grant_type: GrantType::ClientCredentials,
            owner: owner.into(),
            ..Self::authorization_code(client_id, client_secret, vec![])
        }
    }

    /// A public application for the password grant, as the LMS's mobile apps are registered
    /// (`--public --grant-type password`): no secret.
    pub fn public_password(client_id: &str) -> Self {
        Self {
            grant_type: GrantType::Password,
            ..Self::authorization_code(client_id, "", vec![])
        }
    }

    /// The same application with `--skip-authorization`: no consent page.
    pub fn skipping_consent(self) -> Self {
        Self {
            skip_authorization: true,
            ..self
        }
    }

    /// A public client has no secret and authenticates with its `client_id` alone.
    pub fn is_public(&self) -> bool {
        self.client_secret.is_empty()
    }
}

/// DOT's `authorization_grant_type`, as `create_dot_application --grant-type` sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantType {
    /// `authorization-code`: browsers sign in and consent; the app exchanges the code.
    AuthorizationCode,
    /// `client-credentials`: the application asks for tokens of its own, acting as its owner.
    ClientCredentials,
    /// `password`: the application sends a learner's username and password (the mobile apps).
    Password,
}

impl GrantType {
    /// The value the JWT's `grant_type` claim carries (hyphenated, as DOT stores it).
    pub fn claim(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization-code",
            Self::ClientCredentials => "client-credentials",
            Self::Password => "password",
        }
    }

    /// The grant named as `create_dot_application --grant-type` names it (`authorization-code`,
    /// `client-credentials`, `password`), if it is one the stand-in plays.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "authorization-code" => Some(Self::AuthorizationCode),
            "client-credentials" => Some(Self::ClientCredentials),
            "password" => Some(Self::Password),
            _ => None,
        }
    }
}

/// A learner account on the stand-in.
#[derive(Clone, Debug)]
pub struct LmsUser {
    /// The numeric user id (`user_id` claim, `id` account field).
    pub id: i64,
    /// The username (`preferred_username` claim, `/api/user/v1/me`).
    pub username: String,
    /// The password the login page and the password grant accept; empty for service accounts,
    /// who cannot log in.
    pub password: String,
    /// The email address (login accepts it in place of the username).
    pub email: String,
    /// The full name (`name` claim and account field).
    pub name: String,
    /// The first name (`given_name` claim).
    pub first_name: String,
    /// The last name (`family_name` claim).
    pub last_name: String,
    /// An ISO 3166 country code, if the learner gave one.
    pub country: Option<String>,
    /// The learner's "about me", if any.
    pub bio: Option<String>,
    /// Language codes of `language_proficiencies`.
    pub languages: Vec<String>,
    /// When the account was created, RFC 3339.
    pub date_joined: String,
    /// Staff see every field of every account (`administrator` claim).
    pub is_staff: bool,
    /// Course ids the learner is enrolled in (audit mode).
    pub enrollments: Vec<String>,
    /// The learner's `account_privacy` preference; `None` is the LMS's default visibility,
    /// `all_users`.
    pub account_privacy: Option<AccountPrivacy>,
}

/// Who sees what of an account (the `account_privacy` preference, `ACCOUNT_VISIBILITY_CONFIGURATION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountPrivacy {
    /// `private`: others see only `account_privacy`, `profile_image` and `username`.
    Private,
    /// `all_users`: others also see the bulk-shareable fields (bio, country, languages...).
    AllUsers,
}

impl AccountPrivacy {
    /// The value of the `account_privacy` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::AllUsers => "all_users",
        }
    }
}

impl LmsUser {
    /// A demo learner, `learner` / `learner-password`, enrolled in the demo course.
    pub fn demo_learner() -> Self {
        Self {
            id: 7,
            username: "learner".into(),
            password: "learner-password".into(),
            email: "learner@example.com".into(),
            name: "Ada Lovelace".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            country: Some("GB".into()),
            bio: Some("Writes the first programs for an engine that does not exist yet.".into()),
            languages: vec!["en".into(), "fr".into()],
            date_joined: "2024-01-15T10:00:00Z".into(),
            is_staff: false,
            enrollments: vec![DEMO_COURSE.into()],
            account_privacy: None,
        }
    }

    /// A learner called `username`, with the password `{username}-password`, an address at
    /// `example.com`, the username as their name, no profile details and no enrollments.
    pub fn named(username: &str) -> Self {
        Self {
            id: 8,
            username: username.into(),
            password: format!("{username}-password"),
            email: format!("{username}@example.com"),
            name: username.into(),
            ..Self::service(username)
        }
    }

    /// A service account, as `manage_user <name> <email> --unusable-password` creates to own an
    /// application.
    pub fn service(username: &str) -> Self {
        Self {
            id: 2,
            username: username.into(),
            password: String::new(),
            email: format!("{username}@openedx"),
            name: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            country: None,
            bio: None,
            languages: vec![],
            date_joined: "2024-01-01T00:00:00Z".into(),
            is_staff: false,
            enrollments: vec![],
            account_privacy: None,
        }
    }
}

/// The demo course every Open edX installation can import.
pub const DEMO_COURSE: &str = "course-v1:OpenedX+DemoX+DemoCourse";
