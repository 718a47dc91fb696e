# xdbtx - MongoDB transactions for Lua.
#
#   make                  build the Lua 5.4 module: build/5.4/xdbtx/core.so
#   make luajit           the same sources for LuaJIT/OpenResty (make LUA_PC=luajit):
#                         build/luajit/xdbtx/core.so, tested against OpenResty's luajit2
#   make test             build and run every test (starts the bundled test server)
#   make test-openresty   the checkout service (examples/openresty) in Debian's nginx
#   make demo             run the main example against the test server (or XDBTX_URI*)
#   make check | asan | valgrind | fuzz | bench | install | uninstall | print | clean
#   make bench-base BASE=REV  the codec benchmark against commit REV's build, in one run
#
# Missing system packages are installed by scripts/deps.sh, which says what it
# installs (or prints the apt-get command when it cannot) and never removes a package.
# luarocks (rockspec/) builds with LUA_INCDIR instead of LUA_PC: lua.h there decides
# the Lua version, a luajit.h beside it means LuaJIT; anything but 5.4 or LuaJIT is refused.

# pkg-config name of the Lua to build for: lua5.4 or luajit (luajit2's is also "luajit")
LUA_PC ?= lua5.4
# Lua headers to build against instead of pkg-config (luarocks passes this)
LUA_INCDIR ?=
# pkg-config name of libmongoc (libbson comes with it)
MONGOC_PC ?= libmongoc-1.0
# Lua 5.4 interpreter used to run specs, examples and benchmarks
LUA ?= lua5.4
# LuaJIT interpreter for the LuaJIT specs: OpenResty's luajit2 (Debian package luajit2,
# command luajit)
LUAJIT ?= luajit
# C compiler for the module and C tests (clang is used for the fuzz target)
CC ?= cc
# install root; DESTDIR is prepended for staged installs
PREFIX ?= /usr/local
DESTDIR ?=
# optimisation/debug flags; the required flags below are always added
CFLAGS ?= -O2 -g
# extra linker flags
LDFLAGS ?=
# compiler flag that links a loadable module (luarocks passes its own)
LIBFLAG ?= -shared
# seconds the fuzz target runs (make test runs a short pass)
FUZZ_SECONDS ?= 60

ifeq ($(filter clean print deps,$(MAKECMDGOALS)),)
DEPS_PC := $(MONGOC_PC) $(if $(LUA_INCDIR),,$(LUA_PC))
ifeq ($(shell pkg-config --exists $(DEPS_PC) && echo ok),)
$(info xdbtx: pkg-config cannot find $(DEPS_PC); running scripts/deps.sh)
ifneq ($(shell sh scripts/deps.sh build $(if $(LUA_INCDIR),none,$(LUA_PC)) >&2; echo $$?),0)
$(error xdbtx: build dependencies are missing, see the message above)
endif
endif
endif

