#!/bin/sh
# deps_test.sh - TAP: scripts/deps.sh asks for OpenResty's LuaJIT (luajit2), never for
# Debian's plain luajit, and refuses (installing nothing) when apt's plan removes a package;
# its openresty level asks for nginx, its Lua module, lua-resty-core and lua-cjson.
#
# It cannot touch the machine: deps.sh runs with PATH holding only a few real tools and
# fakes (pkg-config, id, luajit, ...) in a temporary directory, and with XDBTX_APT /
# XDBTX_APT_CACHE pointing at fakes that print a canned plan and log their arguments. No
# real apt-get or sudo is reachable. Plans are in the format `apt-get -s install` prints
# (the Remv plan is bookworm's own for luajit2 over plain luajit, plus one dependent).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
deps="$top/scripts/deps.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xdbtx-deps-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
# check DESC CMD...: ok when CMD succeeds; on failure show what deps.sh printed
check() {
  desc=$1
  shift
  if "$@"; then ok "$desc"; else not_ok "$desc"; sed 's/^/#   /' "$tmp/err"; sed 's/^/#   apt: /' "$tmp/apt.log"; fi
}
has() { grep -q -- "$1" "$2"; }
lacks() { ! grep -q -- "$1" "$2"; }
# asked: the word list apt was asked to install for real (empty when it was not)
real_install() { sed -n '/-s install/d; s/^install \(.*\)$/ \1 /p' "$tmp/apt.log"; }
asked() { real_install | grep -q -- " $1 "; }
simulated() { grep -- '-s install' "$tmp/apt.log" | sed 's/$/ /' | grep -q -- " $1 "; }

bin="$tmp/bin"
mkdir -p "$bin" "$tmp/inc2" "$tmp/inc1"
for t in grep sed mktemp rm find head cat tr; do
  ln -s "$(command -v "$t")" "$bin/$t"
done
cat >"$bin/pkg-config" <<'EOF'
#!/bin/sh
case "$1" in
  --exists) shift; for p; do case " $FAKE_PC " in *" $p "*) ;; *) exit 1 ;; esac; done ;;
  --variable=includedir) echo "$FAKE_LUAJIT_INC" ;;
  *) exit 1 ;;
esac
EOF
cat >"$bin/id" <<'EOF'
#!/bin/sh
case "$1" in -u) echo "$FAKE_UID" ;; -un) echo tester ;; esac
EOF
cat >"$tmp/apt-get" <<'EOF'
#!/bin/sh
echo "$*" >>"$FAKE_LOG"
case "$1" in
  -s) cat "$FAKE_PLAN"; exit "${FAKE_SIM_RC:-0}" ;;
esac
exit 0
EOF
cat >"$tmp/apt-cache" <<'EOF'
#!/bin/sh
case "$3" in
  luajit2) echo "Replaces: luajit"; echo "Conflicts: luajit" ;;
  libluajit2-5.1-2) echo "Conflicts: libluajit-5.1-2" ;;
  libluajit2-5.1-dev) echo "Conflicts: libluajit-5.1-dev" ;;
  libluajit2-5.1-common) echo "Conflicts: libluajit-5.1-common" ;;
