# A small image of the app. Build: docker build -t profiles .
# Run:   docker run -p 8080:8080 --env-file .env -v profiles-data:/data profiles
# The release build below is the same `cargo build --locked` the tests and CI run, on the same
# files (src, templates, static, migrations are compiled into the binary).

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so editing the app does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --locked --release \
    && rm -rf src
# Templates, static files and migrations are compiled into the binary.
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
