#!/usr/bin/env bash
# An emulated Raspberry Pi 4 for `make test-arm`, built from Debian's packages and cached:
#   $CACHE/root   Debian Bookworm's arm64 python3.11 and the libraries it loads (dpkg-deb -x)
#   $CACHE/qemu   qemu-aarch64 (and qemu-arm) 10.x from Trixie's qemu-user: static binaries
#                 that run on Bookworm; Bookworm's own 7.2 crashes inside LiteRT >= 2.2
#   $CACHE/site   the `edge` extra as a Pi resolves it (markers evaluated for aarch64), plus
#                 pytest and hypothesis, as aarch64 wheels
# No chroot, no binfmt_misc, no change to this machine's apt or dpkg: apt runs on private
# state under $CACHE/apt and only downloads. Idempotent: a stage whose inputs are unchanged
# is skipped (the wheels are redone when pyproject.toml's requirements or the host's pinned
# versions change). CACHE defaults to build/arm64 (git-ignored).
#
#   tools/arm/setup.sh            build what is missing
#   tools/arm/setup.sh --force    rebuild everything
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
project=$(cd "$here/../.." && pwd)
cache=${NEMG_ARM_CACHE:-$project/build/arm64}
host_python=${NEMG_ARM_HOST_PYTHON:-}
if [ -z "$host_python" ]; then
  if [ -x "$project/.venv/bin/python" ]; then host_python=$project/.venv/bin/python
  else host_python=python3; fi
fi
mirror=${NEMG_ARM_DEBIAN_MIRROR:-http://deb.debian.org}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

# Bookworm arm64: python3.11's own packages and every library its interpreter, its
# extension modules (ssl, sqlite3, ctypes, lzma, bz2, readline, dbm, uuid) and LiteRT's
# C++ core load. Not its whole Depends closure: that drags in perl for mime-support.
ROOT_PACKAGES=(python3.11 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
  libc6 libgcc-s1 libstdc++6 gcc-12-base libexpat1 zlib1g libssl3 libffi8 libbz2-1.0
  liblzma5 libsqlite3-0 libcrypt1 libncursesw6 libtinfo6 libreadline8 libuuid1 libdb5.3
  libgdbm6 media-types)
QEMU_TARGETS=(qemu-aarch64 qemu-arm)  # qemu-arm: for a 32-bit (armhf) user space later
QEMU_MIN_MAJOR=8
TOOLS=(pytest hypothesis)  # what runs the checks, named in pyproject's dev extra
# every wheel tag a Pi on Bookworm (glibc 2.36) accepts: pip's --platform takes exact tags
PLATFORMS=(manylinux2014_aarch64)
for v in $(seq 17 36); do PLATFORMS+=("manylinux_2_${v}_aarch64"); done

say() { echo "arm: $*"; }
die() { echo "arm: error: $*" >&2; exit 1; }

force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) die "usage: tools/arm/setup.sh [--force]" ;;
esac

for tool in apt-get dpkg-deb flock sha256sum; do
  command -v "$tool" >/dev/null || die "needs $tool (a Debian machine); none on PATH"
done
[ -r "$keyring" ] || die "needs Debian's archive keyring at $keyring (debian-archive-keyring)"
"$host_python" -c 'import pip, tomllib' 2>/dev/null \
  || die "needs a host Python 3.11+ with pip ($host_python); run 'make venv-edge' first"

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9  # one setup at a time per cache (parallel make, two checkouts sharing one)
logs=$cache/logs
mkdir -p "$logs"

