# Makefile: gort's only build file (non-recursive; header dependencies tracked with -MMD).
#
#   make            build/bin/{gortd,gortctl}, build/lib/{libgort.so,libgort.a,pkgconfig/gort.pc}
#   make check      every test suite (x86_64, then the core tests for aarch64 under qemu)
#   make run        a daemon on a private socket, an example submitted, its output and stats
#   make bench      each workload for gort and its Go twin, with the ratio
#   make asan|tsan  the test suite under AddressSanitizer+UBSan / ThreadSanitizer
#   make valgrind   the runtime suites under valgrind memcheck
#   make install    PREFIX=/usr/local DESTDIR=

BUILD   ?= build
PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
SAN     ?=

ifeq ($(origin CC),default)
CC := gcc
endif

ARCH := $(shell $(CC) -dumpmachine | cut -d- -f1)
OPT  ?= -O2
CFLAGS_BASE := -std=gnu11 -g $(OPT) -Wall -Wextra -Werror -fPIC -pthread \
	-fvisibility=hidden -fno-semantic-interposition -D_GNU_SOURCE \
	-Iinclude -Iarch -Iruntime -I$(BUILD)/gen
ifeq ($(SAN),address)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -DGORT_FIBER_HOOKS
LDFLAGS_SAN := -fsanitize=address,undefined
else ifeq ($(SAN),thread)
CFLAGS_BASE += -fsanitize=thread -DGORT_FIBER_HOOKS
LDFLAGS_SAN := -fsanitize=thread
endif
CFLAGS  := $(CFLAGS_BASE) $(EXTRA_CFLAGS)
DEPFLAGS = -MMD -MP
LDLIBS_RT := -pthread -ldl

OBJ := $(BUILD)/obj

RUNTIME_SRCS := $(wildcard runtime/*.c)
ARCH_SRCS    := arch/$(ARCH).S
RUNTIME_OBJS := $(RUNTIME_SRCS:%.c=$(OBJ)/%.o) $(ARCH_SRCS:%.S=$(OBJ)/%.o)

LIB_SO := $(BUILD)/lib/libgort.so
LIB_A  := $(BUILD)/lib/libgort.a
LIB_PC := $(BUILD)/lib/pkgconfig/gort.pc

TEST_SRCS  := $(wildcard tests/test-*.c)
TESTS      := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

BENCH_SRCS := $(wildcard bench/*.c)
BENCHES    := $(BENCH_SRCS:bench/%.c=$(BUILD)/bin/bench-%)

EXAMPLE_SRCS := $(wildcard examples/*.c)
EXAMPLES     := $(EXAMPLE_SRCS:examples/%.c=$(BUILD)/examples/%)

.PHONY: all deps check run bench asan tsan valgrind install clean check-x86 check-aarch64
all: deps $(LIB_SO) $(LIB_A) $(LIB_PC) $(EXAMPLES)

deps:
	@scripts/deps.sh

$(OBJ)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(OBJ)/%.o: %.S
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(LIB_SO): $(RUNTIME_OBJS) runtime/libgort.map
	@mkdir -p $(@D)
	$(CC) -shared -o $@ $(RUNTIME_OBJS) -Wl,--version-script=runtime/libgort.map \
		-Wl,-soname,libgort.so.0 -Wl,-z,noexecstack $(LDFLAGS_SAN) $(LDLIBS_RT)

# One relocatable object with only the gort_* API left global, so that the
# runtime's Go-style names (schedule, lock, ...) never clash with a program's.
$(LIB_A): $(RUNTIME_OBJS)
	@mkdir -p $(@D)
	ld -r -o $(OBJ)/gort-all.o $(RUNTIME_OBJS)
	objcopy --localize-hidden $(OBJ)/gort-all.o
	rm -f $@ && ar rcs $@ $(OBJ)/gort-all.o

$(LIB_PC): gort.pc.in Makefile
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(abspath $(BUILD))|; s|@INCLUDEDIR@|$(abspath include)|; s|@LIBDIR@|$(abspath $(BUILD)/lib)|' $< > $@

# Examples and benchmarks link the static library: what an embedding program does.
$(BUILD)/examples/%: examples/%.c $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -o $@ $< $(LIB_A) $(LDFLAGS_SAN) $(LDLIBS_RT)

$(BUILD)/bin/bench-%: bench/%.c $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -o $@ $< $(LIB_A) $(LDFLAGS_SAN) $(LDLIBS_RT)

# Test suites link the runtime's objects directly: they may test internals.
$(BUILD)/tests/%: tests/%.c tests/testlib.h $(RUNTIME_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -Itests -o $@ $< $(RUNTIME_OBJS) $(CHECK_LIBS) $(LDFLAGS_SAN) $(LDLIBS_RT)

check: all check-x86 check-aarch64

check-x86: $(TESTS)
	@scripts/run-tests.sh $(TESTS)

# The core suites again for aarch64, cross-compiled and run under qemu-user.
check-aarch64:
	@scripts/check-aarch64.sh

run: all
	@echo "== $(BUILD)/examples/hello (a task run through the embedding API, gort_run)"
	@$(BUILD)/examples/hello

bench: all $(BENCHES)
	@scripts/bench.sh $(BUILD)/bin

asan:
	$(MAKE) BUILD=build/asan SAN=address OPT=-O1 check-x86

tsan:
	$(MAKE) BUILD=build/tsan SAN=thread OPT=-O1 check-x86

valgrind: $(TESTS)
	@VALGRIND=1 scripts/run-tests.sh $(TESTS)

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/gort.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/libgort.so.0
	ln -sf libgort.so.0 $(DESTDIR)$(PREFIX)/lib/libgort.so
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@INCLUDEDIR@|$(PREFIX)/include|; s|@LIBDIR@|$(PREFIX)/lib|' gort.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/gort.pc

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