ifneq ($(LUA_INCDIR),)
LUA_VERSION_NUM := $(shell sed -n 's/^\#define[[:space:]]*LUA_VERSION_NUM[[:space:]]*\([0-9]*\).*/\1/p' $(LUA_INCDIR)/lua.h 2>/dev/null)
LUA_IS_JIT := $(if $(wildcard $(LUA_INCDIR)/luajit.h),yes)
ifeq ($(LUA_IS_JIT)$(LUA_VERSION_NUM),501)
$(error xdbtx: $(LUA_INCDIR)/lua.h is Lua 5.1 without LuaJIT; xdbtx builds for Lua 5.4 or LuaJIT 2.1 (for 5.4: luarocks --lua-version 5.4 make))
else ifeq ($(LUA_IS_JIT)$(LUA_VERSION_NUM),)
$(error xdbtx: no Lua headers in LUA_INCDIR=$(LUA_INCDIR) (no lua.h with LUA_VERSION_NUM))
else ifeq ($(LUA_IS_JIT),)
ifneq ($(LUA_VERSION_NUM),504)
$(error xdbtx: $(LUA_INCDIR)/lua.h is Lua version $(LUA_VERSION_NUM); xdbtx builds for Lua 5.4 (504) or LuaJIT 2.1)
endif
endif
LUA_ABI := $(if $(LUA_IS_JIT),5.1,5.4)
BUILD_NAME := $(if $(LUA_IS_JIT),luajit,5.4)
LUA_CFLAGS := -I$(LUA_INCDIR)
else
LUA_ABI := $(or $(shell pkg-config --variable=abiver $(LUA_PC) 2>/dev/null),$(shell pkg-config --variable=major_version $(LUA_PC) 2>/dev/null),5.4)
BUILD_NAME := $(if $(findstring jit,$(LUA_PC)),luajit,$(LUA_ABI))
LUA_CFLAGS := $(shell pkg-config --cflags $(LUA_PC))
endif
BUILD := build/$(BUILD_NAME)
# where `make install` puts the C module, the Lua modules and the commands in bin/
LUA_CMOD ?= $(PREFIX)/lib/lua/$(LUA_ABI)
LUA_LMOD ?= $(PREFIX)/share/lua/$(LUA_ABI)
BINDIR ?= $(PREFIX)/bin
# LuaJIT flavour of the headers built against (make print): OpenResty's luajit2 defines
# OPENRESTY_LUAJIT in luajit.h
LUAJIT_H := $(or $(wildcard $(LUA_INCDIR)/luajit.h),$(if $(LUA_INCDIR),,$(if $(findstring jit,$(LUA_PC)),$(shell pkg-config --variable=includedir $(LUA_PC) 2>/dev/null)/luajit.h)))
MONGOC_CFLAGS := $(patsubst -I%,-isystem %,$(shell pkg-config --cflags $(MONGOC_PC)))
MONGOC_LIBS := $(shell pkg-config --libs $(MONGOC_PC))

WARN := -Wall -Wextra -Wshadow -Wpointer-arith -Wcast-qual -Wstrict-prototypes \
        -Wmissing-prototypes -Wformat=2 -Wundef -Wno-unused-parameter
override CFLAGS += -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(WARN)
override LDFLAGS += -Wl,-z,nodelete

