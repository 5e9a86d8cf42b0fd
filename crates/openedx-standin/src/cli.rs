//! The flags of the `openedx-standin` binary (`main.rs`), parsed by hand: a dozen flags do not
//! need an argument-parsing library. Part of the binary, not of the library.

use std::{net::SocketAddr, time::Duration};

use openedx_standin::{AccountPrivacy, GrantType, LmsUser, RegisteredClient};

pub(crate) const USAGE: &str = "\
usage: openedx-standin [options]

Runs a development stand-in for the Open edX LMS (not a real LMS) with the applications and
learners below and the demo learner (learner / learner-password), until Ctrl-C.

options:
  --bind ADDR             where to listen (default 127.0.0.1:8090)
  --host NAME             the host name in LMS_URL and the JWT issuer (default: the bound
                          address; use it with --bind 0.0.0.0:8090, e.g. --host localhost)
  --client SPEC           an application; repeat for more. SPEC is ID followed by
                          comma-separated options: grant=authorization-code (default),
                          grant=client-credentials or grant=password; redirect=URI (repeat;
                          authorization-code needs one); skip-consent; public (no secret);
                          scopes=user_id+grades:read; owner=USERNAME. E.g.
                          --client web,redirect=http://127.0.0.1:3000/callback,skip-consent
  --user SPEC             a learner; repeat for more. SPEC is USERNAME followed by
                          comma-separated options: email=ADDRESS, name=NAME (no commas),
                          staff, private. The password is USERNAME-password.
  --show-secrets          print generated client secrets (they go to a file otherwise)

  The single application of earlier versions, still supported (used when any is given,
  or when no --client is):
  --client-id ID          the application's client id (default my-app)
  --grant-type GRANT      authorization-code (default), client-credentials or password
                          (password: a public client, without a secret)
  --redirect-uri URI      a redirect URI of the application; repeat for more
                          (authorization-code needs at least one)
  --skip-authorization    no consent page

  --logout-uri URI        a front-channel logout URL the LMS logout loads in an iframe
                          (IDA_LOGOUT_URI_LIST); repeat for more
  --jwt-lifetime SECS     how long JWTs live (default 3600)

environment:
  OPENEDX_STANDIN_CLIENT_SECRET        the secret of the --client-id application
  OPENEDX_STANDIN_CLIENT_SECRET_<ID>   the secret of --client ID (ID upper-cased, other
                                       characters than letters and digits as _)
  A confidential application without its variable gets a random secret, written to a file
  only you can read, whose path is printed. Secrets are never taken from the command line.

The admin API under /_standin/ (not part of the LMS) adds applications and learners, injects
faults and delays, expires or revokes tokens and reads the journal: see GET /_standin.";

/// An application named by `--client` or by the single-application flags, with the variable
/// its secret comes from.
pub(crate) struct ClientOption {
    pub(crate) client: RegisteredClient,
    pub(crate) secret_variable: String,
}

pub(crate) struct Options {
    pub(crate) bind: SocketAddr,
    pub(crate) host: Option<String>,
    pub(crate) clients: Vec<ClientOption>,
    pub(crate) users: Vec<LmsUser>,
    pub(crate) show_secrets: bool,
    pub(crate) logout_uris: Vec<String>,
    pub(crate) jwt_lifetime: Duration,
}

/// The single application of the original flags.
struct Legacy {
    given: bool,
    client_id: String,
    grant_type: GrantType,
    redirect_uris: Vec<String>,
    skip_authorization: bool,
}

