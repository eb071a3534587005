#!/usr/bin/env bash
# Sets up the arm64 builds of LiteRT and MediaPipe (what Android apps run) in a cache folder, so
# that `ghostnet_keras.tflite.arm64` can run the exports on them, emulated on an x86 machine.
#
#   tools/install_arm64_runtime.sh     # -> ${GHOSTNET_ARM64_DIR:-~/.cache/ghostnet_keras/arm64}
#
# On x86_64 (amd64), nothing on the system changes:
#   qemu/      qemu-user 10 from Debian's bookworm-backports (a static qemu-aarch64; bookworm's
#              own 7.2 shows arm64 programs the host's /proc/cpuinfo and LiteRT then crashes),
#   sysroot/   an arm64 Debian root with python3.11 and the libraries it and the wheels link,
#   site/      the aarch64 wheels of ai-edge-litert, numpy, mediapipe and mediapipe's own
#              dependencies, unzipped (put on PYTHONPATH),
# all downloaded with a private apt configuration (arm64 added, own lists and cache) and
# `pip download --platform ... --only-binary=:all:`, unpacked with dpkg-deb / unzip.
# On an arm64 host nothing is emulated: venv/ is a venv of the native python3 with those wheels.
# Idempotent: a second run only checks the stamp and returns at once. pip's own variables
# (PIP_INDEX_URL, PIP_FIND_LINKS) apply.
set -euo pipefail

QEMU_VERSION="1:10.0.2+ds-2+deb13u1~bpo12+1"
LITERT_VERSION="2.3.0"
MEDIAPIPE_VERSION="1.2.3"
# The sysroot's roots; apt resolves their Depends/Pre-Depends (arm64 only) recursively.
SYSROOT_PACKAGES=(libc6 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
  libstdc++6 libgcc-s1 zlib1g libegl1 libgles2 libgl1 libglib2.0-0 libx11-6 libxext6 libxcb1
  libsm6 libice6)
STAMP_NAME="installed-litert-$LITERT_VERSION-mediapipe-$MEDIAPIPE_VERSION-v1"

target="${GHOSTNET_ARM64_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ghostnet_keras/arm64}"
stamp="$target/$STAMP_NAME"
say() { echo "arm64 runtime: $*"; }
fail() { echo "arm64 runtime: cannot install: $*" >&2; exit 1; }

if [[ -f "$stamp" ]]; then
  say "already installed in $target"
  exit 0
fi

wheels=("ai-edge-litert==$LITERT_VERSION" "mediapipe==$MEDIAPIPE_VERSION" numpy)
staging="$target.tmp.$$"
work="$(mktemp -d)"
trap 'rm -rf "$work" "$staging"' EXIT
rm -rf "$staging"
mkdir -p "$staging"

machine="$(uname -m)"
if [[ "$machine" == "aarch64" || "$machine" == "arm64" ]]; then
  say "arm64 host: a venv of the native python3 with the wheels, nothing emulated"
  # A venv names its own path, so it is made in place; the stamp comes last.
  rm -rf "$target"
  mkdir -p "$target"
  python3 -m venv "$target/venv" || fail "'python3 -m venv' failed (Debian: apt-get install python3-venv)"
  "$target/venv/bin/python" -m pip install --quiet "${wheels[@]}" \
    || fail "pip could not install ${wheels[*]} (is PyPI reachable?)"
  echo "native" >"$stamp"
  say "installed in $target (native)"
  exit 0
fi

[[ "$machine" == "x86_64" ]] || fail "emulation is set up for x86_64 hosts only (this is $machine)"
for tool in apt-get apt-cache dpkg-deb python3 unzip; do
  command -v "$tool" >/dev/null || fail "'$tool' not found (needs a Debian/Ubuntu system with apt, python3 and unzip)"
done

# --- Debian packages: qemu-user (amd64, backports) and the arm64 sysroot -----------------------
# shellcheck source=tools/private_apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/private_apt.sh"
private_apt_config "$work" deb "bookworm bookworm-updates bookworm-backports" "amd64 arm64"
mkdir -p "$work/debs"
say "reading Debian's package lists (bookworm, bookworm-backports; amd64 + arm64)"
apt-get "${apt_options[@]}" -qq update \
  || fail "'apt-get update' failed (no access to deb.debian.org?)"