SRCS := $(wildcard src/*.c)
OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS))
MODULE := $(BUILD)/xdbtx/core.so
# every Lua module under lua/ (lua/xdbtx.lua, lua/xdbtx/**/*.lua) and every command in bin/
LUA_SRCS := $(sort $(shell find lua -name '*.lua' 2>/dev/null))
BIN_SRCS := $(wildcard bin/*)

# C tests: every spec/c/*.c is one program printing TAP
CTEST_SRCS := $(wildcard spec/c/*.c)
CTESTS := $(patsubst spec/c/%.c,build/ctest/%,$(CTEST_SRCS))

.PHONY: all test check asan valgrind fuzz bench demo install uninstall print clean deps luajit \
        deps-openresty test-openresty bench-openresty bench-base

all: $(MODULE)

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS) $(LUA_CFLAGS) $(MONGOC_CFLAGS) -c -o $@ $<

$(MODULE): $(OBJS) | $(BUILD)/xdbtx
	$(CC) $(LIBFLAG) $(LDFLAGS) -o $@ $(OBJS) $(MONGOC_LIBS)

$(BUILD)/obj $(BUILD)/xdbtx build/ctest:
	mkdir -p $@

build/ctest/%: spec/c/%.c $(wildcard spec/c/*.h src/*.c src/*.h) | build/ctest
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L -O1 -g -Wall -Wextra -Wno-unused-parameter \
	   $(MONGOC_CFLAGS) -o $@ $< $(MONGOC_LIBS) -lpthread

luajit:
	$(MAKE) LUA_PC=luajit

deps:
	@sh scripts/deps.sh test $(LUA_PC)

# nginx, its Lua module, lua-resty-core, lua-cjson (scripts/deps.sh openresty)
deps-openresty:
	@sh scripts/deps.sh openresty luajit

# Everything, one closing line "N passed, N failed, N skipped".
test: deps deps-openresty all luajit $(CTESTS)
	@LUA=$(LUA) LUAJIT=$(LUAJIT) sh scripts/run-tests all

# The checkout service in a real nginx, against two test-server clusters.
test-openresty: deps-openresty luajit
	@sh scripts/run-tests openresty

# C tests only (test-server conformance and C unit tests).
check: deps $(CTESTS)
	@sh scripts/run-tests c

# Specs with the module built under AddressSanitizer + UBSan.
asan:
	$(MAKE) BUILD_NAME=asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined" \
	   LDFLAGS="-fsanitize=address,undefined"
	@XDBTX_CPATH=build/asan/?.so LD_PRELOAD="$$($(CC) -print-file-name=libasan.so)" \
	   ASAN_OPTIONS=detect_leaks=0 sh scripts/run-tests lua

# Specs under valgrind memcheck (slow).
valgrind: all
	@XDBTX_VALGRIND=1 sh scripts/run-tests lua

fuzz:
	@sh scripts/deps.sh fuzz $(LUA_PC)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh scripts/fuzz

bench: all
	@sh scripts/bench

# The codec benchmark against another commit's build (default: the one issue
# "Performance" measured from), side by side in one run.
BASE ?= 7cc8507
bench-base: all
	@sh scripts/bench-base $(BASE)

# POST /checkout through run_worker_thread versus the direct call, 1/8/32 clients.
bench-openresty: deps-openresty luajit
	@spec/server/with-servers /usr/bin/python3 bench/openresty.py

demo: deps all
	@sh scripts/demo

install: all
	install -d $(DESTDIR)$(LUA_CMOD)/xdbtx
	install -m 0755 $(MODULE) $(DESTDIR)$(LUA_CMOD)/xdbtx/core.so
	for f in $(patsubst lua/%,%,$(LUA_SRCS)); do install -D -m 0644 lua/$$f $(DESTDIR)$(LUA_LMOD)/$$f || exit 1; done
	$(if $(BIN_SRCS),install -d $(DESTDIR)$(BINDIR))
	$(if $(BIN_SRCS),install -m 0755 $(BIN_SRCS) $(DESTDIR)$(BINDIR)/)

uninstall:
	rm -f $(DESTDIR)$(LUA_CMOD)/xdbtx/core.so
	rm -f $(addprefix $(DESTDIR)$(LUA_LMOD)/,$(patsubst lua/%,%,$(LUA_SRCS)))
	$(if $(BIN_SRCS),rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(BIN_SRCS))))

print:
	@echo "LUA_PC=$(LUA_PC) LUA_ABI=$(LUA_ABI) BUILD=$(BUILD)"
	@echo "LUA_CFLAGS=$(LUA_CFLAGS)"
	@echo "MONGOC_PC=$(MONGOC_PC) MONGOC_CFLAGS=$(MONGOC_CFLAGS) MONGOC_LIBS=$(MONGOC_LIBS)"
	@echo "LUA_INCDIR=$(LUA_INCDIR) LUAJIT_H=$(LUAJIT_H) $(if $(LUAJIT_H),($(if $(shell grep -l OPENRESTY_LUAJIT $(LUAJIT_H) 2>/dev/null),OpenResty luajit2,plain LuaJIT)))"
	@echo "CC=$(CC) CFLAGS=$(CFLAGS) LDFLAGS=$(LDFLAGS) LIBFLAG=$(LIBFLAG)"
	@echo "PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) LUA_CMOD=$(LUA_CMOD) LUA_LMOD=$(LUA_LMOD) BINDIR=$(BINDIR)"
	@echo "LUA_SRCS=$(LUA_SRCS) BIN_SRCS=$(BIN_SRCS)"
	@echo "LUA=$(LUA) LUAJIT=$(LUAJIT) FUZZ_SECONDS=$(FUZZ_SECONDS)"

clean:
	rm -rf build

# make docs: docs/commit-protocol.svg (shown in the README) from its Graphviz source. The SVG
# is committed, so only a change to the .dot needs dot (Debian package graphviz).
.PHONY: docs
docs: docs/commit-protocol.svg

docs/commit-protocol.svg: docs/commit-protocol.dot
	@command -v dot >/dev/null 2>&1 || { echo "make docs: Graphviz's dot is missing; install it with: apt-get install graphviz" >&2; exit 1; }
	dot -Tsvg -o $@ docs/commit-protocol.dot