pub(crate) fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        bind: SocketAddr::from(([127, 0, 0, 1], 8090)),
        host: None,
        clients: Vec::new(),
        users: Vec::new(),
        show_secrets: false,
        logout_uris: Vec::new(),
        jwt_lifetime: Duration::from_secs(3600),
    };
    let mut legacy = Legacy {
        given: false,
        client_id: "my-app".into(),
        grant_type: GrantType::AuthorizationCode,
        redirect_uris: Vec::new(),
        skip_authorization: false,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--bind" => {
                let v = value()?;
                options.bind = v
                    .parse()
                    .map_err(|_| format!("--bind: {v:?} is not an address:port"))?;
            }
            "--host" => {
                let v = value()?;
                if v.is_empty() || v.contains(['/', ':', ' ', '@']) {
                    return Err(format!(
                        "--host: {v:?} is not a host name (no scheme, port or path)"
                    ));
                }
                options.host = Some(v);
            }
            "--client" => options.clients.push(client_spec(&value()?)?),
            "--user" => options.users.push(user_spec(&value()?)?),
            "--show-secrets" => options.show_secrets = true,
            "--client-id" => {
                legacy.given = true;
                legacy.client_id = value()?;
            }
            "--grant-type" => {
                legacy.given = true;
                let v = value()?;
                legacy.grant_type = GrantType::from_name(&v).ok_or_else(|| {
                    format!(
                        "--grant-type: {v:?} is not authorization-code, client-credentials or \
                         password"
                    )
                })?;
            }
            "--redirect-uri" => {
                legacy.given = true;
                legacy.redirect_uris.push(value()?);
            }
            "--skip-authorization" => {
                legacy.given = true;
                legacy.skip_authorization = true;
            }
            "--logout-uri" => options.logout_uris.push(value()?),
            "--jwt-lifetime" => {
                let v = value()?;
                let secs = v
                    .parse()
                    .map_err(|_| format!("--jwt-lifetime: {v:?} is not a number of seconds"))?;
                options.jwt_lifetime = Duration::from_secs(secs);
            }
            other => return Err(format!("{other}: unknown option (see --help)")),
        }
    }
    if legacy.given || options.clients.is_empty() {
        if legacy.grant_type == GrantType::AuthorizationCode && legacy.redirect_uris.is_empty() {
            return Err(
                "an authorization-code application needs --redirect-uri URI, the address \
                 your app receives the code at"
                    .into(),
            );
        }
        // The password grant of this flag has always meant a public client, as the mobile apps.
        let secret = if legacy.grant_type == GrantType::Password {
            ""
        } else {
            "to be set"
        };
        let client = RegisteredClient {
            grant_type: legacy.grant_type,
            skip_authorization: legacy.skip_authorization,
            owner: format!("{}-service", legacy.client_id),
            ..RegisteredClient::authorization_code(&legacy.client_id, secret, legacy.redirect_uris)
        };
        options.clients.insert(
            0,
            ClientOption {
                client,
                secret_variable: "OPENEDX_STANDIN_CLIENT_SECRET".into(),
            },
        );
    }
    Ok(Some(options))
}

/// The variable `--client ID` takes its secret from.
fn secret_variable(client_id: &str) -> String {
    let suffix: String = client_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("OPENEDX_STANDIN_CLIENT_SECRET_{suffix}")
}

/// `--client ID,grant=...,redirect=...,skip-consent,public,scopes=a+b,owner=NAME`.
fn client_spec(spec: &str) -> Result<ClientOption, String> {
    let mut parts = spec.split(',');
    let id = parts.next().unwrap_or_default().trim();
    if id.is_empty() || id.contains('=') {
        return Err(format!(
            "--client {spec:?}: start with the client id, e.g. --client my-app,redirect=URI"
        ));
    }
    let mut client = RegisteredClient {
        owner: format!("{id}-service"),
        ..RegisteredClient::authorization_code(id, "to be set", Vec::new())
    };
    for part in parts {
        match part.split_once('=') {
            Some(("grant", v)) => {
                client.grant_type = GrantType::from_name(v).ok_or_else(|| {
                    format!(
                        "--client {id}: grant={v} is not authorization-code, \
                         client-credentials or password"
                    )
                })?;
            }
            Some(("redirect", v)) => client.redirect_uris.push(v.to_owned()),
            Some(("scopes", v)) => {
                client.scopes = v.split('+').map(str::to_owned).collect();
            }
            Some(("owner", v)) => client.owner = v.to_owned(),
            None if part == "skip-consent" => client.skip_authorization = true,
            None if part == "public" => client.client_secret = String::new(),
            _ => {
                return Err(format!(
                    "--client {id}: {part:?} is not grant=, redirect=, scopes=, owner=, \
                     skip-consent or public"
                ));
            }
        }
    }
    if client.grant_type == GrantType::AuthorizationCode && client.redirect_uris.is_empty() {
        return Err(format!(
            "--client {id}: an authorization-code application needs redirect=URI"
        ));
    }
    Ok(ClientOption {
        secret_variable: secret_variable(id),
        client,
    })
}

