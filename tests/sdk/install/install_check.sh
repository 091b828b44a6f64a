#!/bin/sh
# install_check.sh BUILD_DIR SANITIZE SPOOL_URL
#
# Installs the build into a temporary DESTDIR (meson install), then builds
# hello.c against the installed libspool using only pkg-config, shared and
# static, and runs both against the spoold at SPOOL_URL. SANITIZE is the
# build's b_sanitize value: a sanitized libspool needs the same -fsanitize
# flags in the program that links it. Prints what it does; exit 0 = pass.
set -eu
build=$1
sanitize=$2
export SPOOL_URL=$3
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/spool-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; exit 1; }
pc=$(find "$tmp/root" -name libspool.pc | head -1)
[ -n "$pc" ] || { echo "no libspool.pc was installed"; exit 1; }
hdr=$(find "$tmp/root" -name spool.h | head -1)
[ -n "$hdr" ] || { echo "no spool.h was installed"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
soname=$(readelf -d "$libdir/libspool.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
echo "installed: $pc, $hdr, soname $soname"
[ "$soname" = libspool.so.0 ] || { echo "soname is '$soname', want libspool.so.0"; exit 1; }

# DESTDIR install: the sysroot points pkg-config's paths into it.
export PKG_CONFIG_PATH="$(dirname "$pc")"
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
cflags=$(pkg-config --cflags libspool)
libs=$(pkg-config --libs libspool)
slibs=$(pkg-config --static --libs libspool)
echo "pkg-config --cflags --libs libspool: $cflags $libs"
extra=""
if [ "$sanitize" != none ] && [ -n "$sanitize" ]; then
  extra="-fsanitize=$sanitize"
fi

cc -std=c11 -Wall -Wextra -Werror $extra $cflags -o "$tmp/hello" "$here/hello.c" $libs
LD_LIBRARY_PATH="$libdir" ldd "$tmp/hello" | grep -q "$libdir/libspool.so.0" ||
  { echo "hello does not load the installed libspool:"; LD_LIBRARY_PATH="$libdir" ldd "$tmp/hello"; exit 1; }
LD_LIBRARY_PATH="$libdir" "$tmp/hello"

# static: libspool.a and what --static adds
staticlibs=$(echo "$slibs" | sed "s|-lspool|$libdir/libspool.a|")
cc -std=c11 -Wall -Wextra -Werror $extra $cflags -o "$tmp/hello-static" "$here/hello.c" $staticlibs
if ldd "$tmp/hello-static" | grep -q libspool; then
  echo "hello-static still links libspool dynamically"; exit 1
fi
"$tmp/hello-static"
echo "install check: ok"
