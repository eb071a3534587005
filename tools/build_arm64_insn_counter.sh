#!/usr/bin/env bash
# Builds the ARM cost proxy's instruction counter: bookworm's qemu-user 7.2 (it loads TCG plugins;
# the static qemu 10 of install_arm64_runtime.sh cannot) with a plugin that counts the arm64
# instructions a program executes (tools/arm64_insn_count.c), in a cache folder.
#
#   tools/build_arm64_insn_counter.sh  # -> ${GHOSTNET_ARM64_INSN_DIR:-~/.cache/ghostnet_keras/arm64-insn}
#   <dir>/count-insns CPU OUTFILE PROGRAM [ARGS...]   # cortex-a76 or cortex-a53; OUTFILE gets the count
#
# Nothing on the system changes. With a private apt configuration (bookworm, deb and deb-src,
# own lists and cache) it downloads qemu-user 7.2 and the libraries it links that a host may
# lack (libcapstone4, liburing2, libglib2.0-0, libgnutls30, libaio1), unpacked with dpkg-deb
# into lib/ (run with LD_LIBRARY_PATH); qemu's source package, for include/qemu/qemu-plugin.h
# (7.2's needs no glib headers; a header that includes glib.h gets libglib2.0-dev's, unpacked);
# then compiles the plugin with gcc -shared -fPIC.
# qemu 7.2 shows arm64 programs the host's /proc/cpuinfo, and LiteRT's cpuinfo crashes on it:
# count-insns runs qemu in a private mount namespace (unshare -m; unshare -r -m when not root)
# with a fake arm64 /proc/cpuinfo of the emulated core bind-mounted over the host's.
# The arm64 sysroot (tools/install_arm64_runtime.sh) is used for the final check only.
# Idempotent: a second run only checks the stamp and returns at once.
set -euo pipefail

LIBRARIES=(libcapstone4 liburing2 libglib2.0-0 libgnutls30 libaio1)
STAMP_NAME="installed-qemu-7.2-plugin-v1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_file="$here/arm64_insn_count.c"
target="${GHOSTNET_ARM64_INSN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ghostnet_keras/arm64-insn}"
arm64_runtime="${GHOSTNET_ARM64_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ghostnet_keras/arm64}"
stamp="$target/$STAMP_NAME"
say() { echo "arm64 instruction counter: $*"; }
fail() { echo "arm64 instruction counter: cannot build: $*" >&2; exit 1; }

if [[ -f "$stamp" && ! "$source_file" -nt "$stamp" ]]; then
  say "already built in $target"
  exit 0
fi
[[ "$(uname -m)" == "x86_64" ]] || fail "set up for x86_64 hosts only (this is $(uname -m))"
for tool in apt-get dpkg-deb tar xz gcc unshare mount; do
  command -v "$tool" >/dev/null || fail "'$tool' not found (needs a Debian/Ubuntu system with apt and gcc)"
done
[[ -f "$source_file" ]] || fail "$source_file not found (it lives in the source checkout)"

staging="$target.tmp.$$"
work="$(mktemp -d)"
trap 'rm -rf "$work" "$staging"' EXIT
mkdir -p "$staging/lib" "$staging/include" "$work/debs" "$work/src"
# shellcheck source=tools/private_apt.sh
source "$here/private_apt.sh"
private_apt_config "$work" "deb deb-src" "bookworm bookworm-updates" amd64
say "reading Debian's package lists (bookworm, binary and source)"
apt-get "${apt_options[@]}" -qq update \
  || fail "'apt-get update' failed (no access to deb.debian.org?)"

say "downloading qemu-user and ${LIBRARIES[*]}"
(cd "$work/debs" && apt-get "${apt_options[@]}" -qq download qemu-user/bookworm \
  "${LIBRARIES[@]}") \
  || fail "apt could not download qemu-user (bookworm) or ${LIBRARIES[*]}"
qemu_deb="$(ls "$work"/debs/qemu-user_*.deb)"
qemu_version="$(dpkg-deb -f "$qemu_deb" Version)"
[[ "$qemu_version" == 1:7.2* ]] || fail "bookworm's qemu-user is $qemu_version, expected 7.2"
# A binNMU (+bN) has its source's version in the Source field: "qemu (1:7.2+dfsg-7+deb12u18)".
source_version="$(dpkg-deb -f "$qemu_deb" Source | sed -n 's/.*(\(.*\)).*/\1/p')"
source_version="${source_version:-$qemu_version}"

say "downloading qemu's source package ($source_version) for qemu-plugin.h"
(cd "$work/src" && apt-get "${apt_options[@]}" -qq source --download-only "qemu=$source_version") \
  || fail "apt could not download the qemu source package (deb-src for bookworm)"
orig="$(ls "$work"/src/qemu_*.orig.tar.*)"
tar -xf "$orig" -C "$work/src" --wildcards '*/include/qemu/qemu-plugin.h' \
  || fail "no include/qemu/qemu-plugin.h in $(basename "$orig")"
header="$(find "$work/src" -path '*/include/qemu/qemu-plugin.h' | head -1)"
cp "$header" "$staging/include/qemu-plugin.h"

