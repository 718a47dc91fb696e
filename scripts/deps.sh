#!/bin/sh
# deps.sh LEVEL [LUA_PC] - install the Debian packages xdbtx needs, say so, and never
# remove a package the user has.
#
# LEVEL: build (compiler, libmongoc, the Lua headers of LUA_PC: lua5.4, or luajit, for which
# OpenResty's libluajit2-5.1-dev is installed when no LuaJIT headers are; none: the caller
# has its own, as under luarocks), test (adds lua5.4, busted, OpenResty's LuaJIT `luajit2`
# and its headers, luarocks, Python with python3-bson for the test server, clang with its
# libFuzzer runtime, valgrind for the leak checks), fuzz (same as test), openresty (for
# make test-openresty: luajit2's headers, Debian's nginx, its Lua module
# libnginx-mod-http-lua, lua-resty-core, lua-cjson, python3-bson for the test server; the
# apt plan check below keeps a plain-LuaJIT machine's packages). It checks first and asks
# only for what is missing. Before installing it asks apt for the plan (`apt-get -s install`): a plan that
# removes any package (luajit2 and Debian's plain luajit conflict, for one) is printed with
# the reason, nothing is installed, and it exits 3. As root it runs apt-get, with
# passwordless sudo it uses sudo, otherwise it prints the exact command and fails.
# XDBTX_APT / XDBTX_APT_CACHE replace apt-get / apt-cache, and XDBTX_DEPS_ROOT is put before
# the file paths the openresty level looks for (spec/build/deps_test.sh).
set -u
level=${1:-build}
lua_pc=${2:-lua5.4}
APT=${XDBTX_APT:-apt-get}
APT_CACHE=${XDBTX_APT_CACHE:-apt-cache}
root=${XDBTX_DEPS_ROOT:-}
need=""

add() { need="$need $*"; }
has_pc() { pkg-config --exists "$1" 2>/dev/null; }
# OpenResty's LuaJIT (luajit2) headers: luajit.h defines OPENRESTY_LUAJIT, plain LuaJIT's not.
luajit2_headers() {
  has_pc luajit && grep -q OPENRESTY_LUAJIT "$(pkg-config --variable=includedir luajit)/luajit.h" 2>/dev/null
}
# OpenResty's LuaJIT interpreter (Debian package luajit2, command luajit): has table.nkeys.
luajit2_cli() {
  command -v luajit >/dev/null 2>&1 && luajit -e 'require "table.nkeys"' >/dev/null 2>&1
}

command -v cc >/dev/null 2>&1 || add gcc libc6-dev
command -v make >/dev/null 2>&1 || add make
command -v pkg-config >/dev/null 2>&1 || add pkg-config
case "$lua_pc" in
  none) ;;
  *jit*) has_pc "$lua_pc" || add libluajit2-5.1-dev ;;
  *) has_pc "$lua_pc" || add liblua5.4-dev lua5.4 ;;
esac
has_pc libmongoc-1.0 || add libmongoc-dev libbson-dev

if [ "$level" = test ] || [ "$level" = fuzz ]; then
  case " $need " in *" liblua5.4-dev "*) ;; *) has_pc lua5.4 || add liblua5.4-dev ;; esac
  case " $need " in *" lua5.4 "*) ;; *) command -v lua5.4 >/dev/null 2>&1 || add lua5.4 ;; esac
  case " $need " in *" libluajit2-5.1-dev "*) ;; *) luajit2_headers || add libluajit2-5.1-dev ;; esac
  luajit2_cli || add luajit2
  command -v luarocks >/dev/null 2>&1 || add luarocks
  [ -r /usr/share/lua/5.4/busted/runner.lua ] || add lua-busted
  /usr/bin/python3 -c 'import bson' >/dev/null 2>&1 || add python3-bson
  command -v clang >/dev/null 2>&1 || add clang
  command -v valgrind >/dev/null 2>&1 || add valgrind
  [ -n "$(find /usr/lib/llvm-*/lib/clang -name 'libclang_rt.fuzzer-x86_64.a' 2>/dev/null | head -n 1)" ] || add libclang-rt-14-dev
fi

