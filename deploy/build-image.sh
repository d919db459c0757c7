#!/usr/bin/env bash
# Builds the `strata:latest` Docker image without a registry: a `FROM scratch` image holding a
# stripped `strata` binary, the shared libraries it links (as `ldd` lists them, at the same
# paths) and the dynamic loader. glibc's built-in file and DNS lookups resolve compose service
# names, so nothing else is needed. Uses the legacy builder, which needs no base image.
#
#   deploy/build-image.sh                      # cargo build --release, then the image
#   deploy/build-image.sh --binary PATH        # an existing strata binary (debug is fine)
#   deploy/build-image.sh --tag strata:dev --build-dir /tmp/strata-image
#
# Users with a registry can instead use deploy/Dockerfile (a normal multi-stage build).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary=""
tag="strata:latest"
build_dir=""

usage() {
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
        --tag) tag="${2:?--tag needs a name}"; shift 2 ;;
        --build-dir) build_dir="${2:?--build-dir needs a path}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
if [ -z "$binary" ]; then
    (cd "$repo" && cargo build --release -p strata-cli --locked)
    binary="$target_dir/release/strata"
fi
if [ ! -x "$binary" ]; then
    echo "error: '$binary' is not an executable strata binary" >&2
    exit 1
fi
build_dir="${build_dir:-$target_dir/docker-image}"

for tool in docker ldd strip; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: '$tool' is needed to build the image and is not installed" >&2
        exit 1
    fi
done

rm -rf "$build_dir"
rootfs="$build_dir/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$build_dir/data" "$build_dir/certs"
strip --strip-all -o "$rootfs/usr/local/bin/strata" "$binary"

# Every library ldd resolves ("name => /path (addr)") and the loader ("/path (addr)"), copied
# with symlinks followed to the path the binary will look for it at.
libraries="$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')"
if ! grep -q 'ld-linux' <<<"$libraries"; then
    echo "error: ldd found no dynamic loader for '$binary'" >&2
    exit 1
fi
for library in $libraries; do
    mkdir -p "$rootfs$(dirname "$library")"
    cp -L "$library" "$rootfs$library"
done

cat >"$build_dir/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
# Owned by "nobody", so a new named volume mounted here is writable by the server.
COPY --chown=65534:65534 data /data
# Likewise for docker-compose.secure.yml's certificates volume.
COPY --chown=65534:65534 certs /certs
ENV PATH=/usr/local/bin
USER 65534:65534
EXPOSE 7070
ENTRYPOINT ["strata"]
DOCKERFILE

DOCKER_BUILDKIT=0 docker build --quiet --tag "$tag" "$build_dir" >/dev/null
echo "built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{ printf "%.1f MB", $1 / 1000000 }')) from $binary"
