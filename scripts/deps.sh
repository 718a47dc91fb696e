#!/bin/sh
# deps.sh LEVEL [LUA_PC] - install the Debian packages xdbtx needs, and say so.
#
# LEVEL: build (compiler, Lua headers, libmongoc), test (adds busted, LuaJIT,
# Python with python3-bson for the test server, and clang with its
# libFuzzer runtime for the short fuzz pass `make test` runs), fuzz (same). Checks first and installs only what is missing; as root
# it runs apt-get, with passwordless sudo it uses sudo, otherwise it prints
# the exact command and fails.
set -u
level=${1:-build}
lua_pc=${2:-lua5.4}
need=""

add() { need="$need $*"; }
has_pc() { pkg-config --exists "$1" 2>/dev/null; }

command -v cc >/dev/null 2>&1 || add gcc libc6-dev
command -v make >/dev/null 2>&1 || add make
command -v pkg-config >/dev/null 2>&1 || add pkg-config
case "$lua_pc" in
  *jit*) has_pc "$lua_pc" || add libluajit-5.1-dev luajit ;;
  *) has_pc "$lua_pc" || add liblua5.4-dev lua5.4 ;;
esac
has_pc libmongoc-1.0 || add libmongoc-dev libbson-dev

if [ "$level" = test ] || [ "$level" = fuzz ]; then
  has_pc lua5.4 || add liblua5.4-dev
  command -v lua5.4 >/dev/null 2>&1 || add lua5.4
  has_pc luajit || add libluajit-5.1-dev
  command -v luajit >/dev/null 2>&1 || add luajit
  [ -r /usr/share/lua/5.4/busted/runner.lua ] || add lua-busted
  /usr/bin/python3 -c 'import bson' >/dev/null 2>&1 || add python3-bson
fi
if [ "$level" = test ] || [ "$level" = fuzz ]; then
  command -v clang >/dev/null 2>&1 || add clang
  [ -n "$(find /usr/lib/llvm-*/lib/clang -name 'libclang_rt.fuzzer-x86_64.a' 2>/dev/null | head -n 1)" ] || add libclang-rt-14-dev
fi

[ -z "$need" ] && exit 0
echo "xdbtx: installing missing Debian packages:$need" >&2
if [ "$(id -u)" = 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo="sudo"
else
  echo "xdbtx: cannot install as $(id -un). Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y$need" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2 || exit 1
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $need >&2 || exit 1
echo "xdbtx: installed:$need" >&2
