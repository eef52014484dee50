# Persona: build, test, run and benchmark the suite. `make help` lists the targets.
SHELL := /bin/bash
CONFIG ?= release
BIN = $(shell swift build -c $(CONFIG) --show-bin-path 2>/dev/null)
DATA ?= $(CURDIR)/data
RUN = $(CURDIR)/run
SERVICES = ingest:7101:9101 feature:7102:9102 model:7103:9103 risk-control:7104:9104 recommend:7105:9105 console:7106:
DEBIAN_PACKAGES = libopenblas-dev libsqlite3-dev libprotobuf-c-dev protobuf-c-compiler liblz4-dev libnats-dev nats-server protobuf-compiler pkg-config python3 curl
# `make cluster`: three NATS servers with JetStream on loopback (index:client port:route port).
NATS_NODES = 0:4222:6222 1:4223:6223 2:4224:6224
NATS_SERVER ?= $(shell command -v nats-server 2>/dev/null || echo /usr/sbin/nats-server)
FUZZ_RUNS ?= 200000
# Ingest sets each event's ip_country from this table (the shared fraud case's) when present.
IP_COUNTRY ?= $(wildcard $(CURDIR)/../shared/data/fraud/IpAddress_to_Country.csv)

.PHONY: help deps build test browser-test run secrets cluster stop bench trial bench-deep proto check-proto check-compose container-test fuzz docs lint format clean

help:
	@echo "make deps         install the Debian packages Persona needs (when missing)"
	@echo "make build        build every executable ($(CONFIG))"
	@echo "make test         check generated code, then run the whole test suite"
	@echo "make browser-test the risk console in headless Chromium (installs chromium, chromium-driver, python3-selenium)"
	@echo "make run          start all five services, import the samples and train once (RETRAIN=1: again), show a profile, recommendations and a decision; data under ./data"
	@echo "make stop         stop them gracefully (SIGTERM)"
	@echo "make cluster      the same on a three-server NATS JetStream cluster (replicas 3) and two feature replicas, data in data/cluster"
	@echo "make bench        benchmarks against grpc-swift-2, libprotobuf-c, SQLite, NATS JetStream, implicit and numpy; results in Benchmarks/results/"
	@echo "make trial        the served answers on held-out splits of the shared data, beside simple peers (Benchmarks/results/trial.md)"
	@echo "make bench-deep   the sequence model's training time against PyTorch (installs torch for CPU)"
	@echo "make proto        regenerate the C and Swift code from Shared/Schema"
	@echo "make check-proto  fail when the committed generated code is stale"
	@echo "make check-compose validate compose.yaml with Debian's docker-compose (installed when missing)"
	@echo "make container-test the suite in podman containers built with debootstrap (root; not in make test)"
	@echo "make fuzz         run every fuzz target (frames and codec, rules language, dataset importers) for FUZZ_RUNS inputs each"
	@echo "make docs         write docs/CLI.md from the commands' own help (a test compares them)"
	@echo "make format       format the Swift sources with swift format (.swift-format)"
	@echo "make lint         check formatting (swift format lint --strict) and line lengths"

deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	swift build -c $(CONFIG)

proto: deps
	python3 scripts/protogen.py

check-proto: deps
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	python3 scripts/protogen.py $$tmp && \
	for d in Shared/CPersonaProto/include Shared/CPersonaProto/src Shared/Wire/Generated Tests/WireTests/Generated; do \
		diff -r $$tmp/$$d $$d || { echo "generated code in $$d is stale: run 'make proto' and commit"; exit 1; }; \
	done && echo "generated code is up to date"

# The suite in podman containers built from a debootstrapped Debian (scripts/container-test.sh);
# not part of `make test`: it needs root, podman and debootstrap, and a Debian mirror once.
container-test: build
	@command -v podman >/dev/null && command -v debootstrap >/dev/null && command -v runc >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq podman debootstrap runc; }
	BIN=$(BIN) scripts/container-test.sh

# The Swift sources git tracks (generated code included: scripts/protogen.py formats it).
SWIFT_SOURCES = $(shell git ls-files '*.swift')

format:
	swift format format -i $(SWIFT_SOURCES)

lint:
	@swift format lint --strict $(SWIFT_SOURCES) && echo "swift format lint: clean"
	@long=$$(awk 'length > 140 { print FILENAME ":" FNR ": " length " characters" }' $(SWIFT_SOURCES)); \
	if [ -n "$$long" ]; then echo "$$long"; echo "lines over 140 characters"; exit 1; fi; echo "no line over 140 characters"

