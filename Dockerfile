# One image per safecity binary, from this one file. Build from the repository
# root (the workspace: every member's manifest is needed):
#
#   docker build --build-arg PACKAGE=safecity-fire-post --build-arg BIN=fire-post -t safecity/fire-post .
#
# | image        | PACKAGE               | BIN             | ports      |
# |--------------|-----------------------|-----------------|------------|
# | scaler       | safecity-scaler       | safecity-scaler | 6000, 9090 |
# | motion-gate  | safecity-motion-gate  | motion-gate     | 8080       |
# | detector     | safecity-detector     | detector        | 9090       |
# | map-pin      | safecity-map-pin      | map-pin         | 9090, 8080 |
# | fire-post    | safecity-fire-post    | fire-post       | 9090       |
# | caption      | safecity-caption      | caption         | 9090       |
#
# The detector on a GPU node: Dockerfile.cuda. Every image runs as the
# distroless non-root user (uid 65532), the user the manifests expect; the
# binary is /usr/local/bin/<BIN>, started through /usr/local/bin/entrypoint.
# Configuration (camera registry, class map, model files, secrets) is mounted
# by the manifests, never baked in. scripts/images.sh builds the same images
# with buildah (no Docker engine needed) and checks them.

FROM rust:1-bookworm AS build
ARG PACKAGE
ARG BIN
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    test -n "$PACKAGE" && test -n "$BIN" \
 && cargo build --release --locked -p "$PACKAGE" --bin "$BIN" \
 && mkdir -p /out \
 && cp "target/release/$BIN" /out/ \
 && ln -s "$BIN" /out/entrypoint

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/entrypoint"]
