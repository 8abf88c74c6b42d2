# Strata: the only build entry point.
#   make            release build of build/strata-agent and build/agentctl
#   make run        the embedded default: ./sample served at ./mnt through the cache
#   make test       installs test dependencies, builds, runs unit + integration tests
#   make bench      benchmarks against curl, passthrough_ll, s3fs and rclone (table + file)
#   make bench-datapath  only the data-path table (S3-shaped store, zero-copy reads)
#   make bench-azure     only the Azure Blob rows (Azurite: reads and writes vs curl, rclone mount)
#   make install    binaries, systemd units, policies, man pages under $(DESTDIR)$(PREFIX)
#   make deb        the Debian package, build/deb/strata_VERSION_ARCH.deb
#   make soak       the engine stress test and an hour under store faults (not part of make test)
#   make tsan       ThreadSanitizer over the engine, fetcher, writer and gossip unit tests
#   make asan       the unit tests under AddressSanitizer + UBSan (and an ASan agent)
SHELL := /bin/bash
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
CXX ?= g++
BUILD ?= build
PREFIX ?= /usr/local
PKGS := fuse3 lua5.4 libuv libcurl lmdb libxxhash openssl zlib

# Build dependencies are installed first when missing, so a bare Debian
# machine needs only `make` itself.
DEPS_STAMP := $(BUILD)/.deps-installed
ifeq ($(filter clean deps,$(MAKECMDGOALS)),)
  ifeq ($(shell pkg-config --exists $(PKGS) 2>/dev/null && test -f /usr/include/CLI/CLI.hpp && test -f /usr/include/catch2/catch.hpp && test -f /usr/include/nlohmann/json.hpp && echo yes),)
    $(info make: installing build dependencies (packaging/install-deps.sh))
    $(shell bash packaging/install-deps.sh >&2)
  endif
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
OPT ?= -O2 -g
# One version, the Debian changelog's, for --version and the package.
VERSION := $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' packaging/debian/changelog)
CXXFLAGS += -std=c++20 $(OPT) -DSTRATA_VERSION='"$(VERSION)"' -Wall -Wextra -Wno-missing-field-initializers -pthread -I. $(PKG_CFLAGS) -MMD -MP
LDLIBS += $(PKG_LIBS) -lresolv -pthread

