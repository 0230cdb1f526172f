#!/usr/bin/env bash
# Builds the runtime images here, without Docker and without a registry, and
# checks them against the manifests (manifests/README.md, "Images"):
#
#   1. a Debian 12 base like gcr.io/distroless/cc-debian12:nonroot
#      (localhost/safecity-base:bookworm: the same Debian packages — libc,
#      libssl, libgcc, libgomp, libstdc++, CA bundle, tzdata, netbase — the
#      nonroot user 65532, no shell, no package manager), made once with
#      debootstrap and kept in buildah's store;
#   2. the `runtime` stage of the root Dockerfile, one image per row of its
#      table, with `buildah bud --isolation chroot` on that base, from the
#      workspace's release binaries (BINARIES=prebuilt; line tables
#      stripped, as the Dockerfile's `build` stage does), tagged as the
#      manifests name them (ghcr.io/safecity/<image>:<tag>); and
#      Dockerfile.cuda's `runtime` stage the same way, for its config only;
#      with --from-source, the named images instead go through the
#      Dockerfile's `build` stage, as `docker build` does (below);
#   3. scripts/images/check.py: user, entrypoint and ports of each image
#      (`buildah inspect`) against the table and the rendered manifests, and a
#      start of every Deployment's container as the manifests configure it
#      (`buildah run --isolation chroot`, host network, the local RabbitMQ
#      and PostgreSQL): probes pass, uid 65532, no root filesystem writes,
#      exit 0 on SIGTERM. Then a summary table (also in report.json of the
#      work folder), and the same check on a deliberately broken copy of the
#      first image (root user, wrong entrypoint, extra port), which must fail.
#
# Usage: scripts/images.sh [--build] [--rebuild-base] [--clean] [--from-source] [IMAGE...]
#   --build         run the release build even when the binaries exist
#   --rebuild-base  make the base again (otherwise reused when present)
#   --clean         remove the images afterwards (the base and the builder
#                   stand-in stay, as does buildah's cargo cache in
#                   /var/tmp/buildah-cache)
#   --from-source   build the IMAGEs (at least one) from source through the
#                   Dockerfile's `build` stage (cargo inside the build, on
#                   RUST_IMAGE = localhost/safecity-rust:bookworm, a stand-in
#                   for rust:1-bookworm made here with debootstrap and
#                   rustup; needs static.rust-lang.org and crates.io; slow:
#                   a full release build of each image's crate)
#   IMAGE...        only these rows of the table (default: all, and the CUDA check)
# Environment: SAFECITY_IMAGES_WORK (default /var/tmp/safecity-images),
# SAFECITY_DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Needs root (or sudo) for buildah and debootstrap; installs them (and jq, bc,
# binutils) with apt if absent. Idempotent: a rerun rebuilds the images and
# drops the ones it replaces.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

build=0 rebuild_base=0 clean=0 from_source=0 only=()
for arg in "$@"; do
  case "$arg" in
    --build) build=1 ;;
    --rebuild-base) rebuild_base=1 ;;
    --clean) clean=1 ;;
    --from-source) from_source=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "images.sh: unknown option $arg" >&2; exit 2 ;;
    *) only+=("$arg") ;;
  esac
