# The vonage-sessions container image.
#
#   docker build -t vonage-sessions .
#   docker run --rm -p 8080:8080 --env-file .env -e VONAGE_SESSIONS__AUTH__MODE=anonymous vonage-sessions
#
# Two stages: an official Rust image compiles a release binary (dependencies in their own
# cached layer); the runtime is distroless (glibc, CA certificates, user nonroot; no shell, no
# package manager, no curl), so the image's own binary is its health check. No build argument
# and no secret: credentials come only from the environment at run time (see .env.example).

# Pinned to the toolchain the project builds and tests with (`rustc --version`).
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /build

# 1. Dependencies alone, cached until Cargo.toml or Cargo.lock changes. The [[bench]], [[test]]
#    and [[example]] tables are dropped (their files are not in the build context and the image
#    needs only the library and the binary; the dependency graph and Cargo.lock are unchanged),
#    the dependencies are built against stub targets, then the stub's own artifacts are removed
#    so that step 2 compiles the real crate.
COPY Cargo.toml Cargo.lock ./
RUN awk '/^ *\[\[ *(bench|test|example) *\]\]/ { skip = 1; next } /^ *\[/ { skip = 0 } !skip' \
      Cargo.toml > Cargo.image.toml \
 && mv Cargo.image.toml Cargo.toml \
 && mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src target/release/vonage-sessions target/release/vonage-sessions.d \
      target/release/libvonage_sessions.* target/release/.fingerprint/vonage-sessions-* \
      target/release/deps/vonage_sessions-* target/release/deps/libvonage_sessions-*

# 2. The service. config/default.toml is compiled into the binary.
COPY config ./config
COPY src ./src
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin vonage-sessions \
 && install -m 0755 target/release/vonage-sessions /usr/local/bin/vonage-sessions

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="vonage-sessions" \
      org.opencontainers.image.description="Creates Vonage Video sessions and mints client tokens, so browsers never hold Vonage credentials" \
      org.opencontainers.image.licenses="MIT"
# The binary reads config/<VONAGE_SESSIONS_ENV>.toml relative to the working directory.
WORKDIR /app
COPY config ./config
COPY --from=build /usr/local/bin/vonage-sessions /usr/local/bin/vonage-sessions
# production.toml: JSON logs, listen on 0.0.0.0:8080, 5 s drain after SIGTERM.
ENV VONAGE_SESSIONS_ENV=production
# nonroot in distroless; numeric so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080
# GET /readyz on server.listen via loopback; exits non-zero while starting or draining.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/vonage-sessions", "healthcheck"]
# Exec form: the binary is PID 1 and receives SIGTERM itself (drain, then exit 0).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/vonage-sessions"]
CMD ["serve"]
