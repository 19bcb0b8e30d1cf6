# churnlab: run `make` for the list of targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

SCENARIO ?= restart-storm
MODE     ?= all
# Where the live runs' cluster comes from: local (a control plane on this
# machine, kwok's nodes) or kind (kind clusters of real nodes, in your
# Docker or a private dockerd churnlab starts; see make node-image).
TARGET   ?= local
# Your runs go to runs/ (ignored by git). results/ holds the committed,
# canonical runs that REPORT.md, the tests and the gates read; only
# `make record` (or OUT=results) writes there.
OUT      ?= runs
RESULTS  := results
FUZZTIME ?= 2m
BENCHCOUNT ?= 6

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCHSTAT   := golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
SCENARIO_FILE := experiments/scenarios/$(SCENARIO).yaml

.PHONY: help
help: ## print this list
	@echo "churnlab: reproduce a config-layer collapse under pod churn, and test a fix"
	@echo
	@echo "usage: make <target> [SCENARIO=name] [MODE=sim|live|all] [TARGET=local|kind]"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  \1\t\2/' | expand -t 22
	@echo
	@echo "scenarios: $$(ls experiments/scenarios/*.yaml | xargs -n1 basename | sed 's/\.yaml$$//' | tr '\n' ' ')"

bin/churnlab: FORCE
	@test -x $@ || echo "building bin/churnlab (first time on a machine: about 2.5 min on 2 cores, downloading its Go modules; afterwards seconds)"
	@go build -o $@ ./cmd/churnlab

.PHONY: FORCE
FORCE:

.PHONY: experiment
experiment: bin/churnlab ## run SCENARIO (default restart-storm) in MODE (sim, live or all: sim at full and live scale, then live) into OUT (default runs/)
	@test -f $(SCENARIO_FILE) || { echo "no scenario $(SCENARIO): $(SCENARIO_FILE) does not exist"; exit 2; }
	@case "$(MODE)" in sim|live|all) ;; *) echo "MODE=$(MODE): want sim, live or all"; exit 2;; esac
	@case "$(TARGET)" in local|kind) ;; *) echo "TARGET=$(TARGET): want local or kind (bin/churnlab run --target kube for a cluster of yours)"; exit 2;; esac
	@bin/churnlab validate -f $(SCENARIO_FILE)
	@if [ "$(MODE)" != live ]; then \
	  echo "step 1/4: simulate $(SCENARIO) at full scale, both systems, checking determinism (about 5 s)" && \
	  bin/churnlab sim -f $(SCENARIO_FILE) --out $(OUT) --check-determinism && \
	  echo "step 2/4: simulate $(SCENARIO) at live scale, the simulator's prediction of the live run (about 2 s)" && \
	  bin/churnlab sim -f $(SCENARIO_FILE) --out $(OUT) --live-scale; fi
	@if [ "$(MODE)" != sim ]; then \
	  $(MAKE) --no-print-directory controlplane && \
	  if [ "$(TARGET)" = kind ]; then $(MAKE) --no-print-directory node-image; fi && \
	  echo "step 3/4: play $(SCENARIO) live on $(TARGET), baseline then reference ($$(bin/churnlab run -f $(SCENARIO_FILE) --target $(TARGET) --estimate))" && \
	  bin/churnlab run -f $(SCENARIO_FILE) --target $(TARGET) --out $(OUT); fi
	@echo "step 4/4: plot $(SCENARIO)'s results, baseline against reference and sim against live (about 5 s)"
	@bin/churnlab plot $(OUT)/$(SCENARIO) -f $(SCENARIO_FILE)
	@if [ "$(OUT)" = "$(RESULTS)" ]; then echo "recorded into $(RESULTS)/$(SCENARIO)/, the committed runs: make report, then commit"; \
	else echo "results in $(OUT)/$(SCENARIO)/ (the committed runs in $(RESULTS)/ are unchanged; make record SCENARIO=$(SCENARIO) replaces them)"; fi

.PHONY: record
record: ## make experiment into results/, replacing SCENARIO's committed runs (then make report, and commit)
	@$(MAKE) --no-print-directory experiment OUT=$(RESULTS)