roots=()
for package in "${SYSROOT_PACKAGES[@]}"; do roots+=("$package:arm64"); done
mapfile -t sysroot_debs < <(
  apt-cache "${apt_options[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "${roots[@]}" \
    | grep -E '^[a-z0-9][^ <]*:arm64$' | sort -u)
((${#sysroot_debs[@]} > 0)) || fail "apt found none of ${SYSROOT_PACKAGES[*]} for arm64"
say "downloading qemu-user $QEMU_VERSION and ${#sysroot_debs[@]} arm64 packages"
(cd "$work/debs" && apt-get "${apt_options[@]}" -qq download "qemu-user:amd64=$QEMU_VERSION") \
  || fail "apt could not download qemu-user=$QEMU_VERSION (bookworm-backports)"
mkdir -p "$work/debs/arm64"
(cd "$work/debs/arm64" && apt-get "${apt_options[@]}" -qq download "${sysroot_debs[@]}") \
  || fail "apt could not download the arm64 sysroot packages"

mkdir -p "$staging/qemu-root" "$staging/sysroot" "$staging/site"
dpkg-deb -x "$work"/debs/qemu-user_*.deb "$staging/qemu-root"
mkdir -p "$staging/qemu"
mv "$staging/qemu-root/usr/bin/qemu-aarch64" "$staging/qemu/qemu-aarch64"
rm -rf "$staging/qemu-root"
for deb in "$work"/debs/arm64/*.deb; do
  dpkg-deb -x "$deb" "$staging/sysroot"
done
# Debian's merged /usr: the loader is looked up as /lib/ld-linux-aarch64.so.1.
for dir in bin lib sbin; do
  if [[ ! -e "$staging/sysroot/$dir" && -d "$staging/sysroot/usr/$dir" ]]; then
    ln -s "usr/$dir" "$staging/sysroot/$dir"
  fi
done

# --- aarch64 wheels -------------------------------------------------------------------------------
say "downloading the aarch64 wheels of ${wheels[*]} (and mediapipe's dependencies)"
python3 -m pip download --quiet --disable-pip-version-check --dest "$work/wheels" \
  --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
  --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 \
  --platform manylinux_2_26_aarch64 --platform manylinux_2_24_aarch64 \
  --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 --platform any \
  "${wheels[@]}" 2>"$work/pip.log" \
  || { tail -20 "$work/pip.log" >&2; fail "pip could not download the aarch64 wheels (is PyPI reachable?)"; }
for wheel in "$work"/wheels/*.whl; do
  unzip -q -o "$wheel" -d "$staging/site"
done

# --- check: the emulated interpreter imports LiteRT and MediaPipe ----------------------------------
python_bin="$staging/sysroot/usr/bin/python3.11"
if ! QEMU_LD_PREFIX="$staging/sysroot" PYTHONPATH="$staging/site" PYTHONNOUSERSITE=1 \
    "$staging/qemu/qemu-aarch64" -L "$staging/sysroot" -cpu cortex-a76 "$python_bin" -c \
    "import numpy, ai_edge_litert.interpreter; from mediapipe.tasks.python import vision" \
    2>"$work/check.log"; then
  tail -20 "$work/check.log" >&2
  fail "the emulated python3.11 cannot import ai_edge_litert and mediapipe (see above)"
fi
{
  echo "qemu-user $QEMU_VERSION"
  for wheel in "$work"/wheels/*.whl; do basename "$wheel"; done
  for deb in "$work"/debs/arm64/*.deb; do basename "$deb"; done
} >"$staging/$STAMP_NAME"

rm -rf "$target"
mkdir -p "$(dirname "$target")"
mv "$staging" "$target"
say "qemu-aarch64, an arm64 python3.11 and LiteRT $LITERT_VERSION / MediaPipe $MEDIAPIPE_VERSION installed in $target"