for deb in "$qemu_deb" "${LIBRARIES[@]/#/$work/debs/}"; do
  [[ "$deb" == *.deb ]] || deb="$(ls "$deb"_*.deb)"
  dpkg-deb -x "$deb" "$work/root"
done
mkdir -p "$staging/bin"
mv "$work/root/usr/bin/qemu-aarch64" "$staging/bin/qemu-aarch64"
cp -a "$work"/root/usr/lib/x86_64-linux-gnu/*.so* "$work"/root/lib/x86_64-linux-gnu/*.so* \
  "$staging/lib/" 2>/dev/null || true
missing="$(LD_LIBRARY_PATH="$staging/lib" ldd "$staging/bin/qemu-aarch64" | grep 'not found' || true)"
[[ -z "$missing" ]] || fail "qemu-aarch64 7.2 still lacks libraries: $missing"

glib_flags=()
if grep -q '<glib.h>' "$staging/include/qemu-plugin.h"; then  # qemu >= 8.2's header; 7.2's not
  say "downloading libglib2.0-dev (qemu-plugin.h includes glib.h)"
  (cd "$work/debs" && apt-get "${apt_options[@]}" -qq download libglib2.0-dev) \
    || fail "apt could not download libglib2.0-dev"
  dpkg-deb -x "$(ls "$work"/debs/libglib2.0-dev_*.deb)" "$work/dev"
  glib_flags=(-I"$work/dev/usr/include/glib-2.0"
    -I"$work/dev/usr/lib/x86_64-linux-gnu/glib-2.0/include")
fi
say "compiling $(basename "$source_file") against qemu-plugin.h"
gcc -O2 -Wall -Werror -shared -fPIC "${glib_flags[@]}" -I"$staging/include" \
  -o "$staging/arm64_insn_count.so" "$source_file" \
  || fail "gcc could not compile $source_file"

# Fake /proc/cpuinfo of each emulated core (one entry per host CPU, as cpuinfo counts them).
write_cpuinfo() {  # name part variant revision features
  local count i
  count="$(getconf _NPROCESSORS_CONF)"
  for ((i = 0; i < count; i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: %s\nCPU implementer\t: 0x41\n' \
      "$i" "$5"
    printf 'CPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
      "$3" "$2" "$4"
  done >"$staging/cpuinfo-$1"
}
write_cpuinfo cortex-a76 0xd0b 0x4 1 \
  "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
write_cpuinfo cortex-a53 0xd03 0x0 4 "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"

cat >"$staging/count-insns" <<'WRAPPER'
#!/usr/bin/env bash
# count-insns CPU OUTFILE PROGRAM [ARGS...]: runs an arm64 program under qemu-aarch64 7.2 on the
# emulated CPU (cortex-a76 or cortex-a53) with the instruction-counting plugin; OUTFILE gets the
# number of guest instructions executed. Extra qemu options go in QEMU_LD_PREFIX etc. (qemu's env).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -ge 3 ]] || { echo "usage: count-insns CPU OUTFILE PROGRAM [ARGS...]" >&2; exit 2; }
cpu="$1" outfile="$2"
shift 2
[[ -f "$here/cpuinfo-$cpu" ]] || { echo "count-insns: no fake /proc/cpuinfo for '$cpu' (have: $(cd "$here" && ls cpuinfo-* | sed 's/cpuinfo-//' | tr '\n' ' '))" >&2; exit 2; }
namespace=(unshare -m)
[[ "$(id -u)" == 0 ]] || namespace=(unshare -r -m)
exec "${namespace[@]}" bash -c 'mount --bind "$1" /proc/cpuinfo && shift && exec "$@"' bash \
  "$here/cpuinfo-$cpu" env LD_LIBRARY_PATH="$here/lib" "$here/bin/qemu-aarch64" -cpu "$cpu" \
  -plugin "$here/arm64_insn_count.so,outfile=$outfile" "$@"
WRAPPER
chmod +x "$staging/count-insns"

if [[ -x "$arm64_runtime/sysroot/usr/bin/python3.11" ]]; then
  say "checking: counting python3.11 -c pass on the emulated cortex-a76"
  "$staging/count-insns" cortex-a76 "$work/count" -L "$arm64_runtime/sysroot" \
    "$arm64_runtime/sysroot/usr/bin/python3.11" -S -c pass 2>"$work/check.log" \
    || { tail -20 "$work/check.log" >&2; fail "qemu-aarch64 7.2 with the plugin failed (see above)"; }
  [[ "$(cat "$work/count" 2>/dev/null)" =~ ^[1-9][0-9]*$ ]] \
    || fail "the plugin wrote no instruction count"
  say "python3.11 -S -c pass: $(cat "$work/count") instructions"
else
  say "no arm64 sysroot in $arm64_runtime (tools/install_arm64_runtime.sh): not checked"
fi
{
  echo "qemu-user $qemu_version"
  for deb in "$work"/debs/*.deb; do basename "$deb"; done
  basename "$orig"
} >"$staging/$STAMP_NAME"
rm -rf "$target"
mkdir -p "$(dirname "$target")"
mv "$staging" "$target"
say "qemu-aarch64 $qemu_version and the counting plugin built in $target"
