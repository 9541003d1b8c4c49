# svidagent — the Makefile is the one entry point (make help).
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
SPIRE_VERSION := v1.13.0
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

PROTOC_GEN_GO := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
TOOLS := $(CURDIR)/bin/tools
PROTOS := $(shell find hostapi/proto -name '*.proto' | sort)

FUZZ_TARGETS := ./internal/config:FuzzLoad ./internal/proc:FuzzSplitArgs ./hostapi/v1/abi:FuzzDecode ./internal/wire:FuzzIssueResponse ./internal/wire:FuzzJWTBundle ./sdk/internal/lite:FuzzUnmarshal
FUZZTIME ?= 2m

.PHONY: bench-full cross examples help build run test test-unit test-faults spire stepca check bench clean generate fuzz fuzz-short

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/$$(SPIRE_VERSION)/$(SPIRE_VERSION)/g' | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

build: ## build bin/svidagent (static, CGO_ENABLED=0)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/svidagent ./cmd/svidagent

run: build ## run the agent with the sample agent.hcl (dev issuer, writes ./out/)
	bin/svidagent run -config agent.hcl

spire: ## build (or reuse from the cache) spire-server and spire-agent $(SPIRE_VERSION)
	@scripts/build-spire.sh >/dev/null

stepca: ## build (or reuse from the cache) step-ca v0.28.4 for the issuer-stepca test
	@scripts/build-stepca.sh >/dev/null

test: spire stepca examples ## unit and integration tests (real SPIRE, real step-ca) with -race
	SPIRE_BIN_DIR="$$(scripts/build-spire.sh | tail -n 1)" STEPCA_BIN_DIR="$$(scripts/build-stepca.sh | tail -n 1)" \
		$(GO) test -race -count=1 -timeout 40m $$($(GO) list ./... | grep -v /sdk/templates/)
	@# The templates' own built-artifact tests repeat what docs/ checks: its
	@# TestWritingAPlugin builds each template as .wasm and go-plugin and runs
	@# svidagent conformance over them. Here the templates run in-process.
	$(GO) test -race -count=1 -short ./sdk/templates/...
	cd examples/issuer-vaultpki && $(GO) test -race -count=1 ./...
	cd examples/kubernetes && $(GO) test -race -count=1 ./...
	@$(MAKE) --no-print-directory fuzz-short

fuzz: ## run every fuzz target for FUZZTIME (default 2m) each
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; echo "fuzz $$fn ($$pkg)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done

fuzz-short: ## every fuzz target for 30,000 inputs (make test runs this)
	@# A count, not a duration: Go 1.26's fuzz coordinator can fail a
	@# duration-bounded run with "context deadline exceeded" and no crasher
	@# when a worker is mid-input at the deadline (golang/go#75804, fixed in
	@# Go 1.27); a count has no deadline to race.
	@$(MAKE) --no-print-directory fuzz FUZZTIME=30000x

test-faults: spire ## the fault-injection suite alone (docs/FAULTS.md); make test runs it too
	SPIRE_BIN_DIR="$$(scripts/build-spire.sh | tail -n 1)" $(GO) test -race -count=1 -timeout 15m -v ./faults/

test-unit: ## tests that need no SPIRE binaries
	$(GO) test -race -count=1 -short ./...
	cd examples/kubernetes && $(GO) test -race -count=1 ./...