.PHONY: ablations
ablations: bin/churnlab ## simulate every ablation of experiments/scenarios/ablations (T1-T6), baseline, into OUT (OUT=results to record; about 3 s)
	@for f in experiments/scenarios/ablations/*.yaml; do bin/churnlab sim -f $$f --system baseline --out $(OUT) >/dev/null || exit 1; echo "ablations: $$f"; done

.PHONY: report
report: bin/churnlab ## regenerate REPORT.md from results/, the calibration transcript and results/bench.txt (never edit REPORT.md by hand)
	bin/churnlab report

.PHONY: compare
compare: bin/churnlab ## draw SCENARIO's charts from OUT (p99, egress, 429s, pods, leaderboard; sim vs live; the sweep), into OUT/SCENARIO/<mode>/*.png
	@test -d $(OUT)/$(SCENARIO) || { echo "no results for $(SCENARIO) in $(OUT)/: run make experiment SCENARIO=$(SCENARIO) OUT=$(OUT) first"; exit 2; }
	@bin/churnlab plot $(OUT)/$(SCENARIO)

.PHONY: gate
gate: bin/churnlab ## CI gate: simulate what results/gate.yaml names and fail on a regression of p99 (and more) against the committed runs (about 2 s)
	bin/churnlab gate --thresholds $(RESULTS)/gate.yaml --rules sim

# The live gate plays GATE_SCENARIO's reference system (the real configd,
# agents and game pods on the local control plane) REPEAT times and checks
# results/gate.yaml's live rules against the repetitions committed under
# results/GATE_SCENARIO/local/reference/run-*/ with a U test. .ci/run runs
# it. GATE_SET adds flags to the new runs, to try a change (for example
# GATE_SET='--inject-push-delay 20ms', a configd 20 ms slower per push).
REPEAT        ?= 5
GATE_SCENARIO ?= gate-churn
GATE_RUN = bin/churnlab run -f experiments/scenarios/$(GATE_SCENARIO).yaml --system reference

.PHONY: gate-live
gate-live: bin/churnlab controlplane ## live gate (in CI): REPEAT live runs of the reference under churn, checked against results/gate.yaml's live rules with a U test (about 5 min)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	for i in $$(seq 1 $(REPEAT)); do echo "gate-live: run $$i of $(REPEAT) ($(GATE_SCENARIO), reference, $$($(GATE_RUN) --estimate))"; \
	  $(GATE_RUN) $(GATE_SET) --out "$$tmp/run-$$i" >/dev/null || exit 1; done && \
	bin/churnlab gate --thresholds $(RESULTS)/gate.yaml --rules live "$$tmp"/run-*

.PHONY: gate-live-reference
gate-live-reference: bin/churnlab controlplane ## record the live gate's reference: REPEAT live runs into results/GATE_SCENARIO/local/reference/run-N/ (about 5 min; commit them)
	@for i in $$(seq 1 $(REPEAT)); do echo "gate-live-reference: run $$i of $(REPEAT) ($(GATE_SCENARIO), reference)"; \
	  tmp=$$(mktemp -d) && $(GATE_RUN) --out "$$tmp" >/dev/null && \
	  dir=$(RESULTS)/$(GATE_SCENARIO)/local/reference/run-$$i && mkdir -p $$dir && \
	  cp "$$tmp"/$(GATE_SCENARIO)/local/reference/{summary.json,vegeta.txt} $$dir/ && rm -rf "$$tmp" || exit 1; done

.PHONY: controlplane
controlplane: ## build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok into bin/ (once: about 8.5 min cold)
	@tools/controlplane/build.sh

.PHONY: node-image
node-image: bin/churnlab controlplane ## build the kind target's node image offline: kubelet, kubeadm, kube-proxy, coredns into bin/node/, a Debian rootfs, 8 preloaded images (cold: about 8 min; then seconds)
	@tools/controlplane/build.sh node
	@bin/churnlab kind node-image >/dev/null

.PHONY: engine
engine: bin/churnlab ## start churnlab's private container engine and keep it up for repeated kind runs (installs Debian's docker.io if need be; seconds)
	@tools/controlplane/build.sh node >/dev/null
	@bin/churnlab kind engine up

.PHONY: engine-down
engine-down: bin/churnlab ## stop the private container engine that make engine (or --keep-engine) left up, and remove its state
	@bin/churnlab kind engine down

.PHONY: proto
proto: ## regenerate reference/proto/*.pb.go from configstream.proto (buf, no protoc; ~1 min first time)
	@tools/proto/generate.sh

