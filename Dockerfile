# One image for every llmflow process. The command picks the process:
#   llmflow-api (default) | llmflow-worker | llmflow-webhook | llmflow migrate | llmflow-emulator
# Configuration comes from environment variables (see docker-compose.yml and render.yaml).

# ---------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /build

# Dependency layer: build every third-party crate against stub sources, so that changing the
# project's own code does not rebuild the dependency graph. Rebuilt only when a manifest or
# Cargo.lock changes.
COPY Cargo.toml Cargo.lock ./
# Build settings, among them jemalloc's built-in options.
COPY .cargo .cargo
COPY crates/core/Cargo.toml crates/core/
COPY crates/api/Cargo.toml crates/api/
COPY crates/worker/Cargo.toml crates/worker/
COPY crates/webhook/Cargo.toml crates/webhook/
COPY crates/cli/Cargo.toml crates/cli/
COPY crates/emulator/Cargo.toml crates/emulator/
COPY crates/testkit/Cargo.toml crates/testkit/
COPY crates/system-tests/Cargo.toml crates/system-tests/
COPY crates/netguard/Cargo.toml crates/netguard/
RUN set -eux; \
    mkdir -p crates/core/src crates/netguard/src crates/cli/src crates/testkit/src crates/system-tests/src; \
    touch crates/core/src/lib.rs crates/netguard/src/lib.rs crates/testkit/src/lib.rs crates/system-tests/src/lib.rs; \
    echo 'fn main() {}' > crates/cli/src/main.rs; \
    for c in api worker webhook emulator; do \
        mkdir -p "crates/$c/src"; \
        touch "crates/$c/src/lib.rs"; \
        echo 'fn main() {}' > "crates/$c/src/main.rs"; \
    done; \
    cargo build --release --locked --bins; \
    rm -rf crates

# The real sources. The migrations are embedded into the binaries at compile time
# (embed_migrations!("../../migrations")) and the built-in price table via include_str!.
COPY crates crates
COPY migrations migrations
# COPY keeps the files' original mtimes, which are older than the stub build above: touch them
# so cargo rebuilds the project's own crates instead of shipping the stubs.
RUN set -eux; \
    find crates migrations -type f -exec touch {} +; \
    cargo build --release --locked --bins; \
    mkdir -p /out; \
    for b in llmflow llmflow-api llmflow-worker llmflow-webhook llmflow-emulator; do \
        cp "target/release/$b" /out/; \
    done

# ---------------------------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# TLS uses rustls with the webpki roots compiled in and PostgreSQL is spoken natively
# (no OpenSSL, no libpq); ca-certificates is there for anything that reads the system store.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 llmflow \
    && useradd --system --uid 10001 --gid llmflow --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin llmflow

COPY --from=builder /out/ /usr/local/bin/

WORKDIR /app
# Read at run time; owned by root so the service user cannot change them.
COPY workflows/ /app/workflows/
COPY prompts/ /app/prompts/

ENV LOG_FORMAT=json \
    WORKFLOWS_DIR=/app/workflows \
    PROMPTS_DIR=/app/prompts

USER 10001:10001
EXPOSE 8000
CMD ["llmflow-api"]