check: ## gofmt, vet, staticcheck, linux/arm64 and wasip1 builds, generated code up to date
	@out="$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd examples/kubernetes && $(GO) vet ./...
	cd examples/issuer-vaultpki && $(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -o /dev/null ./cmd/svidagent
	GOOS=wasip1 GOARCH=wasm $(GO) build ./sdk/... ./hostapi/...
	@$(MAKE) --no-print-directory generate >/dev/null
	@git diff --quiet -- hostapi/proto || { echo "make generate changed hostapi/proto: commit the regenerated code"; git diff --stat -- hostapi/proto; exit 1; }

bench: ## in-process benchmarks (ns/op, allocs/op): rotation path, writer, plugin call paths, SDK guest calls; then every plugin's .wasm size
	$(GO) test -run '^$$' -bench . -benchmem ./agent/ ./plugins/files/ ./internal/plugin/adapter/ ./internal/plugin/wasmrt/ ./internal/plugin/subproc/ ./sdk/notifier/ ./sdk/wasm/
	bench/guestsize.sh

bench-full: spire ## every figure of docs/PERFORMANCE.md (about 30 min; SVIDAGENT_BENCH_SCALE_MAX=100 skips the 1,000-identity case; SPIFFE_HELPER=/path/to/spiffe-helper adds its column to §7)
	SPIRE_BIN_DIR="$$(scripts/build-spire.sh | tail -n 1)" bench/run.sh

generate: ## regenerate the committed protobuf code (needs Debian's protobuf-compiler)
	@command -v protoc >/dev/null || { echo "protoc is missing: apt-get install protobuf-compiler"; exit 1; }
	GOBIN=$(TOOLS) $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(TOOLS) $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH="$(TOOLS):$$PATH" protoc -I hostapi/proto \
		--go_out=hostapi/proto --go_opt=paths=source_relative \
		--go-grpc_out=hostapi/proto --go-grpc_opt=paths=source_relative \
		$(patsubst hostapi/proto/%,%,$(PROTOS))
	@# gRPC stubs are for the host and subprocess plugins only: WASM guests
	@# import the message packages without linking gRPC.
	for f in $$(find hostapi/proto -name '*_grpc.pb.go'); do \
		{ printf '//go:build !wasip1\n\n'; cat "$$f"; } > "$$f.tmp" && mv "$$f.tmp" "$$f"; done

CROSS_TARGETS := linux/amd64 linux/arm64 linux/arm darwin/arm64 windows/amd64

cross: ## static linux/amd64, arm64, arm (v7), darwin/arm64 and windows/amd64 builds, full and -tags svidagent_nogoplugin, into bin/cross/ (prints sizes)
	@mkdir -p bin/cross
	@for t in $(CROSS_TARGETS); do os=$${t%%/*}; arch=$${t##*/}; \
		for tags in "" svidagent_nogoplugin; do out=bin/cross/svidagent-$$os-$$arch$${tags:+-nogoplugin}$$([ $$os = windows ] && echo .exe); \
			CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=7 $(GO) build -trimpath -tags "$$tags" -ldflags '$(LDFLAGS)' -o $$out ./cmd/svidagent || exit 1; \
		done; done
	@ls -l bin/cross | awk 'NR>1 {printf "  %-40s %10d B  %5.1f MiB\n", $$9, $$5, $$5/1048576}'

examples: ## build every example and template, as WASM and as go-plugin, into bin/plugins/
	@mkdir -p bin/plugins
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o bin/plugins/notifier-webhook.wasm ./examples/notifier-webhook
	CGO_ENABLED=0 $(GO) build -o bin/plugins/notifier-webhook ./examples/notifier-webhook
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o bin/plugins/notifier-template.wasm ./sdk/templates/notifier
	CGO_ENABLED=0 $(GO) build -o bin/plugins/notifier-template ./sdk/templates/notifier
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o bin/plugins/writer-template.wasm ./sdk/templates/writer
	CGO_ENABLED=0 $(GO) build -o bin/plugins/writer-template ./sdk/templates/writer
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o bin/plugins/issuer-template.wasm ./sdk/templates/issuer
	CGO_ENABLED=0 $(GO) build -o bin/plugins/issuer-template ./sdk/templates/issuer
	CGO_ENABLED=0 $(GO) build -o bin/plugins/issuer-stepca ./examples/issuer-stepca
	examples/notifier-c/build.sh bin/plugins/notifier-c.wasm
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o bin/plugins/writer-pkcs12.wasm ./examples/writer-pkcs12
	CGO_ENABLED=0 $(GO) build -o bin/plugins/writer-pkcs12 ./examples/writer-pkcs12
	cd examples/issuer-vaultpki && CGO_ENABLED=0 $(GO) build -o ../../bin/plugins/issuer-vaultpki .

clean: ## remove build output
	rm -rf bin out
