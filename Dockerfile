# One image per safecity binary, from this one file. Build from the repository
# root (the workspace: every member's manifest is needed), with BuildKit
# (Docker 23 or newer; `docker buildx build` elsewhere; buildah/podman work
# too), passing the image's row of the table:
#
#   docker build --build-arg PACKAGE=safecity-fire-post --build-arg BIN=fire-post \
#     --build-arg PORTS="9090" -t ghcr.io/safecity/fire-post:0.1.0 .
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
# The ports are every containerPort the manifests give the image (map-pin:
# 9090 for the function's ops, 8080 for `map-pin serve`); PORTS is that list,
# space-separated. The detector on a GPU node: Dockerfile.cuda.
#
# Every image runs as the distroless non-root user (uid and gid 65532), the
# user the manifests expect; the binary is /usr/local/bin/<BIN>, started
# through /usr/local/bin/entrypoint (a link to it), so that the entrypoint is
# the same for every image. Configuration (camera registry, class map, model
# files, secrets) is mounted by the manifests, never baked in.
#
# Stages: `build` compiles <BIN> of <PACKAGE> on RUST_IMAGE (cargo's registry
# and target folder in cache mounts, shared by the images) into /out, without
# the release profile's line tables (`objcopy --strip-debug`: a fifth of the
# size; the symbols stay, so a backtrace still names its functions);
# `prebuilt` takes a binary built elsewhere instead, from a build context
# named `bin` holding <BIN> and the link `entrypoint -> <BIN>`; `binaries`
# is whichever of the two BINARIES names; `runtime` (the last stage, the
# default target) copies /out onto RUNTIME_BASE. Two ways to build:
#
# - from source, the default (BINARIES=build): the command above. Only the
#   `build` and `runtime` stages run (BuildKit skips `prebuilt`).
# - from prebuilt binaries (BINARIES=prebuilt): what scripts/images.sh does
#   with buildah where no image can be pulled: the workspace's release
#   binaries (built on Debian 12 like the distroless base, stripped the same
#   way) on a Debian 12 base it makes with debootstrap from the packages of
#   distroless cc-debian12 (RUNTIME_BASE). `bin` holds the binary and the
#   link; the `build` stage does not run:
#
#     buildah bud --isolation chroot -f Dockerfile --target runtime \
#       --build-arg PACKAGE=safecity-fire-post --build-arg BIN=fire-post \
#       --build-arg PORTS=9090 --build-arg BINARIES=prebuilt \
#       --build-arg RUNTIME_BASE=localhost/safecity-base:bookworm \
#       --build-context bin=DIR -t ghcr.io/safecity/fire-post:0.1.0 .
#
#   `scripts/images.sh --from-source scaler` builds through the `build` stage
#   instead (on a stand-in for rust:1-bookworm: RUST_IMAGE). Either way the
#   script then checks every image against the manifests: user, entrypoint,
#   ports, and a start of each Deployment's container (manifests/README.md,
#   "Images").

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot
ARG BINARIES=build

FROM ${RUST_IMAGE} AS build
ARG PACKAGE
ARG BIN
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    test -n "$PACKAGE" && test -n "$BIN" \
 && cargo build --release --locked -p "$PACKAGE" --bin "$BIN" \
 && mkdir -p /out \
 && objcopy --strip-debug "target/release/$BIN" "/out/$BIN" \
 && ln -s "$BIN" /out/entrypoint

FROM scratch AS prebuilt
COPY --from=bin / /out/

FROM ${BINARIES} AS binaries

FROM ${RUNTIME_BASE} AS runtime
ARG PORTS=9090
COPY --from=binaries /out/ /usr/local/bin/
USER 65532:65532
EXPOSE ${PORTS}
ENTRYPOINT ["/usr/local/bin/entrypoint"]