.PHONY: verify-proto
verify-proto: proto ## check the committed generated code matches configstream.proto
	@git diff --exit-code -- reference/proto || { echo "reference/proto is stale: run make proto and commit"; exit 1; }

.PHONY: test
test: controlplane node-image ## run every test (vet, unit, transcripts, determinism, CLI, control-plane integration, live runs on local and kind; about 15 min warm)
	@echo "make test: go vet and every package's tests (about 3 min; the first time also compiles them, a few minutes more), then the live tests (about 12 min)"
	go vet ./...
	go test $$(go list ./... | grep -v -e '/experiments/runner$$' -e '/reference$$')
	@echo "the tests that measure latency on this machine, one package at a time with nothing beside them: the reference service's integration tests (slow consumers, reconnect storm, partition; about 1.5 min), then the live runs, local and kind (about 10 min)"
	go test -p 1 -timeout 30m ./reference/ ./experiments/runner/

.PHONY: race
race: ## the race detector over every package, skipping the tests that start a control plane or etcd (-short)
	go test -race -short ./...

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	@echo "staticcheck (first run downloads it, about 30 s)"
	go run $(STATICCHECK) ./...

.PHONY: calibrate
calibrate: ## replay the SEED-FACTS calibration transcript (sim/testdata/calibration.txt), each claim with its simulated value (about 5 s)
	go test -count=1 -run 'TestCalibration' ./sim/
	@grep -E '^[A-Z][0-9]+ ' sim/testdata/calibration.txt
	@echo "(sim/testdata/calibration.txt; after a model change: go test ./sim -run TestCalibration -rewrite, then read the diff)"

.PHONY: knee
knee: bin/churnlab ## L1: sweep the reconcile rate of the 2023 peak cluster and print the knee, into OUT (OUT=results to record; about 1 s)
	bin/churnlab sweep -f experiments/scenarios/steady.yaml --param baseline.reconcileInterval --from 9s --to 3s --steps 13 --out $(OUT)

.PHONY: bench
bench: ## simulator benchmarks (engine, restart storm at 1x and 10x, node agents on 500 and 5,000 nodes), BENCHCOUNT runs into OUT/bench.txt (REPORT.md reads results/bench.txt: OUT=results to record), summarised by benchstat
	@echo "benchmarking the simulator, $(BENCHCOUNT) runs of each (about $$(( $(BENCHCOUNT) * 14 )) s)"
	@mkdir -p $(OUT)
	go test -run '^$$' -bench . -count $(BENCHCOUNT) ./sim/ | tee $(OUT)/bench.txt
	go run $(BENCHSTAT) $(OUT)/bench.txt

.PHONY: bench-fanout
bench-fanout: controlplane ## configd vs plain etcd watches fan-out, 180/1000/10000 streams (about 5 min)
	go test -run '^$$' -bench 'Fanout/streams=' -benchtime 20x -timeout 20m ./reference/ | tee bench-fanout.txt

.PHONY: fuzz
fuzz: ## fuzz the scenario loader, its path=value overrides, Watch requests, signed tokens, node agents' update lines and pods' config conditions, FUZZTIME each (default 2m)
	go test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./experiments/scenario/
	go test -run '^$$' -fuzz FuzzSet -fuzztime $(FUZZTIME) ./experiments/scenario/
	go test -run '^$$' -fuzz FuzzExpr -fuzztime $(FUZZTIME) ./experiments/scenario/
	go test -run '^$$' -fuzz FuzzWatchRequest -fuzztime $(FUZZTIME) ./reference/server/
	go test -run '^$$' -fuzz FuzzSignedToken -fuzztime $(FUZZTIME) ./reference/server/
	go test -run '^$$' -fuzz FuzzParseUpdate -fuzztime $(FUZZTIME) ./reference/agent/
	go test -run '^$$' -fuzz FuzzParseLoaded -fuzztime $(FUZZTIME) ./experiments/pod/

.PHONY: update-golden
update-golden: ## rewrite the expected error messages of experiments/scenario/testdata/invalid-*.yaml
	go test ./experiments/scenario/ -run TestInvalidFiles -update

.PHONY: verify-golden
verify-golden: ## check the expected error messages are current
	go test ./experiments/scenario/ -run TestInvalidFiles
