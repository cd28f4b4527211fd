# uco: plain GNU make, everything into build/.
#   make                 libuco.{a,so} and the examples
#   make test            Check suite, aarch64 core under qemu, then ASan+UBSan
#   make bench           benchmarks: uco vs threads, epoll, raw io_uring, peers (FULL=1: longer)
#   make install PREFIX=/usr/local DESTDIR=
#   make sanitize | test-aarch64 | valgrind | clean
#   (make test = the suite, test-aarch64, valgrind, then sanitize)

PREFIX  ?= /usr/local
DESTDIR ?=
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
VERSION := 0.1.0

CC      ?= cc
ARCH    := $(shell uname -m)
B       ?= build
SAN     ?=

CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CPPFLAGS_UCO := -Iinclude -Iruntime -D_GNU_SOURCE
BASE_CFLAGS := -std=gnu11 -fPIC -fstack-clash-protection $(WARN)

ifeq ($(SAN),1)
  SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  ALLOC_LIBS :=
else
  SANFLAGS :=
  # jemalloc owns malloc in normal builds; ASan needs the system allocator.
  ALLOC_LIBS := -ljemalloc
endif

LIBS    := -luring $(ALLOC_LIBS) -lpthread
RT_SRC  := runtime/stack.c runtime/compat.c runtime/coro.c runtime/sched.c \
           runtime/overflow.c runtime/reactor.c runtime/ops_time.c runtime/offload.c \
           runtime/sync.c runtime/ops_file.c runtime/ops_net.c runtime/ops_stream.c
ARCH_SRC := runtime/arch/$(ARCH)/switch.S
RT_OBJ  := $(RT_SRC:%.c=$(B)/obj/%.o) $(ARCH_SRC:%.S=$(B)/obj/%.o)
HDRS    := include/uco.h runtime/internal.h