done
if [ "$from_source" = 1 ] && [ ${#only[@]} -eq 0 ]; then
  echo "images.sh: --from-source needs the images to build that way (e.g. scaler)" >&2
  exit 2
fi

work=${SAFECITY_IMAGES_WORK:-/var/tmp/safecity-images}
mirror=${SAFECITY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
base=localhost/safecity-base:bookworm
rust_image=localhost/safecity-rust:bookworm
started=$(date +%s)
bins=(safecity-scaler motion-gate detector map-pin fire-post caption)

# --- tools and services ------------------------------------------------------
missing=()
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v bc >/dev/null 2>&1 || missing+=(bc)
command -v objcopy >/dev/null 2>&1 || missing+=(binutils)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
scripts/ensure-rabbitmq.sh
scripts/ensure-postgres.sh >/dev/null
scripts/python-peers.sh
scripts/ensure-kubectl.sh
scripts/fetch-yolo-assets.sh
# The work folder is this user's (the script writes plans and logs there);
# what buildah and debootstrap make inside it is root's.
as_root mkdir -p "$work"
as_root chown "$(id -u):$(id -g)" "$work"

# --- the plan: the Dockerfile's table against the manifests -------------------
plan=$work/plan.json
as_root .venv/bin/python scripts/images/check.py plan --out "$plan" >"$work/plan.tsv"

# --- the binaries --------------------------------------------------------------
need_build=$build
for bin in "${bins[@]}"; do [ -x "target/release/$bin" ] || need_build=1; done
if [ "$need_build" = 1 ]; then
  echo "==> cargo build --release (the images' binaries)"
  # The set scripts/up.sh builds, so that both share one build.
  cargo build --release --locked --bins -p safecity-cli -p safecity-scaler -p safecity-motion-gate \
    -p safecity-cctv-sim -p safecity-detector -p safecity-map-pin -p safecity-fire-post -p safecity-caption
fi

# --- debootstrap -----------------------------------------------------------------
# debootstrap_into DIR PACKAGES: Debian 12 minbase plus PACKAGES, brought up
# to the current point release and security updates.
debootstrap_into() {
  local rootfs=$1 include=$2
  as_root rm -rf "$rootfs"
  as_root debootstrap --variant=minbase --include="$include" \
    bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s-security bookworm-security main\n' \
    "$mirror" "$mirror" "$mirror" | as_root tee "$rootfs/etc/apt/sources.list" >/dev/null
  as_root chroot "$rootfs" apt-get update -qq
  as_root chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive \
    apt-get -y -qq -o Dpkg::Use-Pty=0 upgrade >>"$work/debootstrap.log" 2>&1
}

# --- the base --------------------------------------------------------------------
base_s=
if [ "$rebuild_base" = 1 ] || ! as_root buildah inspect --type image "$base" >/dev/null 2>&1; then
  echo "==> base $base: debootstrap bookworm ($mirror)"
  t0=$(date +%s.%N)
  rootfs=$work/rootfs
  debootstrap_into "$rootfs" ca-certificates,netbase,tzdata,libssl3,libgomp1
  ctr=$(as_root buildah from scratch)
  mnt=$(as_root buildah mount "$ctr")
  versions=$(as_root python3 scripts/images/base.py "$rootfs" "$mnt")
  as_root buildah umount "$ctr" >/dev/null
  # Labels in the base's own namespace: the images built on it inherit them.
  as_root buildah config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --user 65532:65532 --workingdir /home/nonroot \
    --label io.safecity.base="Debian 12 (bookworm), the packages of distroless cc-debian12:nonroot" \
    --label io.safecity.base.packages="$(echo "$versions" | paste -sd, - | sed 's/,/, /g')" \
    "$ctr"
  old_base=$(as_root buildah images -q --no-trunc "$base" 2>/dev/null || true)
  as_root buildah commit -q --rm "$ctr" "$base" >/dev/null
  [ -z "$old_base" ] || as_root buildah rmi "$old_base" >/dev/null 2>&1 || true
  as_root rm -rf "$rootfs"
  base_s=$(echo "$(date +%s.%N) - $t0" | bc)
  echo "    $(echo "$versions" | paste -sd' ' -) ($(printf '%.0f' "$base_s") s)"
fi

# --- the builder stand-in (--from-source) -------------------------------------------
# What the official rust:1-bookworm holds that the `build` stage uses: Debian
# 12 with gcc and libc headers (ring and SQLite compile C), rustup's stable
# toolchain in /usr/local/cargo and /usr/local/rustup, cargo on PATH.
rust_s=
if [ "$from_source" = 1 ] && ! as_root buildah inspect --type image "$rust_image" >/dev/null 2>&1; then
  echo "==> builder $rust_image: debootstrap bookworm + rustup (stand-in for rust:1-bookworm)"
  t0=$(date +%s.%N)
  rootfs=$work/rust-rootfs
  debootstrap_into "$rootfs" ca-certificates,curl,gcc,libc6-dev,make,pkg-config
  # The certificate authorities this machine added locally (a TLS-inspecting
  # proxy's, say): rustup and cargo in the builder reach the same servers.
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    as_root cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    as_root chroot "$rootfs" update-ca-certificates >>"$work/debootstrap.log" 2>&1
  fi
  as_root mount -t proc proc "$rootfs/proc"
  as_root chroot "$rootfs" env RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo sh -ec '
    curl -sSf -o /tmp/rustup-init https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init
    chmod +x /tmp/rustup-init
    /tmp/rustup-init -q -y --no-modify-path --profile minimal --default-toolchain stable
    rm /tmp/rustup-init
    chmod -R a+w /usr/local/rustup /usr/local/cargo
    apt-get clean; rm -rf /var/lib/apt/lists/*' >>"$work/debootstrap.log" 2>&1 ||
    { as_root umount "$rootfs/proc"; tail -20 "$work/debootstrap.log" >&2; exit 1; }
  as_root umount "$rootfs/proc"
  ctr=$(as_root buildah from scratch)
  mnt=$(as_root buildah mount "$ctr")
  as_root cp -a "$rootfs/." "$mnt/"
  as_root buildah umount "$ctr" >/dev/null
  as_root buildah config \
    --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /bin/bash --label io.safecity.builder="stand-in for rust:1-bookworm" "$ctr"
  as_root buildah commit -q --rm "$ctr" "$rust_image" >/dev/null
  as_root rm -rf "$rootfs"
  rust_s=$(echo "$(date +%s.%N) - $t0" | bc)
  ctr=$(as_root buildah from --pull=never "$rust_image")
  echo "    $(as_root buildah run --isolation chroot "$ctr" -- rustc --version) ($(printf '%.0f' "$rust_s") s)"
  as_root buildah rm "$ctr" >/dev/null
fi

# --- the images --------------------------------------------------------------------
# buildah 1.28 leaves the `prebuilt` stage's working container and image
# behind (the `FROM ${BINARIES} AS binaries` alias); `--force-rm` errors
# instead. Whatever a build adds that is not the image is removed here.
snapshot() { as_root buildah containers -q --notruncate; as_root buildah images -q --no-trunc -a; }
tidy() { # tidy SNAPSHOT-FILE [OLD-IMAGE-ID]
  local c i
  for c in $(as_root buildah containers -q --notruncate); do
    grep -qx "$c" "$1" || as_root buildah rm "$c" >/dev/null
  done
  for i in $(as_root buildah images -q --no-trunc -a --filter dangling=true); do
    if ! grep -qx "$i" "$1" || [ "$i" = "${2:-}" ]; then as_root buildah rmi "$i" >/dev/null 2>&1 || true; fi
  done
}

times=$work/build-times.tsv
: >"$times"
[ -z "$base_s" ] || printf 'base\t%s\tdebootstrap\n' "$base_s" >>"$times"
[ -z "$rust_s" ] || printf 'builder\t%s\tdebootstrap\n' "$rust_s" >>"$times"
built=()
while IFS=$'\t' read -r image bin ports ref; do
  if [ ${#only[@]} -gt 0 ] && ! printf '%s\n' "${only[@]}" | grep -qx "${image%-cuda}"; then
    continue
  fi
  dockerfile=Dockerfile
  [ "$image" = detector-cuda ] && dockerfile=Dockerfile.cuda
  package=$(jq -r --arg i "${image%-cuda}" '.images[] | select(.image == $i) | .package' "$plan")
  stage=$work/stage/$image
  as_root rm -rf "$stage"
  as_root mkdir -p "$stage"
  source_build=0
  if [ "$from_source" = 1 ] && [ "$image" != detector-cuda ]; then
    source_build=1
    # An empty `bin` context: buildah 1.28 resolves the unused `prebuilt`
    # stage's COPY --from=bin too (BuildKit skips the stage).
    binaries=(--build-arg BINARIES=build --build-arg RUST_IMAGE="$rust_image")
    echo "==> $ref: $dockerfile, target runtime from source (stage build: cargo build --release -p $package --bin $bin), ports $ports"
  else
    # As the Dockerfile's `build` stage does: the release profile's line
    # tables stay in target/release, not in the image.
    as_root objcopy --strip-debug "target/release/$bin" "$stage/$bin"
    as_root ln -s "$bin" "$stage/entrypoint"
    binaries=(--build-arg BINARIES=prebuilt)
    echo "==> $ref: $dockerfile, target runtime, prebuilt target/release/$bin, ports $ports"
  fi
  snapshot >"$work/snapshot"
  old=$(as_root buildah images -q --no-trunc "$ref" 2>/dev/null || true)
  log=$work/build-$image.log
  t0=$(date +%s.%N)
  if ! as_root buildah bud --isolation chroot --layers=false --pull=never \
    -f "$dockerfile" --target runtime \
    --build-arg PACKAGE="$package" --build-arg BIN="$bin" --build-arg PORTS="$ports" \
    --build-arg RUNTIME_BASE="$base" "${binaries[@]}" \
    --build-context bin="$stage" \
    -t "$ref" . >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "images.sh: building $ref failed (log: $log)" >&2
    tidy "$work/snapshot"
    exit 1
  fi
  t1=$(date +%s.%N)
  tidy "$work/snapshot" "$old"
  as_root rm -rf "$stage"
  took=$(echo "$t1 - $t0" | bc)
  printf '%s\t%s\t%s\n' "$image" "$took" "$( [ "$source_build" = 1 ] && echo source || echo prebuilt)" >>"$times"
  echo "    $(printf '%.1f' "$took") s"
  built+=("$image")
done <"$work/plan.tsv"
if [ ${#built[@]} -eq 0 ]; then
  echo "images.sh: no image of the table is named ${only[*]}" >&2
  exit 2
fi

# --- the checks ------------------------------------------------------------------
status=0
as_root .venv/bin/python scripts/images/check.py verify --plan "$plan" --work "$work" \
  --times "$times" "${built[@]}" || status=$?

# The check must be able to fail: a copy of the first image with the root
# user, the binary as entrypoint and an extra port, checked the same way.
if [ $status = 0 ]; then
  image=${built[0]}
  ref=$(awk -F'\t' -v i="$image" '$1 == i { print $4 }' "$work/plan.tsv")
  bin=$(awk -F'\t' -v i="$image" '$1 == i { print $2 }' "$work/plan.tsv")
  broken=localhost/safecity-broken/$image:check
  echo "==> the check against a broken copy of $ref (user 0:0, entrypoint the binary, port 9999)"
  ctr=$(as_root buildah from --pull=never "$ref")
  as_root buildah config --user 0:0 --entrypoint "[\"/usr/local/bin/$bin\"]" --port 9999 "$ctr"
  as_root buildah commit -q --rm "$ctr" "$broken" >/dev/null
  as_root .venv/bin/python scripts/images/check.py verify --plan "$plan" --work "$work" \
    --ref "$image=$broken" --expect "user '0:0'" --expect "entrypoint \[" --expect "exposes" \
    --expect "runs as uid \['0'" --expect "effective capabilities" "$image" >"$work/broken.log" 2>&1 ||
    { tail -20 "$work/broken.log" >&2; status=1; }
  tail -1 "$work/broken.log"
  as_root buildah rmi "$broken" >/dev/null 2>&1 || true
fi

# The CUDA check image is only for its config; --clean drops the rest too.
for image in "${built[@]}"; do
  ref=$(awk -F'\t' -v i="$image" '$1 == i { print $4 }' "$work/plan.tsv")
  if [ "$image" = detector-cuda ] || [ "$clean" = 1 ]; then
    as_root buildah rmi "$ref" >/dev/null 2>&1 || true
  fi
done
as_root rm -rf "$work/smoke" "$work/stage"

echo
echo "==> disk: base and images in buildah's store ($(as_root buildah info --format '{{.store.GraphRoot}}' 2>/dev/null || echo /var/lib/containers/storage))"
as_root buildah images --filter reference="$base" --filter reference='ghcr.io/safecity/*' \
  --format '    {{.Name}}:{{.Tag}}  {{.Size}}' 2>/dev/null || true
echo "    store on disk: $(as_root du -sh /var/lib/containers/storage 2>/dev/null | cut -f1)"
echo "==> images.sh: $( [ $status = 0 ] && echo passed || echo FAILED ) in $(( $(date +%s) - started )) s"
exit $status
