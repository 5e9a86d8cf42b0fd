//! A service that calls LMS APIs as itself, with client credentials: the token is asked for once
//! and renewed a minute before it expires, however many calls share it.
//!
//! ```sh
//! OPENEDX_STANDIN_CLIENT_SECRET=reports-secret openedx-standin \
//!     --grant-type client-credentials --client-id reports
//! LMS_URL=http://127.0.0.1:8090/ LMS_CLIENT_ID=reports LMS_CLIENT_SECRET=reports-secret \
//!     cargo run --example service
//! ```

use std::{collections::HashMap, process::ExitCode, time::Duration};

use openedx_client::{ClientConfig, ClientCredentialsAuthorizer, LmsClient};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Display, not Debug: the errors say what happened and hold no secret.
            eprintln!("service: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // LMS_URL, LMS_CLIENT_ID, LMS_CLIENT_SECRET, and the optional LMS_* settings.
    let vars: HashMap<String, String> = std::env::vars().collect();
    let client = LmsClient::new(ClientConfig::from_vars(&vars)?)?;
    let authorizer = ClientCredentialsAuthorizer::new(client, Duration::from_secs(60));

    let me = authorizer.get("/api/user/v1/me").await?;
    println!("the LMS knows this service as {}", me["username"]);
    let (a, b) = tokio::join!(
        authorizer.get("/api/enrollment/v1/enrollment"),
        authorizer.get("/api/user/v1/me"),
    );
    println!(
        "{} enrollments; still {}",
        a?.as_array().map_or(0, Vec::len),
        b?["username"]
    );
    Ok(())
}
