# xdbtx - MongoDB transactions for Lua.
#
#   make                  build the Lua 5.4 module: build/5.4/xdbtx/core.so
#   make LUA_PC=luajit    the same sources for LuaJIT/OpenResty: build/luajit/xdbtx/core.so
#   make test             build and run every test (starts the bundled test server)
#   make demo             run the main example against the test server (or XDBTX_URI*)
#   make check | asan | valgrind | fuzz | bench | install | uninstall | print | clean
#
# Missing system packages are installed by scripts/deps.sh, which says what it
# installs (or prints the apt-get command when it cannot).

# pkg-config name of the Lua to build for: lua5.4 or luajit
LUA_PC ?= lua5.4
# pkg-config name of libmongoc (libbson comes with it)
MONGOC_PC ?= libmongoc-1.0
# Lua 5.4 interpreter used to run specs, examples and benchmarks
LUA ?= lua5.4
# LuaJIT interpreter used for the LuaJIT codec specs
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
# seconds the fuzz target runs (make test runs a short pass)
FUZZ_SECONDS ?= 60

ifeq ($(filter clean print deps,$(MAKECMDGOALS)),)
ifeq ($(shell pkg-config --exists $(LUA_PC) $(MONGOC_PC) && echo ok),)
$(info xdbtx: pkg-config cannot find $(LUA_PC) or $(MONGOC_PC); running scripts/deps.sh)
ifneq ($(shell sh scripts/deps.sh build $(LUA_PC) >&2; echo $$?),0)
$(error xdbtx: build dependencies are missing, see the message above)
endif
endif
endif

LUA_ABI := $(or $(shell pkg-config --variable=abiver $(LUA_PC) 2>/dev/null),$(shell pkg-config --variable=major_version $(LUA_PC) 2>/dev/null),5.4)
BUILD_NAME := $(if $(findstring jit,$(LUA_PC)),luajit,$(LUA_ABI))
BUILD := build/$(BUILD_NAME)
# where `make install` puts the C module and the Lua modules
LUA_CMOD ?= $(PREFIX)/lib/lua/$(LUA_ABI)
LUA_LMOD ?= $(PREFIX)/share/lua/$(LUA_ABI)

LUA_INCDIR ?=
LUA_CFLAGS := $(if $(LUA_INCDIR),-I$(LUA_INCDIR),$(shell pkg-config --cflags $(LUA_PC)))
MONGOC_CFLAGS := $(patsubst -I%,-isystem %,$(shell pkg-config --cflags $(MONGOC_PC)))
MONGOC_LIBS := $(shell pkg-config --libs $(MONGOC_PC))

WARN := -Wall -Wextra -Wshadow -Wpointer-arith -Wcast-qual -Wstrict-prototypes \
        -Wmissing-prototypes -Wformat=2 -Wundef -Wno-unused-parameter
override CFLAGS += -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(WARN)
override LDFLAGS += -Wl,-z,nodelete

SRCS := $(wildcard src/*.c)
OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS))
MODULE := $(BUILD)/xdbtx/core.so
LUA_SRCS := lua/xdbtx.lua $(wildcard lua/xdbtx/*.lua)

# C tests: every spec/c/*.c is one program printing TAP
CTEST_SRCS := $(wildcard spec/c/*.c)
CTESTS := $(patsubst spec/c/%.c,build/ctest/%,$(CTEST_SRCS))

.PHONY: all test check asan valgrind fuzz bench demo install uninstall print clean deps luajit

all: $(MODULE)

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS) $(LUA_CFLAGS) $(MONGOC_CFLAGS) -c -o $@ $<

$(MODULE): $(OBJS) | $(BUILD)/xdbtx
	$(CC) -shared $(LDFLAGS) -o $@ $(OBJS) $(MONGOC_LIBS)

$(BUILD)/obj $(BUILD)/xdbtx build/ctest:
	mkdir -p $@

build/ctest/%: spec/c/%.c $(wildcard spec/c/*.h) | build/ctest
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L -O1 -g -Wall -Wextra -Wno-unused-parameter \
	   $(MONGOC_CFLAGS) -o $@ $< $(MONGOC_LIBS) -lpthread

luajit:
	$(MAKE) LUA_PC=luajit

deps:
	@sh scripts/deps.sh test $(LUA_PC)

# Everything, one closing line "N passed, N failed".
test: deps all luajit $(CTESTS)
	@LUA=$(LUA) LUAJIT=$(LUAJIT) sh scripts/run-tests all

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

demo: deps all
	@sh scripts/demo

install: all
	install -d $(DESTDIR)$(LUA_CMOD)/xdbtx $(DESTDIR)$(LUA_LMOD)/xdbtx
	install -m 0755 $(MODULE) $(DESTDIR)$(LUA_CMOD)/xdbtx/core.so
	install -m 0644 lua/xdbtx.lua $(DESTDIR)$(LUA_LMOD)/xdbtx.lua
	for f in $(wildcard lua/xdbtx/*.lua); do install -m 0644 $$f $(DESTDIR)$(LUA_LMOD)/xdbtx/; done

uninstall:
	rm -f $(DESTDIR)$(LUA_CMOD)/xdbtx/core.so $(DESTDIR)$(LUA_LMOD)/xdbtx.lua
	rm -f $(addprefix $(DESTDIR)$(LUA_LMOD)/xdbtx/,$(notdir $(wildcard lua/xdbtx/*.lua)))

print:
	@echo "LUA_PC=$(LUA_PC) LUA_ABI=$(LUA_ABI) BUILD=$(BUILD)"
	@echo "LUA_CFLAGS=$(LUA_CFLAGS)"
	@echo "MONGOC_PC=$(MONGOC_PC) MONGOC_CFLAGS=$(MONGOC_CFLAGS) MONGOC_LIBS=$(MONGOC_LIBS)"
	@echo "CC=$(CC) CFLAGS=$(CFLAGS) LDFLAGS=$(LDFLAGS)"
	@echo "PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) LUA_CMOD=$(LUA_CMOD) LUA_LMOD=$(LUA_LMOD)"
	@echo "LUA=$(LUA) LUAJIT=$(LUAJIT) FUZZ_SECONDS=$(FUZZ_SECONDS)"

clean:
	rm -rf build