/// `--user USERNAME,email=...,name=...,staff,private`.
fn user_spec(spec: &str) -> Result<LmsUser, String> {
    let mut parts = spec.split(',');
    let username = parts.next().unwrap_or_default().trim();
    if username.is_empty() || username.contains('=') {
        return Err(format!(
            "--user {spec:?}: start with the username, e.g. --user grace,staff"
        ));
    }
    let mut user = LmsUser::named(username);
    for part in parts {
        match part.split_once('=') {
            Some(("email", v)) => user.email = v.to_owned(),
            Some(("name", v)) => user.name = v.to_owned(),
            None if part == "staff" => user.is_staff = true,
            None if part == "private" => user.account_privacy = Some(AccountPrivacy::Private),
            _ => {
                return Err(format!(
                    "--user {username}: {part:?} is not email=, name=, staff or private"
                ));
            }
        }
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn an_authorization_code_application_needs_a_redirect_uri() {
        let err = parse(args(&[])).err().unwrap_or_default();
        assert!(err.contains("--redirect-uri"), "{err}");
        let options = parse(args(&["--redirect-uri", "http://127.0.0.1:3000/cb"]))
            .ok()
            .flatten()
            .map(|o| o.clients[0].client.redirect_uris.clone());
        assert_eq!(options, Some(vec!["http://127.0.0.1:3000/cb".to_owned()]));
    }

    #[test]
    fn other_grants_and_flags_parse() {
        let options = parse(args(&[
            "--grant-type",
            "client-credentials",
            "--bind",
            "127.0.0.1:0",
            "--jwt-lifetime",
            "30",
        ]))
        .ok()
        .flatten();
        assert!(options.is_some_and(|o| o.clients[0].client.grant_type
            == GrantType::ClientCredentials
            && o.jwt_lifetime == Duration::from_secs(30)
            && o.bind.port() == 0));
        assert!(parse(args(&["--bind"])).is_err());
        assert!(parse(args(&["--grant-type", "implicit"])).is_err());
        assert!(matches!(parse(args(&["--help"])), Ok(None)));
    }

    #[test]
    fn clients_and_users_repeat_and_the_single_application_flags_still_count() {
        let options = parse(args(&[
            "--client",
            "web,redirect=http://127.0.0.1:3000/cb,skip-consent,scopes=user_id+grades:read",
            "--client",
            "reports,grant=client-credentials",
            "--client",
            "mobile,grant=password,public",
            "--user",
            "grace,staff,email=grace@example.org",
            "--host",
            "localhost",
        ]))
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("parses"));
        let ids: Vec<&str> = options
            .clients
            .iter()
            .map(|c| c.client.client_id.as_str())
            .collect();
        assert_eq!(ids, ["web", "reports", "mobile"]);
        assert!(options.clients[0].client.skip_authorization);
        assert_eq!(options.clients[0].client.scopes, ["user_id", "grades:read"]);
        assert!(options.clients[2].client.is_public());
        assert_eq!(
            options.clients[1].secret_variable,
            "OPENEDX_STANDIN_CLIENT_SECRET_REPORTS"
        );
        assert!(options.users[0].is_staff && options.users[0].email == "grace@example.org");
        assert_eq!(options.host.as_deref(), Some("localhost"));

        let both = parse(args(&[
            "--client-id",
            "old",
            "--redirect-uri",
            "http://x/cb",
            "--client",
            "new,grant=client-credentials",
        ]))
        .ok()
        .flatten()
        .map(|o| o.clients.len());
        assert_eq!(both, Some(2));
        assert!(
            parse(args(&["--client", "web"])).is_err(),
            "no redirect URI"
        );
        assert!(parse(args(&["--client", "web,grant=implicit"])).is_err());
        assert!(parse(args(&["--host", "http://x"])).is_err());
    }
}