docs: build
	scripts/cli-reference.sh $(BIN) > docs/CLI.md

check-compose:
	@command -v docker-compose >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq docker-compose; }
	docker-compose -f compose.yaml config -q && echo "compose.yaml is valid"
	docker-compose -f compose.yaml -f compose.cluster.yaml config -q && echo "compose.cluster.yaml (over compose.yaml) is valid"

test: check-proto
	swift build --build-tests
	swift test --disable-xctest

# The risk console in a real browser (scripts/browser-test.sh): Debian's chromium driven by
# python3-selenium against a console, risk-control and ingest from the debug build; it writes
# a screenshot of each page to docs/console/. Then a campaign's HTML report drawn in headless
# Chromium (scripts/campaign-report-test.sh; docs/campaigns/report.png). .ci/run runs it after make test.
browser-test: deps
	@dpkg -s chromium chromium-driver python3-selenium >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver python3-selenium; }
	swift build
	BIN=$$(swift build --show-bin-path) scripts/browser-test.sh
	BIN=$$(swift build --show-bin-path) scripts/campaign-report-test.sh

run: build secrets
	@for s in $(SERVICES); do \
		IFS=: read name port metrics <<< "$$s"; \
		if [ -f $(RUN)/$$name.pid ] && kill -0 $$(cat $(RUN)/$$name.pid) 2>/dev/null; then echo "$$name already running"; continue; fi; \
		PERSONA_IP_COUNTRY_FILE=$${PERSONA_IP_COUNTRY_FILE-$(IP_COUNTRY)} PERSONA_PSEUDONYM_KEY_FILE=$${PERSONA_PSEUDONYM_KEY_FILE-$(DATA)/pseudonym.key} PERSONA_TOKENS_FILE=$${PERSONA_TOKENS_FILE-$(DATA)/tokens} nohup $(BIN)/persona-$$name --port $$port $${metrics:+--metrics-port $$metrics} --data-dir $(DATA)/$$name \
			> $(RUN)/$$name.log 2>&1 & echo $$! > $(RUN)/$$name.pid; \
		if [ -n "$$metrics" ]; then echo "$$name: rpc 127.0.0.1:$$port  metrics http://127.0.0.1:$$metrics/metrics  data $(DATA)/$$name  log $(RUN)/$$name.log"; \
		else echo "$$name: http://127.0.0.1:$$port  data $(DATA)/$$name  log $(RUN)/$$name.log"; fi; \
	done
	@for i in $$(seq 1 50); do PERSONA_TOKENS_FILE=$(DATA)/tokens $(BIN)/persona health >/dev/null 2>&1 && break; sleep 0.2; done
	@PERSONA_TOKENS_FILE=$(DATA)/tokens $(BIN)/persona health
	@# Imports the sample data and trains once (RETRAIN=1 trains again), then shows a profile, recommendations and a decision.
	@PERSONA=$(BIN)/persona DATA=$(DATA) PERSONA_TOKENS_FILE=$(DATA)/tokens scripts/demo.sh

# The pseudonym key and the tokens file of the suite in $(DATA), made once.
secrets:
	@mkdir -p $(RUN) $(DATA)
	@# Ingest pseudonymises identifiers with this key; risk-control compares requests and lists with it.
	@[ -s $(DATA)/pseudonym.key ] || { [ -s $(DATA)/ingest/pseudonym.key ] && cp $(DATA)/ingest/pseudonym.key $(DATA)/pseudonym.key || head -c 32 /dev/urandom > $(DATA)/pseudonym.key; chmod 600 $(DATA)/pseudonym.key; }
	@# One token a role (ROLE ID SECRET): every call but Health needs one; the CLI reads this file.
	@[ -s $(DATA)/tokens ] || { for role in service admin analyst producer consumer; do echo "$$role $$role-1 $$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"; done > $(DATA)/tokens; chmod 600 $(DATA)/tokens; }