# One static library per module directory; dependencies point downwards.
MODULES := agent/control agent/gateway agent/fuse agent/service agent/peer agent/policy agent/cache agent/tier agent/index agent/gossip ufs agent/loop agent/base
lib_srcs = $(filter-out %_main.cc,$(wildcard $(1)/*.cc $(if $(filter ufs,$(1)),ufs/s3/*.cc ufs/azure/*.cc)))
lib_name = $(BUILD)/lib/lib$(subst /,_,$(1)).a
LIBS := $(foreach m,$(MODULES),$(call lib_name,$(m)))

all: $(BUILD)/strata-agent $(BUILD)/agentctl $(BUILD)/man/strata-agent.conf.5

# strata-agent.conf(5) is written by the agent from its own option table.
$(BUILD)/man/strata-agent.conf.5: $(BUILD)/strata-agent
	@mkdir -p $(dir $@)
	$< --man-config > $@

$(BUILD)/obj/%.o: %.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

define LIB_RULE
$(call lib_name,$(1)): $(patsubst %.cc,$(BUILD)/obj/%.o,$(call lib_srcs,$(1)))
	@mkdir -p $$(dir $$@)
	@rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call LIB_RULE,$(m))))

$(BUILD)/strata-agent: $(BUILD)/obj/agent/agent_main.o $(BUILD)/obj/agent/agent.o $(LIBS)
	$(CXX) $(CXXFLAGS) $^ $(LDLIBS) -o $@

# agentctl talks to the agent's socket and checks policy files: no cache,
# index, FUSE or store code in it.
CTL_LIBS := $(foreach m,agent/policy agent/loop agent/base,$(call lib_name,$(m)))
$(BUILD)/agentctl: $(BUILD)/obj/agent/agentctl_main.o $(CTL_LIBS)
	$(CXX) $(CXXFLAGS) $^ $(LDLIBS) -Wl,--as-needed -o $@

UNIT_SRCS := $(wildcard tests/unit/*.cc)
INTEG_SRCS := $(wildcard tests/integration/*.cc tests/integration/posix/*.cc)
$(BUILD)/unit_tests: $(patsubst %.cc,$(BUILD)/obj/%.o,$(UNIT_SRCS)) $(LIBS)
	$(CXX) $(CXXFLAGS) $^ $(LDLIBS) -o $@
$(BUILD)/integration_tests: $(patsubst %.cc,$(BUILD)/obj/%.o,$(INTEG_SRCS)) $(LIBS)
	$(CXX) $(CXXFLAGS) $^ $(LDLIBS) -o $@
$(BUILD)/restart_bench: $(BUILD)/obj/tests/bench/restart_bench.o $(LIBS)
	$(CXX) $(CXXFLAGS) $^ $(LDLIBS) -o $@
$(BUILD)/shaper: $(BUILD)/obj/tests/bench/shaper.o
	$(CXX) $(CXXFLAGS) $^ -pthread -o $@
$(BUILD)/chaos_proxy: $(BUILD)/obj/tests/chaos/chaos_proxy.o
	$(CXX) $(CXXFLAGS) $^ -pthread -o $@
$(BUILD)/faultfs: $(BUILD)/obj/tests/chaos/faultfs.o
	$(CXX) $(CXXFLAGS) $^ $(PKG_LIBS) -pthread -o $@
$(BUILD)/gossip_node: $(BUILD)/obj/tests/bench/gossip_node.o $(LIBS)
	$(CXX) $(CXXFLAGS) $^ $(LDLIBS) -o $@
$(BUILD)/policy_bench: $(BUILD)/obj/tests/bench/policy_bench.o $(LIBS)
	$(CXX) $(CXXFLAGS) $^ $(LDLIBS) -o $@

.PHONY: deb tsan bench-azure bench-gateway all run test unit integration bench bench-datapath bench-cluster install clean deps asan soak fuzz

deps:
	bash packaging/install-deps.sh --test

run: all
	bash packaging/run-default.sh

FUZZERS := $(BUILD)/gossip_fuzz $(BUILD)/gateway_fuzz $(BUILD)/parsers_fuzz $(BUILD)/sigv4_fuzz $(BUILD)/policy_fuzz
test: all $(BUILD)/unit_tests $(BUILD)/integration_tests $(BUILD)/shaper $(BUILD)/chaos_proxy $(BUILD)/faultfs $(FUZZERS)
	bash packaging/install-deps.sh --test
	bash tests/run.sh $(BUILD)

# The decoders of outside input under libFuzzer + ASan/UBSan (clang from
# Debian): the gossip packets and peer frames; the gateway's request heads
# and SigV4 check; the S3 XML and listing parsers, the control HTTP parser,
# cron schedules, sizes and durations, Azure connection strings; SigV4
# canonicalization alone; policy files run by the real Lua runtime.
# `make test` runs each for 8 s (a smoke run over the seeds and a little
# further: make test's time budget), `make fuzz` for FUZZ_SECONDS (300) each, both starting from the seeds in
# tests/fuzz/corpus/NAME (policy_fuzz also from policies/*.lua); what a run
# finds stays in build/fuzz-corpus/, out of the tree.
FUZZ_SRCS_gossip := tests/fuzz/gossip_fuzz.cc agent/gossip/wire.cc agent/gossip/membership.cc agent/gossip/keyring.cc \
  agent/peer/frames.cc agent/base/status.cc
FUZZ_SRCS_gateway := tests/fuzz/gateway_fuzz.cc agent/gateway/request.cc agent/gateway/auth.cc ufs/s3/sigv4.cc \
  agent/base/hash.cc agent/base/status.cc
FUZZ_SRCS_parsers := tests/fuzz/parsers_fuzz.cc ufs/s3/xml.cc ufs/s3/list.cc agent/control/http.cc \
  agent/policy/cron.cc agent/base/units.cc ufs/azure/shared_key.cc agent/base/hash.cc agent/base/status.cc
FUZZ_SRCS_sigv4 := tests/fuzz/sigv4_fuzz.cc ufs/s3/sigv4.cc agent/base/hash.cc agent/base/status.cc
FUZZ_SRCS_policy := tests/fuzz/policy_fuzz.cc $(wildcard agent/policy/*.cc agent/loop/*.cc agent/base/*.cc)
FUZZ_LIBS_policy := -llua5.4 -luv
.SECONDEXPANSION:
FUZZ_SECONDS ?= 300
$(BUILD)/%_fuzz: $$(FUZZ_SRCS_$$*) $(wildcard agent/gossip/*.h agent/peer/*.h agent/gateway/*.h ufs/s3/*.h agent/control/*.h agent/policy/*.h)
	@mkdir -p $(dir $@)
	@command -v clang++ >/dev/null && ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 \
	  || bash packaging/install-deps.sh --test
	clang++ -std=c++20 -O1 -g -I. $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined $(FUZZ_SRCS_$*) -lcrypto -lxxhash $(FUZZ_LIBS_$*) -o $@
fuzz: $(FUZZERS)
	@for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p $(BUILD)/fuzz-corpus/$$n && \
	  { [ $$n != policy_fuzz ] || cp policies/*.lua $(BUILD)/fuzz-corpus/$$n/; } && \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $(BUILD)/fuzz-corpus/$$n \
	    $$( [ -d tests/fuzz/corpus/$$n ] && echo tests/fuzz/corpus/$$n ) || exit 1; done

# The slow soak: two minutes of the engine stress test, then an hour
# (SOAK_MINUTES) of reads, writes, evictions, reloads, restarts and kill -9
# on a mount over s3rver behind the chaos proxy at 10 % faults; the figures
# go to bench-results/soak-*.txt.
SOAK_MINUTES ?= 60
soak: all $(BUILD)/unit_tests $(BUILD)/integration_tests $(BUILD)/chaos_proxy
	bash packaging/install-deps.sh --test
	$(BUILD)/unit_tests "[slow]"
	STRATA_SOAK_MINUTES=$(SOAK_MINUTES) $(BUILD)/integration_tests "[soak]"

bench: all $(BUILD)/policy_bench $(BUILD)/shaper $(BUILD)/restart_bench $(BUILD)/gossip_node
	bash packaging/install-deps.sh --bench
	bash tests/bench/datapath.sh $(BUILD)
	bash tests/bench/cluster.sh $(BUILD)
	bash tests/bench/gateway.sh $(BUILD)
	bash tests/bench/azure.sh $(BUILD)
	bash tests/bench/bench.sh $(BUILD)

# Only the cluster table (peer reads, failure detection against Serf, join,
# idle traffic, false deads under starvation and loss: FALSE_DEAD_S, 600).
bench-cluster: all $(BUILD)/shaper $(BUILD)/gossip_node
	bash packaging/install-deps.sh --bench
	bash tests/bench/cluster.sh $(BUILD)

# Only the gateway table (issue 11's rows): S3 GETs and PUTs against the
# mount, s3rver and curl.
bench-gateway: all $(BUILD)/shaper
	bash packaging/install-deps.sh --bench
	bash tests/bench/gateway.sh $(BUILD)

# The Azure Blob rows (Azurite): cold / warm reads and writes vs curl, rclone mount.
bench-azure: all
	bash packaging/install-deps.sh --bench
	bash tests/bench/azure.sh $(BUILD)

# Only the data-path table (issue 9's rows), five interleaved rounds.
bench-datapath: all $(BUILD)/shaper $(BUILD)/restart_bench
	bash packaging/install-deps.sh --bench
	bash tests/bench/datapath.sh $(BUILD)

UNITDIR ?= /etc/systemd/system
install: all
	install -D -m 0755 $(BUILD)/strata-agent $(DESTDIR)$(PREFIX)/bin/strata-agent
	install -D -m 0755 $(BUILD)/agentctl $(DESTDIR)$(PREFIX)/bin/agentctl
	install -D -m 0755 systemd/strata-clear-stale-mount $(DESTDIR)$(PREFIX)/lib/strata/strata-clear-stale-mount
	for u in strata-agent.service strata-agent@.service; do \
	  install -D -m 0644 systemd/$$u $(DESTDIR)$(UNITDIR)/$$u && sed -i 's|@PREFIX@|$(PREFIX)|g' $(DESTDIR)$(UNITDIR)/$$u; done
	test -f $(DESTDIR)/etc/strata/agent.conf || install -D -m 0644 packaging/agent.conf $(DESTDIR)/etc/strata/agent.conf
	install -D -m 0644 man/strata-agent.8 $(DESTDIR)$(PREFIX)/share/man/man8/strata-agent.8
	install -D -m 0644 $(BUILD)/man/strata-agent.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/strata-agent.conf.5
	install -D -m 0644 man/agentctl.1 $(DESTDIR)$(PREFIX)/share/man/man1/agentctl.1
	install -D -m 0644 man/strata-policy.7 $(DESTDIR)$(PREFIX)/share/man/man7/strata-policy.7
	install -d $(DESTDIR)$(PREFIX)/share/strata/policies $(DESTDIR)/etc/strata/policies
	install -m 0644 policies/*.lua $(DESTDIR)$(PREFIX)/share/strata/policies/
	for f in default.lua preload.lua cleanup.lua; do \
	  test -f $(DESTDIR)/etc/strata/policies/$$f || install -m 0644 policies/$$f $(DESTDIR)/etc/strata/policies/$$f; done

# The Debian package (debhelper): build/deb/strata_VERSION_ARCH.deb, from
# this tree's build (no second compilation): packaging/debian is the
# package's debian/ directory, its rules call `make install` here.
deb: all
	bash packaging/make-deb.sh $(BUILD)

# Unit tests under ASan/UBSan, and the same agent for the integration tests:
#   STRATA_AGENT=build-asan/strata-agent build/integration_tests
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
	  LDLIBS="$(PKG_LIBS) -pthread -fsanitize=address,undefined" build-asan/unit_tests build-asan/strata-agent
	build-asan/unit_tests

# ThreadSanitizer over the concurrent parts: the engine, fetcher, block
# sources, writer and gossip unit tests (tests/tsan.supp: Catch2's own
# assertion bookkeeping from worker threads, nothing of ours).
TSAN_TESTS := "[\#engine_test],[\#fetcher_test],[\#block_source_test],[\#writer_test],[\#gossip_test]"
tsan:
	$(MAKE) BUILD=build-tsan OPT="-O1 -g -fsanitize=thread -fno-omit-frame-pointer" \
	  LDLIBS="$(PKG_LIBS) -lresolv -pthread -fsanitize=thread" build-tsan/unit_tests
	TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1 second_deadlock_stack=1" \
	  build-tsan/unit_tests -# $(TSAN_TESTS)

clean:
	rm -rf $(BUILD) build-asan build-tsan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
