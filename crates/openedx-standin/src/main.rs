//! `openedx-standin`: runs the stand-in on a port of your choice with the applications and
//! learners the flags name, and prints what an app needs to sign in against it, in `.env` form.
//! Client secrets never reach stdout (a container's stdout ends up in its logs) unless
//! `--show-secrets` asks for them.
//!
//! The flags are parsed in `cli.rs`; this file runs the stand-in and prints what it serves.

use std::{io::Write, path::PathBuf, process::ExitCode};

use openedx_standin::{GrantType, LmsUser, RegisteredClient, Settings, StandIn};

mod cli;

use cli::{ClientOption, USAGE, parse};

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

/// Where a client's secret can be found, for the printout.
enum SecretSource {
    None,
    Variable(String),
    File(PathBuf),
    Shown,
}

async fn run() -> Result<(), String> {
    let Some(options) = parse(std::env::args().skip(1))? else {
        println!("{USAGE}");
        return Ok(());
    };
    let settings = Settings {
        jwt_lifetime: options.jwt_lifetime,
        ida_logout_uri_list: options.logout_uris.clone(),
        host: options.host.clone(),
        ..Settings::default()
    };
    let learner = LmsUser::demo_learner();
    let mut builder = StandIn::builder()
        .bind(options.bind)
        .settings(settings.clone())
        .user(learner.clone());
    for user in &options.users {
        builder = builder.user(user.clone());
    }
    // Secrets are chosen before the port is known; the files that hold generated ones are
    // written once it is.
    let mut generated = Vec::new();
    let mut sources = Vec::new();
    let mut clients = Vec::new();
    for ClientOption {
        mut client,
        secret_variable,
    } in options.clients
    {
        let source = if client.is_public() {
            SecretSource::None
        } else if let Some(secret) = std::env::var(&secret_variable)
            .ok()
            .filter(|s| !s.is_empty())
        {
            client.client_secret = secret;
            SecretSource::Variable(secret_variable)
        } else {
            client.client_secret = format!("dev-{:032x}", rand::random::<u128>());
            generated.push(clients.len());
            SecretSource::Shown
        };
        sources.push(source);
        builder = builder.client(client.clone());
        clients.push(client);
    }
    let lms = builder
        .start()
        .await
        .map_err(|e| format!("--bind: cannot listen on {}: {e}", options.bind))?;
    if !options.show_secrets {
        let dir = std::env::temp_dir().join(format!("openedx-standin-{}", lms.addr().port()));
        for &i in &generated {
            let path = write_secret(&dir, &clients[i])?;
            sources[i] = SecretSource::File(path);
        }
    }

    let url = lms.url();
    let mut out = String::new();
    out.push_str(
        "openedx-standin: a development stand-in for the Open edX LMS, not a real LMS.\n\n",
    );
    out.push_str(&format!("LMS_URL={url}\n"));
    for (n, (client, source)) in clients.iter().zip(&sources).enumerate() {
        // The first application in .env form; the others as comments, to copy from.
        let prefix = if n == 0 { "" } else { "# " };
        if n > 0 {
            out.push_str("#\n");
        }
        out.push_str(&format!("{prefix}LMS_CLIENT_ID={}\n", client.client_id));
        match source {
            SecretSource::None => {}
            SecretSource::Shown => out.push_str(&format!(
                "{prefix}LMS_CLIENT_SECRET={}\n",
                client.client_secret
            )),
            SecretSource::Variable(variable) => {
                out.push_str(&format!("# LMS_CLIENT_SECRET: the value of {variable}\n"))
            }
            SecretSource::File(path) => out.push_str(&format!(
                "# LMS_CLIENT_SECRET: random, in {} (or run with --show-secrets)\n",
                path.display()
            )),
        }
        let grant = match client.grant_type {
            GrantType::AuthorizationCode => format!(
                "authorization-code, redirect URIs {}",
                client.redirect_uris.join(" ")
            ),
            GrantType::ClientCredentials => {
                format!("client-credentials, tokens act as {}", client.owner)
            }
            GrantType::Password => "password".into(),
        };
        let kind = if client.is_public() {
            "public (no secret)"
        } else {
            "confidential"
        };
        out.push_str(&format!("#   {grant}; {kind}\n"));
    }
    out.push('\n');
    out.push_str(&format!(
        "  sign in as      {} / {}\n",
        learner.username, learner.password
    ));
    for user in &options.users {
        out.push_str(&format!(
            "                  {} / {}\n",
            user.username, user.password
        ));
    }
    out.push_str(&format!(
        "  JWTs            HS256 with JWT secret {:?}, aud {:?}, iss \"{}oauth2\"\n",
        settings.jwt_secret, settings.jwt_audience, url
    ));
    out.push_str(&format!("  log out at      {url}logout\n"));
    out.push_str(&format!(
        "  admin API       {url}_standin (not part of the LMS)\n"
    ));
    out.push_str("  Stop with Ctrl-C.\n");
    // Not `?`: a closed stdout must not stop the server it describes.
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();

    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    drop(lms);
    Ok(())
}

/// Writes a generated secret to `dir/<client id>.secret`, readable by this user only.
fn write_secret(dir: &std::path::Path, client: &RegisteredClient) -> Result<PathBuf, String> {
    let problem = |what: &str, e: std::io::Error| format!("cannot {what}: {e}");
    std::fs::create_dir_all(dir).map_err(|e| problem(&format!("create {}", dir.display()), e))?;
    let name: String = client
        .client_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{name}.secret"));
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let mut file = open
        .open(&path)
        .map_err(|e| problem(&format!("write {}", path.display()), e))?;
    writeln!(file, "{}", client.client_secret)
        .map_err(|e| problem(&format!("write {}", path.display()), e))?;
    Ok(path)
}
