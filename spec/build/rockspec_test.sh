#!/bin/sh
# rockspec_test.sh - TAP: rockspec/xdbtx-scm-1.rockspec installs a module that loads.
#
# Copies the checkout (without build/ and .git) to a temporary directory, adds a probe Lua
# module under lua/xdbtx/ and a probe command under bin/ (so the wildcard install is
# checked even before the project has more of either), then, offline and with HOME in the
# temporary directory:
# - `luarocks --lua-version 5.4 --tree=T make rockspec/xdbtx-scm-1.rockspec`, and a clean
#   lua5.4 whose paths hold only T requires xdbtx, xdbtx.core and encodes/decodes;
# - the same for LuaJIT (luarocks' 5.1 with luajit as its interpreter);
# - `luarocks --lua-version 5.1` with PUC Lua 5.1 headers is refused with the Makefile's
#   message (the rockspec lets 5.1 through for LuaJIT's sake).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
LUA=${LUA:-lua5.4}
LUAJIT=${LUAJIT:-luajit}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xdbtx-rockspec-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; [ -f "${2:-}" ] && sed 's/^/#   /' "$2" | tail -n 25; }
finish() { echo "1..$n"; [ "$failed" -eq 0 ]; exit $?; }

if ! command -v luarocks >/dev/null 2>&1; then
  not_ok "luarocks is installed (sh scripts/deps.sh test installs it)"
  finish
fi
ok "luarocks is installed ($(luarocks --version | head -n 1))"

src="$tmp/src"
mkdir -p "$src"
(cd "$top" && tar --exclude=./build --exclude=./.git -cf - .) | (cd "$src" && tar -xf -)
printf -- '-- probe module of spec/build/rockspec_test.sh\nreturn { probe = true }\n' \
  >"$src/lua/xdbtx/zz_rockspec_probe.lua"
mkdir -p "$src/bin"
printf '#!/usr/bin/env lua5.4\nprint("xdbtx rockspec probe")\n' >"$src/bin/xdbtx-rockspec-probe"
chmod +x "$src/bin/xdbtx-rockspec-probe"

# rocks NAME TREE ARGS...: luarocks ARGS make (in the copy), output in $tmp/NAME.log
rocks() {
  name=$1 tree=$2
  shift 2
  (cd "$src" && env HOME="$tmp/home" timeout 300 luarocks "$@" --tree="$tree" \
     make rockspec/xdbtx-scm-1.rockspec) >"$tmp/$name.log" 2>&1
}
# load NAME INTERP TREE ABI: a clean INTERP with only TREE on its paths runs rockspec_check.lua
load() {
  name=$1 interp=$2 tree=$3 abi=$4
  env -i PATH=/usr/bin:/bin LUA_PATH="$tree/share/lua/$abi/?.lua;$tree/share/lua/$abi/?/init.lua" \
    LUA_CPATH="$tree/lib/lua/$abi/?.so" "$interp" "$top/spec/build/rockspec_check.lua" "$tree" \
    >"$tmp/$name-load.log" 2>&1
}

# Lua 5.4
t54="$tmp/tree54"
if rocks lua54 "$t54" --lua-version 5.4; then
  ok "luarocks --lua-version 5.4 make installs into a temporary tree"
else
  not_ok "luarocks --lua-version 5.4 make installs into a temporary tree" "$tmp/lua54.log"
fi
missing=""
for f in $(cd "$src/lua" && find . -name '*.lua' | sed 's|^\./||'); do
  cmp -s "$src/lua/$f" "$t54/share/lua/5.4/$f" || missing="$missing $f"
done
if [ -z "$missing" ]; then ok "every lua/**/*.lua is installed (probe included)"; else not_ok "Lua modules not installed:$missing"; fi
so="$t54/lib/lua/5.4/xdbtx/core.so"
if [ -f "$so" ] && readelf -d "$so" | grep -q 'FLAGS_1.*NODELETE' && ! readelf -d "$so" | grep -q 'NEEDED.*lua'; then
  ok "lib/lua/5.4/xdbtx/core.so is installed, NODELETE, links no Lua library"
else
  not_ok "lib/lua/5.4/xdbtx/core.so is installed, NODELETE, links no Lua library"
fi
if [ -x "$t54/bin/xdbtx-rockspec-probe" ] && "$t54/bin/xdbtx-rockspec-probe" 2>&1 | grep -q 'xdbtx rockspec probe'; then
  ok "bin/* is installed as commands in the tree's bin/"
else
  not_ok "bin/* is installed as commands in the tree's bin/" "$tmp/lua54.log"
fi
if load lua54 "$LUA" "$t54" 5.4; then
  ok "clean $LUA with only the tree on its paths: require xdbtx, xdbtx.core; encode/decode"
  sed 's/^/#   /' "$tmp/lua54-load.log"
else
  not_ok "clean $LUA with only the tree on its paths: require xdbtx, xdbtx.core; encode/decode" "$tmp/lua54-load.log"
fi

# LuaJIT: luarocks' Lua 5.1 with luajit as the interpreter and LuaJIT's headers
if command -v "$LUAJIT" >/dev/null 2>&1 && pkg-config --exists luajit; then
  tjit="$tmp/treejit"
  cat >"$tmp/luajit-config.lua" <<EOF
lua_interpreter = "$(basename "$(command -v "$LUAJIT")")"
variables = { LUA_DIR = "/usr", LUA_BINDIR = "$(dirname "$(command -v "$LUAJIT")")",
              LUA_INCDIR = "$(pkg-config --variable=includedir luajit)" }
EOF
  if LUAROCKS_CONFIG="$tmp/luajit-config.lua" rocks luajit "$tjit" --lua-version 5.1 &&
     grep -q 'build/luajit' "$tmp/luajit.log"; then
    ok "luarocks --lua-version 5.1 make with LuaJIT as the interpreter builds the LuaJIT module"
  else
    not_ok "luarocks --lua-version 5.1 make with LuaJIT as the interpreter builds the LuaJIT module" "$tmp/luajit.log"
  fi
  if load luajit "$LUAJIT" "$tjit" 5.1; then
    ok "clean $LUAJIT with only the tree on its paths: require xdbtx, xdbtx.core; encode/decode"
  else
    not_ok "clean $LUAJIT with only the tree on its paths: require xdbtx, xdbtx.core; encode/decode" "$tmp/luajit-load.log"
  fi
else
  not_ok "LuaJIT ($LUAJIT) and its headers are installed (sh scripts/deps.sh test)"
fi

# PUC Lua 5.1 (luarocks' default on Debian): refused by the Makefile, with the way out
if [ -r /usr/include/lua5.1/lua.h ]; then
  if ! rocks lua51 "$tmp/tree51" --lua-version 5.1 &&
     grep -q 'Lua 5.1 without LuaJIT; xdbtx builds for Lua 5.4 or LuaJIT 2.1' "$tmp/lua51.log" &&
     [ ! -e "$tmp/tree51/lib/lua/5.1/xdbtx/core.so" ]; then
    ok "luarocks --lua-version 5.1 with PUC Lua 5.1 is refused, naming luarocks --lua-version 5.4"
  else
    not_ok "luarocks --lua-version 5.1 with PUC Lua 5.1 is refused, naming luarocks --lua-version 5.4" "$tmp/lua51.log"
  fi
else
  ok "PUC Lua 5.1 refusal # SKIP no /usr/include/lua5.1/lua.h (liblua5.1-0-dev comes with luarocks)"
fi
finish