# The suite with its event log on a three-server NATS JetStream cluster (replicas 3), two
# feature replicas (partitions 0-1 on 7102, 2-3 on 7112, each watching the other) and two
# risk-control replicas on one decision stream (7104, 7114), from the built binaries, in its
# own data folder (data/cluster): docs/SCALING.md. `make stop` stops all.
CLUSTER = $(CURDIR)/data/cluster
CLUSTER_FEATURES = 127.0.0.1:7102,127.0.0.1:7112
cluster: deps build
	@$(MAKE) --no-print-directory secrets DATA=$(CLUSTER)
	@mkdir -p $(RUN) $(CLUSTER)/nats
	@for n in $(NATS_NODES); do \
		IFS=: read i port route <<< "$$n"; \
		if [ -f $(RUN)/nats-$$i.pid ] && kill -0 $$(cat $(RUN)/nats-$$i.pid) 2>/dev/null; then echo "nats-$$i already running"; continue; fi; \
		routes=$$(for m in $(NATS_NODES); do IFS=: read j p r <<< "$$m"; [ $$j = $$i ] || printf "nats://127.0.0.1:%s," $$r; done); \
		nohup $(NATS_SERVER) -a 127.0.0.1 -p $$port -js -sd $(CURDIR)/data/cluster/nats/n$$i --server_name n$$i \
			--cluster_name persona --cluster nats://127.0.0.1:$$route --routes $${routes%,} > $(RUN)/nats-$$i.log 2>&1 & echo $$! > $(RUN)/nats-$$i.pid; \
		echo "nats-$$i: nats://127.0.0.1:$$port  store $(CURDIR)/data/cluster/nats/n$$i  log $(RUN)/nats-$$i.log"; \
	done
	@if [ -f $(RUN)/feature-2.pid ] && kill -0 $$(cat $(RUN)/feature-2.pid) 2>/dev/null; then echo "feature-2 already running"; else \
		PERSONA_TOKENS_FILE=$(CLUSTER)/tokens nohup $(BIN)/persona-feature --port 7112 --metrics-port 9112 --data-dir $(CLUSTER)/feature-2 \
			--partitions 2-3 --peers 127.0.0.1:7102 > $(RUN)/feature-2.log 2>&1 & echo $$! > $(RUN)/feature-2.pid; \
		echo "feature-2: rpc 127.0.0.1:7112 (partitions 2-3)  metrics http://127.0.0.1:9112/metrics  data $(CLUSTER)/feature-2  log $(RUN)/feature-2.log"; fi
	@PERSONA_LOG=$${PERSONA_LOG:-nats://127.0.0.1:4222,127.0.0.1:4223,127.0.0.1:4224} PERSONA_FEATURE_ADDR=$(CLUSTER_FEATURES) \
		PERSONA_FEATURE_PARTITIONS=0-1 PERSONA_FEATURE_PEERS=127.0.0.1:7112 $(MAKE) --no-print-directory run DATA=$(CLUSTER)
	@if [ -f $(RUN)/risk-control-2.pid ] && kill -0 $$(cat $(RUN)/risk-control-2.pid) 2>/dev/null; then echo "risk-control-2 already running"; else \
		PERSONA_LOG=$${PERSONA_LOG:-nats://127.0.0.1:4222,127.0.0.1:4223,127.0.0.1:4224} PERSONA_FEATURE_ADDR=$(CLUSTER_FEATURES) \
		PERSONA_IP_COUNTRY_FILE=$${PERSONA_IP_COUNTRY_FILE-$(IP_COUNTRY)} PERSONA_PSEUDONYM_KEY_FILE=$(CLUSTER)/pseudonym.key PERSONA_TOKENS_FILE=$(CLUSTER)/tokens \
		nohup $(BIN)/persona-risk-control --port 7114 --metrics-port 9114 --data-dir $(CLUSTER)/risk-control-2 > $(RUN)/risk-control-2.log 2>&1 & echo $$! > $(RUN)/risk-control-2.pid; \
		echo "risk-control-2: rpc 127.0.0.1:7114 (a second replica on the decision stream)  metrics http://127.0.0.1:9114/metrics  data $(CLUSTER)/risk-control-2  log $(RUN)/risk-control-2.log"; fi

stop:
	@for s in $(SERVICES) feature-2:7112:9112 risk-control-2:7114:9114; do \
		IFS=: read name port metrics <<< "$$s"; \
		[ -f $(RUN)/$$name.pid ] || continue; pid=$$(cat $(RUN)/$$name.pid); \
		if kill -TERM $$pid 2>/dev/null; then \
			for i in $$(seq 1 100); do kill -0 $$pid 2>/dev/null || break; sleep 0.1; done; \
			echo "$$name stopped"; \
		fi; rm -f $(RUN)/$$name.pid; \
	done
	@for n in $(NATS_NODES); do \
		IFS=: read i port route <<< "$$n"; \
		[ -f $(RUN)/nats-$$i.pid ] || continue; \
		kill -TERM $$(cat $(RUN)/nats-$$i.pid) 2>/dev/null && echo "nats-$$i stopped"; rm -f $(RUN)/nats-$$i.pid; \
	done

bench: deps
	@dpkg -s libsqlite3-dev valgrind >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libsqlite3-dev valgrind; }
	cd Benchmarks && swift build -c release
	Benchmarks/.build/release/PersonaBench rpc --output Benchmarks/results/rpc.md
	Benchmarks/.build/release/PersonaBench codec --output Benchmarks/results/codec.md
	PERSONA_SHARED_DATA=$${PERSONA_SHARED_DATA:-../shared/data} Benchmarks/.build/release/PersonaBench log --output Benchmarks/results/log.md
	PERSONA_SHARED_DATA=$${PERSONA_SHARED_DATA:-../shared/data} Benchmarks/.build/release/PersonaBench store --output Benchmarks/results/store.md
	Benchmarks/.build/release/PersonaBench feature --output Benchmarks/results/feature.md
	PERSONA_SHARED_DATA=$${PERSONA_SHARED_DATA:-../shared/data} Benchmarks/.build/release/PersonaBench models --output Benchmarks/results/models.md
	PERSONA_SHARED_DATA=$${PERSONA_SHARED_DATA:-../shared/data} Benchmarks/.build/release/PersonaBench sequence --output Benchmarks/results/sequence.md
	Benchmarks/.build/release/PersonaBench topk --output Benchmarks/results/topk.md
	Benchmarks/.build/release/PersonaBench recommend --output Benchmarks/results/recommend.md
	PERSONA_SHARED_DATA=$${PERSONA_SHARED_DATA:-../shared/data} Benchmarks/.build/release/PersonaBench classifiers --output Benchmarks/results/classifiers.md
	PERSONA_SHARED_DATA=$${PERSONA_SHARED_DATA:-../shared/data} Benchmarks/.build/release/PersonaBench risk --output Benchmarks/results/risk.md
	PERSONA_SHARED_DATA=$${PERSONA_SHARED_DATA:-../shared/data} Benchmarks/.build/release/PersonaBench calls --output Benchmarks/results/calls.md
	$(MAKE) trial

# A shop's trial (scripts/trial.sh): split the shared data, import the training part into a
# fresh suite, train with the defaults, judge the served calls on the rest, peers beside.
trial: build
	@[ -x Benchmarks/results/venv/bin/python ] && Benchmarks/results/venv/bin/python -c "import implicit, sklearn, threadpoolctl" 2>/dev/null || { \
		python3 -m venv Benchmarks/results/venv && Benchmarks/results/venv/bin/python -m pip install -q implicit==0.7.3 numpy scipy scikit-learn threadpoolctl; }
	BIN=$(BIN) SHARED=$${PERSONA_SHARED_DATA:-../shared/data} scripts/trial.sh

# SASRec's training time against the same architecture in PyTorch (CPU, one thread): its own
# target, since it installs torch (about 200 MB) into Benchmarks/results/venv-deep.
bench-deep: deps
	cd Benchmarks && swift build -c release
	PERSONA_SHARED_DATA=$${PERSONA_SHARED_DATA:-../shared/data} Benchmarks/.build/release/PersonaBench deep --output Benchmarks/results/sequence-deep.md

# Each fuzz target (Fuzz/Sources) with its seeds and the longest input it is given
# (`make fuzz FUZZERS=ImportFuzzer:import:8192` runs one). Swift's own crash backtracer is
# off there: libFuzzer reports the crash, and the backtracer stalls under AddressSanitizer.
FUZZERS = FrameFuzzer:frames:4096 RulesFuzzer:rules:4096 ImportFuzzer:import:8192

fuzz: deps
	cd Fuzz && swift build -c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
	@for f in $(FUZZERS); do \
		IFS=: read name corpus length <<< "$$f"; \
		mkdir -p Fuzz/corpus/$$corpus && cp -n Fuzz/seeds/$$corpus/* Fuzz/corpus/$$corpus/ 2>/dev/null; \
		echo "== $$name: $(FUZZ_RUNS) inputs"; \
		SWIFT_BACKTRACE=enable=no Fuzz/.build/debug/$$name -runs=$(FUZZ_RUNS) -max_len=$$length -timeout=10 -print_final_stats=1 Fuzz/corpus/$$corpus 2>&1 | grep -E "^(stat::number_of_executed_units|#[0-9]+ *DONE)|ERROR|SUMMARY|Test unit written" ; \
		[ $${PIPESTATUS[0]} -eq 0 ] || { echo "$$name found a crash: move the crash-* file into Fuzz/regressions/$$corpus"; exit 1; }; \
	done

clean:
	rm -rf .build Benchmarks/.build Fuzz/.build