# Every examples/*.c is a sample, every tools/*.c a tool, every
# bench/baselines/*.c a comparison server, every tests/test_*.c a suite.
EXAMPLES := $(sort $(basename $(notdir $(wildcard examples/*.c))))
EX_BIN  := $(EXAMPLES:%=$(B)/examples/%)
TOOLS   := $(sort $(basename $(notdir $(wildcard tools/*.c))))
TOOL_BIN := $(TOOLS:%=$(B)/tools/%)
BASELINES := $(sort $(basename $(notdir $(wildcard bench/baselines/*.c))))
BASE_BIN := $(BASELINES:%=$(B)/bench/%)

TESTS   := $(sort $(basename $(notdir $(wildcard tests/test_*.c))))
TEST_BIN := $(TESTS:%=$(B)/tests/%)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -pthread)

DEPS_STAMP := build/.deps-ok

.PHONY: all lib examples tools test test-run test-x86 test-install test-aarch64 sanitize valgrind bench install clean deps
all: lib examples tools

deps $(DEPS_STAMP): tools/deps.sh
	@sh tools/deps.sh
	@mkdir -p build && touch $(DEPS_STAMP)

lib: $(B)/libuco.a $(B)/libuco.so
examples: $(EX_BIN)
tools: $(TOOL_BIN) $(BASE_BIN)

$(B)/obj/%.o: %.c $(HDRS) Makefile | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) $(SANFLAGS) $(CPPFLAGS_UCO) -c $< -o $@

$(B)/obj/%.o: %.S | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/libuco.a: $(RT_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libuco.so: $(RT_OBJ) runtime/libuco.map
	$(CC) -shared -Wl,-soname,libuco.so.0 -Wl,--version-script=runtime/libuco.map \
	    $(SANFLAGS) -o $@ $(RT_OBJ) $(LIBS)

$(B)/examples/%: examples/%.c $(B)/libuco.a include/uco.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) $(SANFLAGS) -Iinclude $< -o $@ $(B)/libuco.a $(LIBS)

$(B)/tools/%: tools/%.c $(B)/libuco.a include/uco.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) $(SANFLAGS) -Iinclude $< -o $@ $(B)/libuco.a $(LIBS) -lm

# Baselines do not use uco: plain pthreads / epoll / raw liburing servers.
$(B)/bench/%: bench/baselines/%.c bench/baselines/server.h | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) $(SANFLAGS) $< -o $@ -luring -lpthread

$(B)/tests/%: tests/%.c tests/util.h $(B)/libuco.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) $(SANFLAGS) $(CPPFLAGS_UCO) -DUCO_BUILD_DIR='"$(B)"' \
	    -rdynamic $< $(wildcard tests/arch/$(ARCH)_*.S) -o $@ $(B)/libuco.a $(LIBS) $(CHECK_LIBS)

# Runs every test binary of this build flavour; fails if any fails.
test-run: $(TEST_BIN) $(EX_BIN) $(TOOL_BIN) $(BASE_BIN)
	@fail=0; for t in $(TEST_BIN); do $$t || fail=1; done; exit $$fail

test-x86: lib examples tools $(B)/bench/bench_micro
	@$(MAKE) --no-print-directory test-run
	@sh tests/bench_smoke.sh $(B)
	@sh tests/bench_macro_smoke.sh $(B)
	@sh tests/install.sh $(B)
	@sh tests/gdb_unwind.sh $(B)

test: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory test-x86
	@$(MAKE) --no-print-directory test-aarch64
	@$(MAKE) --no-print-directory valgrind
	@$(MAKE) --no-print-directory sanitize

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer, built
# apart in build/san with the system allocator.
sanitize: $(DEPS_STAMP)
	@echo "== sanitizers (ASan+UBSan) =="
	@ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:abort_on_error=0 \
	 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	 $(MAKE) --no-print-directory B=build/san SAN=1 test-run

# The coroutine core (switch, stacks, scheduler; no ring: qemu-user has
# none) cross-built for aarch64 and run under qemu with a tiny runner.
A64_CC  := aarch64-linux-gnu-gcc
A64_SRC := runtime/stack.c runtime/compat.c runtime/coro.c runtime/sched.c \
           runtime/overflow.c runtime/arch/aarch64/switch.S tests/ringless.c \
           tests/test_core.c tests/arch/aarch64_regs.S
test-aarch64: $(DEPS_STAMP)
	@echo "== aarch64 core under qemu-aarch64 =="
	@mkdir -p build/aarch64
	$(A64_CC) -std=gnu11 -O2 -g $(WARN) -static $(CPPFLAGS_UCO) -DUCO_NO_RING -DUCO_MINICHECK \
	    -Itests $(A64_SRC) -o build/aarch64/test_core -lpthread -lm
	qemu-aarch64 build/aarch64/test_core

# The suites under valgrind, each in one process (CK_FORK=no)
# so that one valgrind sees every run; it must report no error and no leak.
# The runtime's suites; the sample suites drive child processes (and use
# pidfd_open, which valgrind 3.19 does not know), ASan covers those.
VG_TESTS := $(addprefix $(B)/tests/,test_core test_reactor test_cancel test_files test_net \
            test_sync test_offload)
valgrind: lib examples $(VG_TESTS)
	@echo "== valgrind (memcheck) =="
	@fail=0; for t in $(VG_TESTS); do \
	    CK_FORK=no valgrind -q --error-exitcode=1 --leak-check=full \
	        --errors-for-leak-kinds=definite,indirect $$t || fail=1; done; exit $$fail

# ---- benchmarks: C over Google Benchmark (bench/harness.h) ----
CXX     ?= g++
BENCH_OBJ := $(B)/bench/harness.o $(B)/bench/boost_floor.o
BENCH_LIBS := -lbenchmark -lboost_context $(LIBS)
BENCH_MICRO := $(B)/bench/bench_micro
RESULTS := bench/results
STAMP   := $(shell date +%Y%m%d-%H%M%S)-$(shell hostname -s)

$(B)/bench/%.o: bench/%.cc bench/harness.h | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O2 -g -Wall -Wextra -Werror -c $< -o $@

$(BENCH_MICRO): bench/bench_micro.c bench/harness.h $(BENCH_OBJ) $(B)/libuco.a $(HDRS) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) $(CPPFLAGS_UCO) -Ibench -c $< -o $@.o
	$(CXX) $@.o $(BENCH_OBJ) $(B)/libuco.a -o $@ $(BENCH_LIBS)

# make bench: the microbenchmarks (3 repetitions), then servers under load
# (bench_macro.py: echo servers, peers, file server vs nginx), then one JSON
# with every figure, report.md and the charts.  FULL=1: longer runs, more
# repetitions, 10,000 connections.
#   bench/results/<date>-<host>.json         every figure, min/median/max
#   bench/results/<date>-<host>-gbench.json  Google Benchmark's own output
#   bench/results/<date>-<host>-macro.json   every server run
#   bench/results/report.md, bench/results/charts/*.png
FULL    ?=
BENCH_REPS := $(if $(FULL),5,3)
BENCH_TIME ?= $(if $(FULL),1,0.25)
bench: lib examples tools $(BENCH_MICRO)
	@sh tools/deps.sh bench
	@mkdir -p $(RESULTS)
	@echo "== microbenchmarks: uco beside threads ($(BENCH_REPS) repetitions, $(BENCH_TIME) s each) =="
	$(BENCH_MICRO) --benchmark_repetitions=$(BENCH_REPS) --benchmark_min_time=$(BENCH_TIME) \
	    --benchmark_out=$(RESULTS)/$(STAMP)-gbench.json --benchmark_out_format=json
	python3 tools/bench_macro.py --build $(B) --out $(RESULTS)/$(STAMP)-macro.json $(if $(FULL),--full)
	python3 tools/bench_summary.py $(RESULTS)/$(STAMP)-gbench.json $(RESULTS)/$(STAMP)-macro.json \
	    $(RESULTS)/$(STAMP).json $(RESULTS)/report.md $(RESULTS)/charts README.md
	@echo "== report: $(RESULTS)/report.md, charts in $(RESULTS)/charts =="
	@cat $(RESULTS)/report.md

install: lib
	install -d $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 include/uco.h $(DESTDIR)$(INCDIR)/uco.h
	install -m 644 $(B)/libuco.a $(DESTDIR)$(LIBDIR)/libuco.a
	install -m 755 $(B)/libuco.so $(DESTDIR)$(LIBDIR)/libuco.so.$(VERSION)
	ln -sf libuco.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libuco.so.0
	ln -sf libuco.so.0 $(DESTDIR)$(LIBDIR)/libuco.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' tools/uco.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/uco.pc

clean:
	rm -rf build
