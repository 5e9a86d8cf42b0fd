# A small image of the app. Build: docker build -t profiles .
# Run:   docker run -p 8080:8080 --env-file .env -v profiles-data:/data profiles
# The release build below is the app alone (`--no-default-features`): no `demo`, and so neither the
# LMS stand-in nor its development signing key is in the image. Templates, static files and
# migrations are compiled into the binary.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in a layer of their own, so editing the app does not rebuild them: the
# workspace's manifests, with empty sources for each of its crates.
COPY Cargo.toml Cargo.lock ./
COPY crates/openedx-client/Cargo.toml crates/openedx-client/
COPY crates/openedx-standin/Cargo.toml crates/openedx-standin/
RUN mkdir -p src crates/openedx-client/src/bin/openedx crates/openedx-standin/src \
    && for main in src/main.rs crates/openedx-client/src/bin/openedx/main.rs \
        crates/openedx-standin/src/main.rs; do echo 'fn main() {}' > "$main"; done \
    && touch src/lib.rs crates/openedx-client/src/lib.rs crates/openedx-standin/src/lib.rs \
    && cargo build --locked --release --no-default-features \
    && rm -rf src crates/openedx-client/src
# The app and the client crate; the stand-in's empty sources stay, as the workspace lists it.
COPY src src
COPY templates templates
COPY static static
COPY migrations migrations
COPY crates/openedx-client/src crates/openedx-client/src
RUN touch src/main.rs src/lib.rs crates/openedx-client/src/lib.rs \
    && cargo build --locked --release --no-default-features

FROM debian:bookworm-slim
# TLS roots are built in (rustls with webpki roots) and SQLite is linked in: nothing to install.
# /data holds the database and its key: the app's user alone may enter it.
RUN useradd --system --uid 10001 --home-dir /data profiles \
    && mkdir -m 0700 /data && chown profiles /data
COPY --from=build /src/target/release/profiles /usr/local/bin/profiles
USER profiles
WORKDIR /data
ENV BIND=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/profiles.db \
    RUST_LOG=info,sqlx=warn
VOLUME /data
EXPOSE 8080
# The binary asks its own /healthz: the image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["profiles", "healthcheck"]
CMD ["profiles"]
