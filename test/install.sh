#!/bin/sh
# install.sh -- install into a temporary prefix and use it as a user would:
# the files in their places, a program built with pkg-config and one with
# find_package(memtally), both run on the installed library, and the
# installed command's run, --version, man page and completion.
# usage: install.sh SOURCE_DIR BUILD_DIR
set -eu
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
P=$tmp/prefix
fail() { echo "install: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$P" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "cmake --install failed"; }
for f in lib/libmemtally.so.0 lib/libmemtally.so lib/libmemtally.a include/memtally.h lib/pkgconfig/memtally.pc \
         lib/cmake/memtally/memtallyConfig.cmake lib/cmake/memtally/memtallyConfigVersion.cmake \
         lib/cmake/memtally/memtallyTargets.cmake bin/memtally share/man/man1/memtally.1 \
         share/bash-completion/completions/memtally; do
  [ -e "$P/$f" ] || fail "missing $f"
done
[ -L "$P/lib/libmemtally.so" ] || fail "lib/libmemtally.so is not the development link"
soname=$(objdump -p "$P/lib/libmemtally.so.0" | awk '/SONAME/ {print $2}')
[ "$soname" = libmemtally.so.0 ] || fail "soname is '$soname', not libmemtally.so.0"

# a program that uses the mt_ API and the malloc family
cat >"$tmp/app.c" <<'C'
#include <memtally.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
  char *p = malloc(100);
  strcpy(p, "installed");
  mt_region *r = mt_region_new(NULL, "install-test");
  void *q = mt_region_alloc(r, 64);
  int ok = q != NULL && mt_usable_size(p) >= 100 && strncmp(mt_version(), "memtally ", 9) == 0;
  mt_region_delete(r);
  printf("%s %s\n", p, ok ? "ok" : "BAD");
  free(p);
  return ok ? 0 : 1;
}
C
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
flags=$(pkg-config --cflags --libs memtally) || fail "pkg-config does not know memtally"
# shellcheck disable=SC2086
cc "$tmp/app.c" $flags -o "$tmp/app_pc" || fail "cannot build with pkg-config ($flags)"
out=$(LD_LIBRARY_PATH="$P/lib" "$tmp/app_pc") || fail "the pkg-config build failed: $out"
[ "$out" = "installed ok" ] || fail "pkg-config build printed '$out'"
LD_LIBRARY_PATH="$P/lib" ldd "$tmp/app_pc" | grep -q "$P/lib/libmemtally.so.0" || fail "app_pc is not linked with the installed library"

mkdir -p "$tmp/cm"
cp "$tmp/app.c" "$tmp/cm/app.c"
cat >"$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(app C)
find_package(memtally 0.1 REQUIRED)
add_executable(app_cmake app.c)
target_link_libraries(app_cmake memtally::memtally)
add_executable(app_static app.c)
target_link_libraries(app_static memtally::memtally_static)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$P" >"$tmp/cm.log" 2>&1 || { cat "$tmp/cm.log"; fail "find_package(memtally) failed"; }
cmake --build "$tmp/cm/build" >>"$tmp/cm.log" 2>&1 || { cat "$tmp/cm.log"; fail "cannot build against memtally::memtally"; }
out=$("$tmp/cm/build/app_cmake") || fail "the find_package build failed: $out"
[ "$out" = "installed ok" ] || fail "find_package build printed '$out'"
out=$("$tmp/cm/build/app_static") || fail "the static build failed: $out"
[ "$out" = "installed ok" ] || fail "static build printed '$out'"

# the installed command: version, run (finds the installed library), man page
"$P/bin/memtally" --version | grep -q "^memtally [0-9]" || fail "memtally --version"
cd "$tmp"
MEMTALLY_LIB= "$P/bin/memtally" run --out "$tmp/prof" -- true >"$tmp/run.log" 2>&1 || { cat "$tmp/run.log"; fail "memtally run -- true"; }
ls "$tmp/prof"/*.exit.pb.gz >/dev/null 2>&1 || { cat "$tmp/run.log"; fail "memtally run wrote no profile"; }
grep -q "^\.SH COMMANDS" "$P/share/man/man1/memtally.1" || fail "the man page has no COMMANDS section"
grep -q "memtally report FILE" "$P/share/man/man1/memtally.1" || fail "the man page lacks report's --help"
bash -c ". '$P/share/bash-completion/completions/memtally' && complete -p memtally" >/dev/null || fail "completion"
echo "install: prefix layout, soname, pkg-config, find_package (shared and static), run, --version, man page: ok"
