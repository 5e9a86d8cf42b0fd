//! `openedx-standin`: runs the stand-in on a port of your choice with one registered application
//! and the demo learner, and prints what an app needs to sign in against it, in `.env` form.
//!
//! The arguments are parsed by hand: six flags do not need an argument-parsing library.

use std::{io::Write, net::SocketAddr, process::ExitCode, time::Duration};

use openedx_standin::{GrantType, LmsUser, RegisteredClient, Settings, StandIn};

const USAGE: &str = "\
usage: openedx-standin [options]

Runs a development stand-in for the Open edX LMS (not a real LMS) with one registered
application and the demo learner (learner / learner-password), until Ctrl-C.

options:
  --bind ADDR             where to listen (default 127.0.0.1:8090)
  --client-id ID          the application's client id (default my-app)
  --grant-type GRANT      authorization-code (default), client-credentials or password
                          (password: a public client, without a secret)
  --redirect-uri URI      a redirect URI of the application; repeat for more
                          (authorization-code needs at least one)
  --skip-authorization    no consent page
  --logout-uri URI        a front-channel logout URL the LMS logout loads in an iframe
                          (IDA_LOGOUT_URI_LIST); repeat for more
  --jwt-lifetime SECS     how long JWTs live (default 3600)

The client secret is OPENEDX_STANDIN_CLIENT_SECRET if set, else a random one; it is printed,
never taken from the command line.";

struct Options {
    bind: SocketAddr,
    client_id: String,
    grant_type: GrantType,
    redirect_uris: Vec<String>,
    skip_authorization: bool,
    logout_uris: Vec<String>,
    jwt_lifetime: Duration,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        bind: SocketAddr::from(([127, 0, 0, 1], 8090)),
        client_id: "my-app".into(),
        grant_type: GrantType::AuthorizationCode,
        redirect_uris: Vec::new(),
        skip_authorization: false,
        logout_uris: Vec::new(),
        jwt_lifetime: Duration::from_secs(3600),
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
            "--client-id" => options.client_id = value()?,
            "--grant-type" => {
                options.grant_type = match value()?.as_str() {
                    "authorization-code" => GrantType::AuthorizationCode,
                    "client-credentials" => GrantType::ClientCredentials,
                    "password" => GrantType::Password,
                    other => {
                        return Err(format!(
                            "--grant-type: {other:?} is not authorization-code, \
                             client-credentials or password"
                        ));
                    }
                }
            }
            "--redirect-uri" => options.redirect_uris.push(value()?),
            "--skip-authorization" => options.skip_authorization = true,
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
    if options.grant_type == GrantType::AuthorizationCode && options.redirect_uris.is_empty() {
        return Err(
            "an authorization-code application needs --redirect-uri URI, the address \
                    your app receives the code at"
                .into(),
        );
    }
    Ok(Some(options))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "openedx-standin: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let Some(options) = parse(std::env::args().skip(1))? else {
        println!("{USAGE}");
        return Ok(());
    };
    let secret = match options.grant_type {
        GrantType::Password => String::new(),
        _ => std::env::var("OPENEDX_STANDIN_CLIENT_SECRET")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("dev-{:032x}", rand::random::<u128>())),
    };
    let client = RegisteredClient {
        grant_type: options.grant_type,
        skip_authorization: options.skip_authorization,
        owner: format!("{}-service", options.client_id),
        ..RegisteredClient::authorization_code(&options.client_id, &secret, options.redirect_uris)
    };
    let settings = Settings {
        jwt_lifetime: options.jwt_lifetime,
        ida_logout_uri_list: options.logout_uris,
        ..Settings::default()
    };
    let learner = LmsUser::demo_learner();
    let lms = StandIn::builder()
        .bind(options.bind)
        .settings(settings.clone())
        .user(learner.clone())
        .client(client.clone())
        .start()
        .await
        .map_err(|e| format!("--bind: cannot listen on {}: {e}", options.bind))?;

    let url = lms.url();
    println!("openedx-standin: a development stand-in for the Open edX LMS, not a real LMS.");
    println!();
    println!("LMS_URL={url}");
    println!("LMS_CLIENT_ID={}", client.client_id);
    if !client.is_public() {
        println!("LMS_CLIENT_SECRET={secret}");
    }
    println!();
    let grant = match client.grant_type {
        GrantType::AuthorizationCode => format!(
            "authorization-code, redirect URIs {}",
            client.redirect_uris.join(" ")
        ),
        GrantType::ClientCredentials => {
            format!("client-credentials, tokens act as {}", client.owner)
        }
        GrantType::Password => "password, a public client (no secret)".into(),
    };
    println!("  application     {grant}");
    println!(
        "  sign in as      {} / {}",
        learner.username, learner.password
    );
    println!(
        "  JWTs            HS256 with JWT secret {:?}, aud {:?}, iss \"{}oauth2\"",
        settings.jwt_secret, settings.jwt_audience, url
    );
    println!("  log out at      {url}logout");
    println!("  Stop with Ctrl-C.");
    // Not `?`: a closed stdout must not stop the server it describes.
    let _ = std::io::stdout().flush();

    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    drop(lms);
    Ok(())
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
            .map(|o| o.redirect_uris);
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
        assert!(
            options.is_some_and(|o| o.grant_type == GrantType::ClientCredentials
                && o.jwt_lifetime == Duration::from_secs(30)
                && o.bind.port() == 0)
        );
        assert!(parse(args(&["--bind"])).is_err());
        assert!(parse(args(&["--grant-type", "implicit"])).is_err());
        assert!(matches!(parse(args(&["--help"])), Ok(None)));
    }
}
