#!/bin/sh
# install_check.sh BUILD_DIR SOURCE_DIR
#
# What `meson install` gives an operator: installs the build into a
# temporary DESTDIR and checks that spoold, spool, libspool, the man pages
# spool(1), spoold(8) and spoold.conf(5), the sample spoold.conf and the
# systemd unit are there; that the man pages format without warnings and
# name every setting `spoold --help` lists (so does the sample config);
# that the unit passes `systemd-analyze verify` (when systemd-analyze is
# installed); and that the installed spoold starts with the installed
# sample config. The Dockerfile cannot be built here (no container engine),
# so its runtime stage is checked against the installed binaries: every
# shared library spoold and spool need comes from a package it installs.
# Prints what it checks; exit 0 = pass.
set -eu
build=$1
src=$2
tmp=$(mktemp -d /tmp/spool-dist.XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "meson install"; }
root=$tmp/root
find_one() { find "$root" -path "*$1" | head -1; }

for f in /bin/spoold /bin/spool /libspool.so.0 /libspool.a /pkgconfig/libspool.pc /include/spool.h \
         /man/man1/spool.1 /man/man8/spoold.8 /man/man5/spoold.conf.5 /spool/spoold.conf \
         /systemd/system/spoold.service; do
  p=$(find_one "$f")
  [ -n "$p" ] || fail "meson install did not install *$f"
  echo "installed: ${p#$root}"
done
spoold=$(find_one /bin/spoold)
conf=$(find_one /spool/spoold.conf)
unit=$(find_one /systemd/system/spoold.service)
mandir=$(dirname "$(dirname "$(find_one /man/man8/spoold.8)")")

# the man pages format cleanly
for m in "$mandir"/man1/spool.1 "$mandir"/man8/spoold.8 "$mandir"/man5/spoold.conf.5; do
  warn=$(LC_ALL=C.UTF-8 groff -man -ww -z "$m" 2>&1 || true)
  [ -z "$warn" ] || fail "groff warns about $(basename "$m"): $warn"
done
echo "man pages: format without warnings"

# every setting is documented in spoold.conf(5) and in the sample
settings=$("$spoold" --help | sed -n 's/^  --\([a-z-]*\) .*/\1/p' | grep -v '^help$')
[ -n "$settings" ] || fail "spoold --help lists no settings"
for s in $settings; do
  man5=$(echo "$s" | sed 's/-/\\\\-/g')
  grep -q "^\.BR $man5 \|^\.BR $man5\$" "$mandir/man5/spoold.conf.5" || fail "spoold.conf(5) does not describe '$s'"
  [ "$s" = config ] && continue
  grep -Eq "^#?$s( |$)" "$conf" || fail "the sample spoold.conf has no line for '$s'"
done
echo "settings: all $(echo "$settings" | wc -w) in spoold.conf(5) and the sample spoold.conf"

# the unit
grep -q '^Type=notify$' "$unit" || fail "the unit is not Type=notify"
grep -q '^ProtectSystem=strict$' "$unit" || fail "the unit lacks ProtectSystem=strict"
grep -q '^StateDirectory=spool$' "$unit" || fail "the unit keeps no state in /var/lib/spool"
grep -q "^data-dir /var/lib/spool$" "$conf" || fail "the sample config does not put data in /var/lib/spool"
execpath=$(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' "$unit")
confpath=$(sed -n 's/^ExecStart=.* --config \([^ ]*\).*/\1/p' "$unit")
[ -x "$root$execpath" ] || fail "ExecStart names $execpath, which is not installed"
[ -f "$root$confpath" ] || fail "ExecStart reads $confpath, which is not installed"
if command -v systemd-analyze >/dev/null 2>&1; then
  # verify a copy whose paths point into DESTDIR (verify checks that they exist)
  sed "s|$execpath|$root$execpath|" "$unit" >"$tmp/spoold.service"
  MANPATH=$mandir systemd-analyze verify "$tmp/spoold.service" >"$tmp/verify.log" 2>&1 ||
    { cat "$tmp/verify.log"; fail "systemd-analyze verify"; }
  echo "unit: systemd-analyze verify passed"
else
  echo "unit: systemd-analyze not installed; verify skipped"
fi

# the installed spoold takes the installed sample config (flags win over
# the file: a temporary data dir and a free port)
"$spoold" --config "$root$confpath" --data-dir "$tmp/data" --port 0 --port-file "$tmp/port" \
  --http-port 0 >"$tmp/spoold.log" 2>&1 &
pid=$!
i=0
while [ ! -s "$tmp/port" ]; do
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/spoold.log"; pid=""; fail "spoold refused the sample config"; }
  i=$((i + 1))
  [ $i -lt 200 ] || fail "spoold did not listen within 10 s"
  sleep 0.05
done
kill -TERM "$pid"
wait "$pid" || fail "spoold did not stop cleanly"
pid=""
echo "sample config: accepted by spoold --config"

# the Dockerfile's runtime packages provide every library the binaries need
runtime=$(sed -n '/^FROM debian:12-slim/,$p' "$src/Dockerfile")
for bin in "$spoold" "$(find_one /bin/spool)"; do
  for lib in $(readelf -d "$bin" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do
    case $lib in libc.so.*|libm.so.*|ld-linux*|libasan.so.*|libubsan.so.*|libtsan.so.*) continue ;; esac # sanitizer builds
    pkg=$(dpkg -S "*/$lib" 2>/dev/null | head -1 | cut -d: -f1)
    [ -n "$pkg" ] || fail "no Debian package provides $lib"
    echo "$runtime" | grep -q "[[:space:]]$pkg\b" || fail "the Dockerfile's runtime stage does not install $pkg ($lib, needed by $(basename "$bin"))"
  done
done
echo "Dockerfile: the runtime stage installs every library spoold and spool need"
echo "install check: ok"
