# syntax=docker/dockerfile:1
# Hangar in a container: a release build in the Rust image, then only the binary on a distroless base
# (glibc and CA certificates, no shell, no package manager) running as an unprivileged user.
#
#   docker build -t hangar .
#   docker run -d -p 8080:8080 -v hangar-data:/data \
#     -e HANGAR_PUBLIC_URL=https://files.example.com hangar
#
# Settings come from HANGAR_* variables (README, "Configuration"); secrets are best given as files
# (HANGAR_ADMIN_PASSWORD_FILE=/run/secrets/…, HANGAR_DATABASE_URL_FILE=…).

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# rust-toolchain.toml pins the toolchain; rustup installs it on first use.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p hangar \
 && install -D -m 0755 target/release/hangar /out/usr/local/bin/hangar \
 && install -d -m 0700 -o 65532 -g 65532 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /
ENV HANGAR_LISTEN=0.0.0.0:8080 \
    HANGAR_DATA_DIR=/data
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8080
# `hangar probe` asks GET /readyz on HANGAR_LISTEN: database and storage answer, start-up work done.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/hangar", "probe"]
ENTRYPOINT ["/usr/local/bin/hangar"]
CMD ["serve"]
