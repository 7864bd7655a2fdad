# Skiff build and test entry points. `make help` lists the targets.
#
# Go must be >= 1.26; /usr/local/go/bin is searched first because Debian's
# own golang package is too old for this module.

export PATH := /usr/local/go/bin:$(PATH)

GO      ?= go
BIN     := bin/skiff
# Version stamped into `skiff version`; a release sets VERSION=v0.x.y.
VERSION ?= $(shell git describe --tags --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null)
# The Kubernetes version matching our k8s.io/api (v0.37.2 -> v1.37.2). It is
# stamped into component-base so that `skiff kubectl version` reports a real
# client version instead of v0.0.0-master, which would trip kubectl's version
# skew warning.
KUBE_VERSION := $(shell $(GO) list -m -f '{{.Version}}' k8s.io/api 2>/dev/null | sed 's/^v0\./v1./')
KUBE_MINOR   := $(word 2,$(subst ., ,$(KUBE_VERSION)))
LDFLAGS := -X github.com/skiff-project/skiff/pkg/cluster.Version=$(VERSION) -X main.commit=$(COMMIT) \
	-X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=$(KUBE_MINOR)

# The whole suite starts real clusters; give it room, but fail a hung run.
TEST_TIMEOUT ?= 45m
# -count=1: e2e results depend on the machine, never reuse cached passes.
TESTFLAGS    ?= -count=1
FUZZTIME     ?= 10s
# Packages of the black-box tests; they need root and the built binary.
E2E_DIR      := test/e2e

.PHONY: all help build test test-unit test-e2e setup bench fuzz lint clean

all: build

help:
	@echo "make build      build $(BIN) (version $(VERSION))"
	@echo "make test       the whole suite: host setup, build, unit and e2e tests (as root)"
	@echo "make test-unit  unit tests of ./pkg/... and ./cmd/... (no root needed)"
	@echo "make bench      benchmarks"
	@echo "make fuzz       every fuzz target for FUZZTIME=$(FUZZTIME)"
	@echo "make lint       gofmt and go vet"
	@echo "make clean      remove build and test outputs"

# Always invoke go build: it knows better than make whether anything changed.
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/skiff

setup:
	hack/setup.sh

# The e2e packages find the binary through SKIFF_BIN. Unit packages run first
# (in parallel); e2e packages then run one at a time because each starts
# clusters that compete for ports, iptables and the 2 CPUs.
# Package patterns are spelled out rather than computed with `go list`: a
# failing `go list` inside $(...) would silently run no test at all.
UNIT_PKGS := ./pkg/... ./cmd/... ./bench/...

test: setup build
	$(GO) test $(TESTFLAGS) -timeout $(TEST_TIMEOUT) $(UNIT_PKGS)
	@$(MAKE) --no-print-directory test-e2e

test-e2e: build
	@if [ -d $(E2E_DIR) ]; then \
		echo "SKIFF_BIN=$(CURDIR)/$(BIN) $(GO) test -p 1 ./$(E2E_DIR)/..."; \
		SKIFF_BIN=$(CURDIR)/$(BIN) $(GO) test $(TESTFLAGS) -p 1 -timeout $(TEST_TIMEOUT) ./$(E2E_DIR)/...; \
	else \
		echo "no $(E2E_DIR) packages yet"; \
	fi

test-unit:
	$(GO) test $(TESTFLAGS) -timeout 10m $(UNIT_PKGS)

# `skiff bench` (benchmarks against a running cluster) will be added here
# once that role exists.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $$(ls -d ./pkg ./bench 2>/dev/null | sed 's|$$|/...|')

fuzz:
	hack/fuzz.sh $(FUZZTIME)

lint:
	@unformatted=$$(find . -name '*.go' -not -path './.git/*' -print0 | xargs -0 gofmt -l); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin coverage.out coverage.html *.coverprofile
	find . -name '*.test' -type f -not -path './.git/*' -delete
