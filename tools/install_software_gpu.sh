#!/usr/bin/env bash
# Installs a software Vulkan GPU (Mesa's lavapipe 25.x) into a cache folder, so that LiteRT's GPU
# accelerator (WebGPU through Dawn's Vulkan backend) runs on a machine without a GPU.
#
#   tools/install_software_gpu.sh            # -> ${GHOSTNET_SOFTWARE_GPU_DIR:-~/.cache/ghostnet_keras/software_gpu}
#
# Nothing on the system changes: the Debian packages are downloaded with a private apt
# configuration (Debian's bookworm-backports suite, which carries lavapipe 25.0.7; bookworm's own
# 22.3.6 lacks features Dawn requires) and unpacked with dpkg-deb into the cache folder, with an
# ICD file pointing at the unpacked driver. `ghostnet_keras.tflite.gpu` finds it there and sets
# the Vulkan variables only for the processes that run the GPU accelerator. Idempotent: a second
# run returns at once. On a machine with a real GPU (a /dev/dri render node or /dev/nvidia0 and a
# system Vulkan loader) nothing is installed and the real device is used.
set -euo pipefail

MESA_VERSION="25.0.7-2~bpo12+1"
LOADER_VERSION="1.3.239.0-1"
target="${GHOSTNET_SOFTWARE_GPU_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ghostnet_keras/software_gpu}"
stamp="$target/installed-$MESA_VERSION"

if [[ -f "$stamp" ]]; then
  echo "software GPU: already installed in $target"
  exit 0
fi
if { compgen -G "/dev/dri/renderD*" >/dev/null || [[ -e /dev/nvidia0 ]]; } \
    && ldconfig -p 2>/dev/null | grep -q "libvulkan.so.1"; then
  echo "software GPU: a GPU and a Vulkan loader are present; using the real device, nothing installed"
  exit 0
fi
for tool in apt-get dpkg-deb; do
  if ! command -v "$tool" >/dev/null; then
    echo "software GPU: cannot install: '$tool' not found (needs a Debian/Ubuntu system with apt);" \
         "the GPU accelerator checks will report 'no GPU adapter'" >&2
    exit 1
  fi
done
if [[ "$(dpkg --print-architecture)" != "amd64" ]]; then
  echo "software GPU: only packaged here for amd64 (this is $(dpkg --print-architecture))" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/sources" "$work/debs"
cat >"$work/sources/debian.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt_options=(
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
  -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/sources"
  -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1"
)
echo "software GPU: fetching mesa-vulkan-drivers $MESA_VERSION and libvulkan1 $LOADER_VERSION"
if ! apt-get "${apt_options[@]}" -qq update; then
  echo "software GPU: cannot install: 'apt-get update' failed (no access to deb.debian.org?)" >&2
  exit 1
fi
(cd "$work/debs" && apt-get "${apt_options[@]}" -qq download \
  "mesa-vulkan-drivers=$MESA_VERSION" "libvulkan1=$LOADER_VERSION")

staging="$target.tmp.$$"
rm -rf "$staging"
mkdir -p "$staging/root"
for deb in "$work"/debs/*.deb; do
  dpkg-deb -x "$deb" "$staging/root"
done
lib="$staging/root/usr/lib/x86_64-linux-gnu"
missing="$(ldd "$lib/libvulkan_lvp.so" | grep "not found" || true)"
if [[ -n "$missing" ]]; then
  echo "software GPU: lavapipe needs libraries this system lacks:" >&2
  echo "$missing" >&2
  rm -rf "$staging"
  exit 1
fi
final_lib="$target/root/usr/lib/x86_64-linux-gnu"
cat >"$staging/lvp_icd.json" <<ICD
{"file_format_version": "1.0.0", "ICD": {"library_path": "$final_lib/libvulkan_lvp.so", "api_version": "1.4.305"}}
ICD
echo "$MESA_VERSION" >"$staging/installed-$MESA_VERSION"
rm -rf "$target"
mkdir -p "$(dirname "$target")"
mv "$staging" "$target"
echo "software GPU: lavapipe $MESA_VERSION installed in $target"