# A private apt: own sources, lists, cache; dpkg's database and architectures untouched.
# apt_for NAME ARCH 'deb line...' -> sets APT (array of apt options) for that apt.
apt_for() {
  local dir=$cache/apt/$1
  mkdir -p "$dir/etc/apt.conf.d" "$dir/etc/preferences.d" "$dir/state/lists/partial" \
    "$dir/cache/archives/partial"
  : > "$dir/state/status"
  printf '%s\n' "$3" > "$dir/etc/sources.list"
  APT=(-q -o "Dir::Etc=$dir/etc" -o "Dir::Etc::sourcelist=$dir/etc/sources.list"
    -o "Dir::Etc::sourceparts=-" -o "Dir::Etc::parts=$dir/etc/apt.conf.d"
    -o "Dir::Etc::preferencesparts=$dir/etc/preferences.d" -o "Dir::State=$dir/state"
    -o "Dir::State::status=$dir/state/status" -o "Dir::Cache=$dir/cache"
    -o "APT::Architecture=$2" -o "APT::Architectures::=$2" -o "Acquire::Languages=none"
    -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1")
}

# run LOG WHAT CMD...: CMD's output to LOG; on failure one line naming WHAT and the log.
run() {
  local log=$1 what=$2
  shift 2
  if ! "$@" >"$log" 2>&1; then
    local why
    # apt's first error names the cause (its last is a summary); pip's last does
    why=$({ grep -m 1 '^E: ' "$log" || grep '^ERROR: ' "$log" | tail -n 1; } | cut -c1-200 \
      || true)
    die "cannot $what${why:+: $why} (log: $log)"
  fi
}

# download_debs NAME ARCH 'deb line...' WHAT OUT PACKAGE...: the packages' .debs into $debs
# (a private apt NAME for ARCH), and an empty OUT to unpack them into.
download_debs() {
  local name=$1 arch=$2 sources=$3 what=$4 out=$5
  shift 5
  apt_for "$name" "$arch" "$sources"
  run "$logs/apt-$name.log" "read the package lists for $what from $mirror" \
    apt-get "${APT[@]}" --error-on=any update
  debs=$cache/apt/$name/debs
  rm -rf "$debs" "$out"
  mkdir -p "$debs" "$out"
  (cd "$debs" && run "$logs/apt-$name.log" "download $what from $mirror" \
    apt-get "${APT[@]}" download "$@")
}

stamp_ok() { [ "$force" = 0 ] && [ -f "$cache/.$1" ] && [ "$(cat "$cache/.$1")" = "$2" ]; }
stamp() { printf '%s\n' "$2" > "$cache/.$1"; }

start=$SECONDS

# ---- 1. Bookworm's arm64 python3.11 -------------------------------------------------------
key=$(printf '%s\n' "$mirror" "${ROOT_PACKAGES[@]}" | sha256sum | cut -c1-16)
if stamp_ok root "$key" && [ -x "$cache/root/usr/bin/python3.11" ]; then
  say "arm64 user space: cached ($cache/root)"
else
  say "arm64 user space: downloading Debian Bookworm's python3.11 for arm64 ..."
  download_debs bookworm-arm64 arm64 "deb [arch=arm64 signed-by=$keyring] $mirror/debian bookworm main
deb [arch=arm64 signed-by=$keyring] $mirror/debian-security bookworm-security main" \
    "Debian Bookworm's arm64 python3.11 packages" "$cache/root.new" \
    "${ROOT_PACKAGES[@]/%/:arm64}"
  for deb in "$debs"/*.deb; do
    dpkg-deb -x "$deb" "$cache/root.new"
  done
  dpkg-deb -f "$debs"/python3.11_*.deb Version > "$cache/root.new/.python-version"
  (cd "$debs" && ls) > "$cache/root.new/.packages"
  rm -rf "$cache/root" "$cache/apt/bookworm-arm64"
  mv "$cache/root.new" "$cache/root"
  stamp root "$key"
  say "arm64 user space: $(wc -l < "$cache/root/.packages") packages," \
    "python3.11 $(cat "$cache/root/.python-version") (${SECONDS}s)"
fi

# ---- 2. a static qemu-user >= 8 --------------------------------------------------------------
key=$(printf '%s\n' "$mirror" "${QEMU_TARGETS[@]}" | sha256sum | cut -c1-16)
if stamp_ok qemu "$key" && [ -x "$cache/qemu/qemu-aarch64" ]; then
  say "qemu: cached ($("$cache/qemu/qemu-aarch64" --version | head -n 1))"
else
  say "qemu: downloading Debian Trixie's qemu-user (static, ~70 MB) ..."
  download_debs trixie-amd64 amd64 "deb [arch=amd64 signed-by=$keyring] $mirror/debian trixie main" \
    "Debian Trixie's qemu-user" "$cache/qemu.new" qemu-user:amd64
  # only the emulators this needs: the package holds all ~30 targets (465 MB unpacked)
  dpkg-deb --fsys-tarfile "$debs"/qemu-user_*.deb \
    | tar -x -C "$cache/qemu.new" --strip-components=3 \
      "${QEMU_TARGETS[@]/#/./usr/bin/}"
  version=$("$cache/qemu.new/qemu-aarch64" --version | head -n 1) \
    || die "the downloaded qemu-aarch64 does not run on this machine"
  major=$(sed -E 's/.*version ([0-9]+)\..*/\1/' <<<"$version")
  [ "$major" -ge "$QEMU_MIN_MAJOR" ] \
    || die "Trixie's qemu-user is $version; LiteRT >= 2.2 needs qemu >= $QEMU_MIN_MAJOR"
  rm -rf "$cache/qemu" "$cache/apt/trixie-amd64"
  mv "$cache/qemu.new" "$cache/qemu"
  stamp qemu "$key"
  say "qemu: $version (${SECONDS}s)"
fi
rmdir "$cache/apt" 2>/dev/null || true

# ---- 3. the edge extra's aarch64 wheels --------------------------------------------------------
reqs=$("$host_python" "$here/requirements.py" --pyproject "$project/pyproject.toml" \
  --extras edge --tools "${TOOLS[@]}" --pin-to-host) \
  || die "cannot read the edge extra's requirements from $project/pyproject.toml"
key=$(printf '%s\n' "$reqs" "${PLATFORMS[@]}" | sha256sum | cut -c1-16)
if stamp_ok site "$key" && [ -d "$cache/site" ]; then
  say "aarch64 wheels: cached ($(tr '\n' ' ' <<<"$reqs"))"
else
  say "aarch64 wheels: installing $(tr '\n' ' ' <<<"$reqs")..."
  rm -rf "$cache/site.new"
  platform_args=()
  for p in "${PLATFORMS[@]}"; do platform_args+=(--platform "$p"); done
  # shellcheck disable=SC2086  # one requirement per word
  run "$logs/pip.log" "install the aarch64 wheels of the edge extra" \
    "$host_python" -m pip --disable-pip-version-check install --no-compile --target \
    "$cache/site.new" --only-binary=:all: "${platform_args[@]}" --implementation cp \
    --python-version 3.11 $reqs
  rm -rf "$cache/site.new/bin"  # x86 launchers for an aarch64 interpreter: unusable
  rm -rf "$cache/site"
  mv "$cache/site.new" "$cache/site"
  stamp site "$key"
  say "aarch64 wheels: $(ls -d "$cache"/site/*.dist-info | sed -E 's|.*/||; s|\.dist-info||' \
    | tr '\n' ' ')(${SECONDS}s)"
fi

# ---- 4. it runs ------------------------------------------------------------------------------
run "$logs/check.log" "start the emulated python3.11 (see the log)" \
  "$here/python" -c 'import platform, ssl, numpy, ai_edge_litert.interpreter; assert platform.machine() == "aarch64"'
say "ready: $(du -sh "$cache" | cut -f1) in $cache (${SECONDS}s; $((SECONDS - start))s this run)"