if [ "$level" = openresty ]; then
  case " $need " in *" libluajit2-5.1-dev "*) ;; *) luajit2_headers || add libluajit2-5.1-dev ;; esac
  [ -x "$root/usr/sbin/nginx" ] || add nginx
  [ -r "$root/usr/lib/nginx/modules/ngx_http_lua_module.so" ] || add libnginx-mod-http-lua
  [ -r "$root/usr/share/lua/5.1/resty/core.lua" ] || add lua-resty-core
  [ -n "$(find "$root/usr/lib" -path '*/lua/5.1/cjson.so' 2>/dev/null | head -n 1)" ] || add lua-cjson
  /usr/bin/python3 -c 'import bson' >/dev/null 2>&1 || add python3-bson
fi

[ -z "$need" ] && exit 0
echo "xdbtx: missing Debian packages:$need" >&2

if [ "$(id -u)" = 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo="sudo"
else
  sudo="-"
fi
export DEBIAN_FRONTEND=noninteractive
if [ "$sudo" != "-" ]; then
  $sudo "$APT" update -qq >&2 || { echo "xdbtx: apt-get update failed; nothing was installed" >&2; exit 1; }
fi

# The plan: apt's simulation, which needs no privileges and changes nothing.
plan=$(mktemp)
trap 'rm -f "$plan"' EXIT
# shellcheck disable=SC2086
if ! "$APT" -s install --no-install-recommends $need >"$plan" 2>&1; then
  echo "xdbtx: apt cannot plan the install of:$need; nothing was installed. apt said:" >&2
  sed 's/^/  /' "$plan" >&2
  exit 1
fi

removed=$(sed -n 's/^Remv \([^ ]*\).*/\1/p' "$plan")
if [ -n "$removed" ]; then
  installed=$(sed -n 's/^Inst \([^ ]*\).*/\1/p' "$plan")
  # names in a Conflicts/Breaks field of package $1 (versions and arch qualifiers dropped)
  conflicts_of() {
    "$APT_CACHE" show --no-all-versions "$1" 2>/dev/null |
      sed -n 's/^\(Conflicts\|Breaks\): *//p' | sed 's/[,|]/\n/g' |
      sed 's/(.*//; s/:[a-z0-9]*//; s/[[:space:]]//g'
  }
  echo "xdbtx: NOT installing anything: installing$need would make apt REMOVE packages you have:" >&2
  for r in $removed; do
    why="depends on a package that apt removes or replaces"
    for i in $installed; do
      if conflicts_of "$i" | grep -qx "$r" || conflicts_of "$r" | grep -qx "$i"; then
        why="conflicts with $i, which the install needs"
        break
      fi
    done
    echo "  $r: $why" >&2
  done
  case "$removed" in
    *luajit*)
      echo "xdbtx builds and tests its LuaJIT module against OpenResty's LuaJIT (luajit2," >&2
      echo "libluajit2-5.1-dev), the one Debian's nginx Lua module runs on; Debian's plain" >&2
      echo "luajit / libluajit-5.1-* packages cannot be installed beside it." >&2 ;;
  esac
  echo "What to do: if you do not need them, remove them yourself and run this again:" >&2
  # shellcheck disable=SC2086
  echo "  sudo apt-get remove$(printf ' %s' $removed)" >&2
  echo "To keep them, install what you can by hand (apt-get -s install PACKAGE shows each plan)." >&2
  case "$removed" in
    *luajit*) echo "With plain LuaJIT kept, 'make' and 'make LUA_PC=luajit' still build; 'make test' needs luajit2." >&2 ;;
  esac
  exit 3
fi

if [ "$sudo" = "-" ]; then
  echo "xdbtx: cannot install as $(id -un). Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends$need" >&2
  exit 1
fi
echo "xdbtx: installing:$need (apt's plan removes nothing)" >&2
# shellcheck disable=SC2086
$sudo "$APT" install -y -qq --no-install-recommends $need >&2 || exit 1
echo "xdbtx: installed:$need" >&2
case " $need " in
  *" luarocks "*)
    echo "xdbtx: note: luarocks brings lua5.1, which may now be /usr/bin/lua; xdbtx always runs lua5.4 by name" >&2 ;;
esac
