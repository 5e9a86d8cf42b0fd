# A small image of the app. Build: docker build -t profiles .
# Run:   docker run -p 8080:8080 --env-file .env -v profiles-data:/data profiles
# The release build below is the app alone: the LMS stand-in (and its development signing key) is
# only a dev-dependency, for the tests and the demo example, so it is not in the image. Templates, static files and
# migrations are compiled into the binary.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# Three layers, each rebuilt only when what it compiles changes: the dependencies (the workspace's
# manifests, with empty sources for each of its crates and for the test targets a manifest
# names), then the client crate, then the app. An edit to the app recompiles the app alone.
COPY Cargo.toml Cargo.lock ./
COPY crates/openedx-client/Cargo.toml crates/openedx-client/
COPY crates/openedx-standin/Cargo.toml crates/openedx-standin/
RUN mkdir -p src crates/openedx-client/src/bin/openedx crates/openedx-client/tests \
        crates/openedx-standin/src \
    && for main in src/main.rs crates/openedx-client/src/bin/openedx/main.rs \
        crates/openedx-standin/src/main.rs; do echo 'fn main() {}' > "$main"; done \
    && touch src/lib.rs crates/openedx-client/src/lib.rs crates/openedx-standin/src/lib.rs \
        crates/openedx-client/tests/cli.rs crates/openedx-client/tests/readme.rs \
    && cargo build --locked --release \
    && rm -rf crates/openedx-client/src
# The client crate, built by the same command as the app so that the app's build reuses it. The
# app's empty sources stay until its own replace them (the workspace needs a target for each
# member); so do the stand-in's, which the production build never compiles. `touch`: the copied
# files keep their older times, which cargo would take for "unchanged".
COPY crates/openedx-client/src crates/openedx-client/src
# The Open edX facts are the docs of its `wire` module, compiled in from this file.
COPY crates/openedx-client/OPENEDX.md crates/openedx-client/
RUN touch crates/openedx-client/src/lib.rs && cargo build --locked --release
# The app. Templates, static files and migrations are compiled into the binary.
COPY src src
COPY templates templates
COPY static static
COPY migrations migrations
RUN touch src/main.rs src/lib.rs && cargo build --locked --release

FROM debian:bookworm-slim
# TLS roots are built in (rustls with webpki roots) and SQLite is linked in: nothing to install.
# /data holds the database and its key: the app's user alone may enter it.
RUN useradd --system --uid 10001 --home-dir /data profiles \
    && mkdir -m 0700 /data && chown profiles /data
COPY --from=build /src/target/release/profiles /usr/local/bin/profiles
# By number (the user above, and a group of the same number): Kubernetes can check a number,
# not a name, against runAsNonRoot.
USER 10001:10001
WORKDIR /data
ENV BIND=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/profiles.db \
    RUST_LOG=info,sqlx=warn
VOLUME /data
EXPOSE 8080
# The binary asks its own /healthz: the image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["profiles", "healthcheck"]
CMD ["profiles"]
