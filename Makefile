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
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
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
LDLIBS_RT := -pthread -ldl -luring

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
# reference programs without gort (bench/ref/README.md), run by scripts/bench.sh
REF_SRCS   := $(wildcard bench/ref/*.c)
REFS       := $(REF_SRCS:bench/ref/%.c=$(BUILD)/bin/ref-%)

EXAMPLE_SRCS := $(wildcard examples/*.c)
EXAMPLES     := $(EXAMPLE_SRCS:examples/%.c=$(BUILD)/examples/%)

# ---- gortd, gortctl and their protocol (proto/gort.proto; protoc-c writes the C
# into $(BUILD)/gen at build time). gortd links the runtime's objects (it uses
# internals) and exports the gort_* API to the tasks it dlopens.
GEN          := $(BUILD)/gen
PROTO_C      := $(GEN)/proto/gort.pb-c.c
PROTO_H      := $(GEN)/proto/gort.pb-c.h
WIRE_OBJS    := $(OBJ)/gen/proto/gort.pb-c.o $(OBJ)/proto/wire.o
DAEMON_OBJS  := $(patsubst %.c,$(OBJ)/%.o,$(filter-out daemon/main.c,$(wildcard daemon/*.c)))
CLIENT_OBJS  := $(OBJ)/client/gortclient.o
GORTCTL_OBJS := $(OBJ)/client/gortctl.o $(OBJ)/client/json.o
GORTD        := $(BUILD)/bin/gortd
GORTCTL      := $(BUILD)/bin/gortctl
LDLIBS_IPC   := -lprotobuf-c
LDLIBS_SD    := -lsystemd
EXPORT_API   := -Wl,--export-dynamic-symbol=gort_*
TASK_EXAMPLES := $(patsubst examples/tasks/%.c,$(BUILD)/examples/%.so,$(wildcard examples/tasks/*.c))
DAEMON_FIXTURES := $(BUILD)/tests/fixtures/daemon_task.so $(BUILD)/tests/fixtures/daemon_plugin.so \
	$(BUILD)/tests/fixtures/views_task.so

.PHONY: all deps check run bench asan tsan valgrind install clean check-x86 check-aarch64 fuzz check-fuzz check-pkgconfig
all: deps $(LIB_SO) $(LIB_A) $(LIB_PC) $(EXAMPLES) $(GORTD) $(GORTCTL) $(TASK_EXAMPLES)

deps:
	@scripts/deps.sh

$(OBJ)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(OBJ)/%.o: %.S
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

# The runtime's code (runtime/ and arch/) is moved from .text into its own
# section, gort_text, right after compiling, so that the preemption signal
# handler can tell runtime code from program code even when both are linked
# into one executable (tests, libgort.a users): the linker bounds the section
# with __start_gort_text/__stop_gort_text (runtime/preempt.c). -fno-plt: the
# runtime calls other objects through the GOT, never through the executable's
# PLT stubs, which are program code to the handler.
ifeq ($(origin OBJCOPY),undefined)
OBJCOPY := $(shell $(CC) -print-prog-name=objcopy)
endif
GORT_TEXT := $(foreach s,.text .text.unlikely .text.hot .text.startup .text.exit,--rename-section $(s)=gort_text)

$(OBJ)/runtime/%.o: runtime/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fno-plt $(DEPFLAGS) -c $< -o $@
	$(OBJCOPY) $(GORT_TEXT) $@

$(OBJ)/arch/%.o: arch/%.S
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@
	$(OBJCOPY) $(GORT_TEXT) $@

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

$(BUILD)/bin/ref-%: bench/ref/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -o $@ $< $(LDFLAGS_SAN)

# Test suites link the runtime's objects directly: they may test internals.
$(BUILD)/tests/%: tests/%.c tests/testlib.h $(RUNTIME_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -Itests -o $@ $< $(RUNTIME_OBJS) $(CHECK_LIBS) $(LDFLAGS_SAN) $(LDFLAGS_TESTS) \
		$(LDLIBS_RT)

# Task and plugin binaries the task and plugin suites load.
include tests/fixtures/fixtures.mk

$(PROTO_H): $(PROTO_C)
$(PROTO_C): proto/gort.proto
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) $<

$(OBJ)/gen/proto/gort.pb-c.o: $(PROTO_C)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(OBJ)/daemon/%.o $(OBJ)/client/%.o $(OBJ)/proto/%.o: CFLAGS += -I.
$(OBJ)/daemon/main.o $(DAEMON_OBJS) $(CLIENT_OBJS) $(GORTCTL_OBJS) $(OBJ)/proto/wire.o: $(PROTO_H)

$(GORTD): $(OBJ)/daemon/main.o $(DAEMON_OBJS) $(WIRE_OBJS) $(RUNTIME_OBJS)
	@mkdir -p $(@D)
	$(CC) $(EXPORT_API) -o $@ $^ $(LDFLAGS_SAN) $(LDLIBS_IPC) $(LDLIBS_SD) $(LDLIBS_RT)

$(GORTCTL): $(GORTCTL_OBJS) $(CLIENT_OBJS) $(WIRE_OBJS)
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(LDFLAGS_SAN) $(LDLIBS_IPC)

# Task binaries, built the way API.md tells task authors to (no sanitizer: a
# module is plain C loaded into whatever runs it).
TASK_CC := $(CC) -std=gnu11 -g -O2 -Wall -Wextra -Werror -fPIC -shared -D_GNU_SOURCE -Iinclude
$(BUILD)/examples/%.so: examples/tasks/%.c include/gort.h
	@mkdir -p $(@D)
	$(TASK_CC) -o $@ $<
# Plugin examples, built the same way.
PLUGIN_EXAMPLES := $(patsubst examples/plugins/%.c,$(BUILD)/examples/plugins/%.so,$(wildcard examples/plugins/*.c))
$(BUILD)/examples/plugins/%.so: examples/plugins/%.c include/gort.h include/gort_plugin.h
	@mkdir -p $(@D)
	$(TASK_CC) -o $@ $<
all: $(PLUGIN_EXAMPLES)
$(DAEMON_FIXTURES): $(BUILD)/tests/fixtures/%.so: tests/fixtures/%.c include/gort.h include/gort_plugin.h
	@mkdir -p $(@D)
	$(TASK_CC) -o $@ $<

# The daemon suites drive the real gortd and gortctl through the client library.
DAEMON_TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test-daemon*.c))
$(DAEMON_TESTS): $(BUILD)/tests/%: tests/%.c tests/testlib.h tests/daemonlib.h $(CLIENT_OBJS) $(WIRE_OBJS) \
		$(RUNTIME_OBJS) $(GORTD) $(GORTCTL) $(DAEMON_FIXTURES) $(TASK_EXAMPLES)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -I. -Itests -DBUILD_DIR='"$(BUILD)"' -o $@ $< $(CLIENT_OBJS) $(WIRE_OBJS) \
		$(RUNTIME_OBJS) $(CHECK_LIBS) $(LDFLAGS_SAN) $(LDLIBS_IPC) $(LDLIBS_RT)
$(BUILD)/tests/test-wire: tests/test-wire.c tests/testlib.h $(WIRE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -I. -Itests -o $@ $< $(WIRE_OBJS) $(CHECK_LIBS) $(LDFLAGS_SAN) $(LDLIBS_IPC)

# gortd's benchmark (stats round trips, submit latency, tasks/s): no Go twin.
BENCH_DAEMON := $(BUILD)/bin/bench-daemon
$(BENCH_DAEMON): bench/daemon/daemon-bench.c $(CLIENT_OBJS) $(WIRE_OBJS) $(PROTO_H) $(GORTD) $(DAEMON_FIXTURES)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -I. -o $@ $< $(CLIENT_OBJS) $(WIRE_OBJS) $(LDFLAGS_SAN) $(LDLIBS_IPC)

# libFuzzer on the frame decoder, the validator, protobuf-c and the daemon's
# dispatch: `make fuzz` runs it for FUZZ_SECONDS (make check: briefly).
FUZZ_CC      := clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -std=gnu11 -g -O1 -fPIC -pthread -D_GNU_SOURCE -Iinclude -Iarch -Iruntime -I$(GEN) -I. -Wall -Werror
FUZZ_SRCS    := proto/wire.c $(filter-out daemon/main.c,$(wildcard daemon/*.c))
FUZZER       := $(BUILD)/fuzz/fuzz-wire
FUZZ_SECONDS ?= 60
$(FUZZER): tests/fuzz-wire.c $(FUZZ_SRCS) $(PROTO_C) daemon/gortd.h proto/wire.h $(RUNTIME_OBJS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ tests/fuzz-wire.c $(FUZZ_SRCS) $(PROTO_C) \
		$(RUNTIME_OBJS) $(LDLIBS_IPC) $(LDLIBS_SD) $(LDLIBS_RT)

fuzz: $(FUZZER)
	@mkdir -p $(BUILD)/fuzz/corpus
	GORT_FUZZ_SEEDS=$(BUILD)/fuzz/corpus $(FUZZER) -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		-rss_limit_mb=1024 -artifact_prefix=$(BUILD)/fuzz/ $(BUILD)/fuzz/corpus

check-fuzz: $(FUZZER)
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=15 >$(BUILD)/fuzz/check.log 2>&1 \
		&& echo "PASS fuzz-wire                 15s  $$(grep -o 'Done [0-9]* runs' $(BUILD)/fuzz/check.log)" \
		|| { echo "FAIL fuzz-wire"; tail -40 $(BUILD)/fuzz/check.log; exit 1; }

check: all check-x86 check-fuzz check-pkgconfig check-aarch64

# An embedding program linked against libgort.a with only what gort.pc says
# (pkg-config --static), then run.
check-pkgconfig: $(LIB_A) $(LIB_PC)
	@tests/check-pkgconfig.sh $(BUILD)

check-x86: $(TESTS) $(BUILD)/tests/arch-selftest
	@scripts/run-tests.sh $(BUILD)/tests/arch-selftest $(TESTS)
	@echo "runtime locks without membarrier (GORT_LOCK_NO_MEMBARRIER=1):"
	@GORT_LOCK_NO_MEMBARRIER=1 scripts/run-tests.sh $(BUILD)/tests/test-chan $(BUILD)/tests/test-sync

# The context switch alone, without the runtime (aarch64: in check-aarch64).
# Never with sanitizers: it switches stacks without the runtime's fiber
# annotations, which is what it tests.
$(BUILD)/tests/arch-selftest: tests/arch-selftest.c arch/$(ARCH).S arch/asm.h
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -g -O2 -Wall -Wextra -Werror -Iarch -o $@ tests/arch-selftest.c arch/$(ARCH).S

# The core suites again for aarch64, cross-compiled and run under qemu-user.
check-aarch64:
	@scripts/check-aarch64.sh

run: all
	@scripts/run.sh $(BUILD)

bench: all $(BENCHES) $(REFS) $(BENCH_DAEMON)
	@scripts/bench.sh $(BUILD)/bin

asan:
	$(MAKE) BUILD=build/asan SAN=address OPT=-O1 check-x86

# Workloads a quarter of check's size unless GORT_TEST_SCALE says otherwise: every
# goroutine switch is a TSan fiber switch, and the stress suites took minutes.
tsan:
	GORT_TEST_SCALE=$${GORT_TEST_SCALE:-4} $(MAKE) BUILD=build/tsan SAN=thread OPT=-O1 check-x86

# Workloads a tenth of check's size (memcheck runs one thread at a time, ~50x slower).
valgrind: $(TESTS)
	@VALGRIND=1 GORT_TEST_SCALE=$${GORT_TEST_SCALE:-10} scripts/run-tests.sh $(TESTS)

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/gort.h include/gort_plugin.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/libgort.so.0
	ln -sf libgort.so.0 $(DESTDIR)$(PREFIX)/lib/libgort.so
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@INCLUDEDIR@|$(PREFIX)/include|; s|@LIBDIR@|$(PREFIX)/lib|' gort.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/gort.pc
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	install -m 755 $(GORTD) $(GORTCTL) $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|/usr/local/bin/|$(PREFIX)/bin/|' systemd/gortd.service > $(DESTDIR)$(UNITDIR)/gortd.service
	install -m 644 systemd/gortd.socket $(DESTDIR)$(UNITDIR)/
	install -m 644 systemd/gort.sysusers $(DESTDIR)$(SYSUSERSDIR)/gort.conf

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
