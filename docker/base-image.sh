#!/usr/bin/env bash
# Make the Debian bookworm base image locally (no registry is reachable here): debootstrap a
# minbase root with python3.11, then `podman import` it. Cached: does nothing when the image
# exists, unless REBUILD_BASE=1.
#   docker/base-image.sh [IMAGE]        default IMAGE: localhost/reckoning-base:bookworm
set -euo pipefail

IMAGE="${1:-localhost/reckoning-base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
: "${CONTAINERS_CONF:=$(cd "$(dirname "$0")" && pwd)/podman/containers.conf}"
export CONTAINERS_CONF
podman_() { podman --runtime runc --cgroup-manager=cgroupfs "$@"; }

if [[ "${REBUILD_BASE:-0}" != 1 ]] && podman_ image exists "$IMAGE"; then
  echo "base image $IMAGE: cached"
  exit 0
fi
for tool in debootstrap podman; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install $tool)" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "debootstrap needs root" >&2; exit 1; }

root="$(mktemp -d /var/tmp/reckoning-base.XXXXXX)"
cleanup() {
  for m in proc dev/pts; do mountpoint -q "$root/$m" 2>/dev/null && umount "$root/$m"; done
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT

started=$SECONDS
echo "debootstrap bookworm (minbase) into $root"
debootstrap --variant=minbase bookworm "$root" "$MIRROR" \
  > "$root.debootstrap.log" 2>&1 || { tail -30 "$root.debootstrap.log" >&2; rm -f "$root.debootstrap.log"; exit 1; }
rm -f "$root.debootstrap.log"

cat > "$root/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
SOURCES
# Security updates on top of the release, python3.11 (python3.11-venv brings ensurepip, which the
# image builds its virtualenv with), then drop what a container never needs. Installed in the
# chroot rather than with debootstrap --include, whose one-pass configure fails on python3.11-venv.
mount -t proc proc "$root/proc"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive sh -c '
  apt-get update -qq && apt-get -y -qq upgrade >/dev/null &&
  apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv ca-certificates >/dev/null &&
  apt-get clean' > "$root.apt.log" 2>&1 || { tail -30 "$root.apt.log" >&2; rm -f "$root.apt.log"; exit 1; }
rm -f "$root.apt.log"
umount "$root/proc"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log
# Keep the locale data apt-get would need, drop the translations.
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +

tar --numeric-owner -C "$root" -c . | podman_ import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  - "$IMAGE" >/dev/null
echo "base image $IMAGE: built in $((SECONDS - started)) s ($(podman_ image inspect --format '{{.Size}}' "$IMAGE") bytes)"
