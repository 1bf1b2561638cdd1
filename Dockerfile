# wafload container image for `wafload k8s` (and for running anywhere with Docker).
# Multi-stage: build with the Rust toolchain, ship only the binary on a slim base that has
# sh, tar and base64 (the Job's pods print their results tarball to stdout).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY payloads ./payloads
COPY profiles ./profiles
RUN cargo build --release --locked --bin wafload \
    && strip target/release/wafload

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin wafload
COPY --from=build /src/target/release/wafload /usr/local/bin/wafload
COPY payloads /usr/share/wafload/payloads
USER 10001
ENTRYPOINT ["wafload"]
CMD ["--help"]