esac
EOF
echo '#define OPENRESTY_LUAJIT' >"$tmp/inc2/luajit.h"
echo '#define LUAJIT_VERSION "LuaJIT 2.1.0-beta3"' >"$tmp/inc1/luajit.h"
# "installed" stubs: cc make clang valgrind lua5.4 luarocks; luajit is added per case
mkdir -p "$tmp/have"
for t in cc make clang valgrind lua5.4 luarocks; do printf '#!/bin/sh\nexit 0\n' >"$tmp/have/$t"; done
printf '#!/bin/sh\nexit 0\n' >"$tmp/luajit2-cli"
printf '#!/bin/sh\nexit 1\n' >"$tmp/plain-luajit-cli"
chmod +x "$bin"/* "$tmp/apt-get" "$tmp/apt-cache" "$tmp/have"/* "$tmp/luajit2-cli" "$tmp/plain-luajit-cli"

cat >"$tmp/plan-ok" <<'EOF'
Reading package lists...
The following NEW packages will be installed:
  libluajit2-5.1-2 libluajit2-5.1-common libluajit2-5.1-dev luajit2
0 upgraded, 4 newly installed, 0 to remove and 0 not upgraded.
Inst libluajit2-5.1-common (2.1-20230119-1 Debian:12.15/oldstable [all])
Inst libluajit2-5.1-2 (2.1-20230119-1 Debian:12.15/oldstable [amd64])
Inst libluajit2-5.1-dev (2.1-20230119-1 Debian:12.15/oldstable [amd64])
Inst luajit2 (2.1-20230119-1 Debian:12.15/oldstable [amd64])
Conf libluajit2-5.1-common (2.1-20230119-1 Debian:12.15/oldstable [all])
Conf luajit2 (2.1-20230119-1 Debian:12.15/oldstable [amd64])
EOF
cat >"$tmp/plan-remv" <<'EOF'
Reading package lists...
The following packages will be REMOVED:
  libluajit-5.1-2 libluajit-5.1-common libluajit-5.1-dev luajit lua-example-app
0 upgraded, 4 newly installed, 5 to remove and 0 not upgraded.
Remv lua-example-app [1.0-1]
Remv libluajit-5.1-dev [2.1.0~beta3+git20220320+dfsg-4.1+deb12u1]
Remv luajit [2.1.0~beta3+git20220320+dfsg-4.1+deb12u1]
Remv libluajit-5.1-2 [2.1.0~beta3+git20220320+dfsg-4.1+deb12u1]
Remv libluajit-5.1-common [2.1.0~beta3+git20220320+dfsg-4.1+deb12u1]
Inst libluajit2-5.1-common (2.1-20230119-1 Debian:12.15/oldstable [all])
Inst libluajit2-5.1-2 (2.1-20230119-1 Debian:12.15/oldstable [amd64])
Inst libluajit2-5.1-dev (2.1-20230119-1 Debian:12.15/oldstable [amd64])
Inst luajit2 (2.1-20230119-1 Debian:12.15/oldstable [amd64])
EOF
cat >"$tmp/plan-fail" <<'EOF'
Reading package lists...
E: Unable to locate package luajit2
EOF

# run_deps PLAN PATHDIRS LEVEL [LUA_PC]: run deps.sh, exit status in $rc, stderr in $tmp/err
run_deps() {
  plan=$1 path=$2
  shift 2
  : >"$tmp/apt.log"
  env -i PATH="$path" FAKE_PLAN="$tmp/$plan" FAKE_LOG="$tmp/apt.log" FAKE_PC="$FAKE_PC" \
    FAKE_LUAJIT_INC="$FAKE_LUAJIT_INC" FAKE_UID="$FAKE_UID" FAKE_SIM_RC="${FAKE_SIM_RC:-0}" \
    XDBTX_APT="$tmp/apt-get" XDBTX_APT_CACHE="$tmp/apt-cache" XDBTX_DEPS_ROOT="${FAKE_ROOT:-}" \
    /bin/sh "$deps" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
}
# with_luajit CLI: a PATH whose `luajit` is the given stub
with_luajit() { rm -rf "$tmp/jit"; mkdir "$tmp/jit"; ln -s "$tmp/$1" "$tmp/jit/luajit"; echo "$bin:$tmp/have:$tmp/jit"; }

# 1. A fresh bookworm (no Lua, no LuaJIT of either kind, no compiler), plan removes nothing.
FAKE_PC="" FAKE_LUAJIT_INC=/nonexistent FAKE_UID=0
run_deps plan-ok "$bin" test
check "fresh machine: deps.sh test exits 0 when the plan removes nothing (rc=$rc)" [ "$rc" -eq 0 ]
check "fresh machine: the plan is simulated before anything is installed" \
  sh -c "grep -n -- '-s install' '$tmp/apt.log' | head -n 1 | grep -q '^2:' && grep -n '^install ' '$tmp/apt.log' | grep -q '^3:'"
for p in luajit2 libluajit2-5.1-dev luarocks lua5.4 liblua5.4-dev libmongoc-dev gcc make clang valgrind; do
  check "fresh machine: installs $p" asked "$p"
done
check "fresh machine: never asks for plain luajit" sh -c "! grep -qE ' (luajit|libluajit-5\.1-dev|libluajit-5\.1-2)( |$)' '$tmp/apt.log'"
check "fresh machine: says what it installs" has "installing:.* luajit2" "$tmp/err"
check "fresh machine: says it installed it" has "^xdbtx: installed:.* libluajit2-5.1-dev" "$tmp/err"

# 2. The plan removes packages: refuse, name each one and why, install nothing.
run_deps plan-remv "$bin" test
check "removal plan: deps.sh exits 3 (rc=$rc)" [ "$rc" -eq 3 ]
check "removal plan: nothing is installed (only update and the simulation ran)" \
  sh -c "! grep -q '^install ' '$tmp/apt.log' && grep -q -- '^-s install' '$tmp/apt.log'"
check "removal plan: says it installs nothing" has "NOT installing anything" "$tmp/err"
check "removal plan: names luajit and the conflict" has "^  luajit: conflicts with luajit2" "$tmp/err"
check "removal plan: names libluajit-5.1-dev and the conflict" \
  has "^  libluajit-5.1-dev: conflicts with libluajit2-5.1-dev" "$tmp/err"
check "removal plan: names libluajit-5.1-2" has "^  libluajit-5.1-2: conflicts with libluajit2-5.1-2" "$tmp/err"
check "removal plan: names a dependent package and why" \
  has "^  lua-example-app: depends on a package that apt removes" "$tmp/err"
check "removal plan: tells the user what to do" \
  has "sudo apt-get remove lua-example-app libluajit-5.1-dev luajit" "$tmp/err"

# 3. Plain LuaJIT installed (headers without OPENRESTY_LUAJIT, a CLI without table.nkeys):
#    `make test` wants luajit2, which means the removal plan above, which is refused.
FAKE_PC="lua5.4 libmongoc-1.0 luajit" FAKE_LUAJIT_INC="$tmp/inc1"
run_deps plan-remv "$(with_luajit plain-luajit-cli)" test
check "plain LuaJIT present: asks apt for luajit2 and libluajit2-5.1-dev" \
  sh -c "grep -- '-s install' '$tmp/apt.log' | grep ' luajit2\$' | grep -q ' libluajit2-5.1-dev '"
check "plain LuaJIT present: refused with exit 3, nothing installed (rc=$rc)" \
  sh -c "[ $rc -eq 3 ] && ! grep -q '^install ' '$tmp/apt.log'"
check "plain LuaJIT present: explains luajit2 versus plain luajit" has "OpenResty's LuaJIT (luajit2" "$tmp/err"
run_deps plan-remv "$(with_luajit plain-luajit-cli)" build luajit
check "plain LuaJIT present: the build level accepts its headers (no apt call, rc=$rc)" \
  sh -c "[ $rc -eq 0 ] && [ ! -s '$tmp/apt.log' ]"

# 4. Everything present, luajit2 included: apt is never called.
FAKE_LUAJIT_INC="$tmp/inc2"
run_deps plan-remv "$(with_luajit luajit2-cli)" test
check "luajit2 present: nothing missing, apt never called (rc=$rc)" sh -c "[ $rc -eq 0 ] && [ ! -s '$tmp/apt.log' ]"

# 5. The build level for LuaJIT on a machine without it asks for luajit2's headers only.
FAKE_PC="lua5.4 libmongoc-1.0" FAKE_LUAJIT_INC=/nonexistent
run_deps plan-ok "$bin:$tmp/have" build luajit
check "build luajit: installs libluajit2-5.1-dev" asked libluajit2-5.1-dev
check "build luajit: asks for nothing else" sh -c "[ \"\$(sed -n 's/^install -y -qq --no-install-recommends//p' '$tmp/apt.log')\" = ' libluajit2-5.1-dev' ]"

# 6. apt cannot make a plan (unknown package, stale lists): stop, show apt's words.
FAKE_PC="" FAKE_SIM_RC=100
run_deps plan-fail "$bin" test
check "no plan: exits non-zero and installs nothing (rc=$rc)" sh -c "[ $rc -ne 0 ] && ! grep -q '^install ' '$tmp/apt.log'"
check "no plan: shows apt's message" has "Unable to locate package luajit2" "$tmp/err"
FAKE_SIM_RC=0

# 7. Not root, no sudo: the plan is still checked, then the command is printed.
FAKE_UID=1000
run_deps plan-remv "$bin" test
check "not root: a removal plan is refused the same way (rc=$rc)" [ "$rc" -eq 3 ]
run_deps plan-ok "$bin" test
check "not root: prints the apt-get command and fails, installing nothing (rc=$rc)" \
  sh -c "[ $rc -eq 1 ] && ! grep -qE '^(install|update)' '$tmp/apt.log' && grep -q 'sudo apt-get install -y --no-install-recommends.* luajit2' '$tmp/err'"

# 8. The openresty level (make test-openresty): nginx, its Lua module, lua-resty-core and
#    lua-cjson, looked for under XDBTX_DEPS_ROOT, plus luajit2's headers.
FAKE_UID=0 FAKE_PC="lua5.4 libmongoc-1.0" FAKE_LUAJIT_INC=/nonexistent FAKE_ROOT="$tmp/root-none"
mkdir -p "$FAKE_ROOT"
run_deps plan-ok "$bin:$tmp/have" openresty luajit
check "openresty, nothing there: exits 0 (rc=$rc)" [ "$rc" -eq 0 ]
for p in nginx libnginx-mod-http-lua lua-resty-core lua-cjson libluajit2-5.1-dev; do
  check "openresty, nothing there: installs $p" asked "$p"
done
check "openresty: never asks for plain luajit" sh -c "! grep -qE ' (luajit|libluajit-5\.1-dev|libluajit-5\.1-2)( |$)' '$tmp/apt.log'"
check "openresty: the plan is simulated first" simulated libnginx-mod-http-lua
FAKE_ROOT="$tmp/root-all"
mkdir -p "$FAKE_ROOT/usr/sbin" "$FAKE_ROOT/usr/lib/nginx/modules" "$FAKE_ROOT/usr/share/lua/5.1/resty" \
  "$FAKE_ROOT/usr/lib/x86_64-linux-gnu/lua/5.1"
printf '#!/bin/sh\n' >"$FAKE_ROOT/usr/sbin/nginx"
chmod +x "$FAKE_ROOT/usr/sbin/nginx"
: >"$FAKE_ROOT/usr/lib/nginx/modules/ngx_http_lua_module.so"
: >"$FAKE_ROOT/usr/share/lua/5.1/resty/core.lua"
: >"$FAKE_ROOT/usr/lib/x86_64-linux-gnu/lua/5.1/cjson.so"
FAKE_PC="lua5.4 libmongoc-1.0 luajit" FAKE_LUAJIT_INC="$tmp/inc2"
run_deps plan-remv "$bin:$tmp/have" openresty luajit
check "openresty, all there: apt never called (rc=$rc)" sh -c "[ $rc -eq 0 ] && [ ! -s '$tmp/apt.log' ]"
# plain LuaJIT's headers and an nginx without its Lua module: luajit2 means removing the
# user's packages, so nothing is installed
FAKE_LUAJIT_INC="$tmp/inc1"
rm "$FAKE_ROOT/usr/lib/nginx/modules/ngx_http_lua_module.so"
run_deps plan-remv "$bin:$tmp/have" openresty luajit
check "openresty over plain LuaJIT: refused with exit 3, nothing installed (rc=$rc)" \
  sh -c "[ $rc -eq 3 ] && ! grep -q '^install ' '$tmp/apt.log'"
check "openresty over plain LuaJIT: asked apt for the module and luajit2's headers" \
  sh -c "grep -- '-s install' '$tmp/apt.log' | grep ' libnginx-mod-http-lua' | grep -q ' libluajit2-5.1-dev'"
check "openresty over plain LuaJIT: names what it would remove" has "^  luajit: conflicts with luajit2" "$tmp/err"
FAKE_ROOT=""

echo "1..$n"
[ "$failed" -eq 0 ]
