# Gatehouse developer tasks. `make help` lists them.
GO ?= go
export GOTOOLCHAIN := local

.PHONY: help build run test lint bench fuzz
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/gatehouse
	$(GO) build -trimpath -o bin/gatehouse ./cmd/gatehouse

run: ## run the gateway on config.example.yaml
	$(GO) run ./cmd/gatehouse -config config.example.yaml

test: ## run every test (installs Chromium when missing)
	bash scripts/test.sh

lint: ## gofmt, go vet, and golangci-lint when installed
	@test -z "$$(gofmt -l .)" || (gofmt -l .; exit 1)
	$(GO) vet ./...
	@if command -v golangci-lint >/dev/null; then golangci-lint run; else echo "golangci-lint not installed; skipped"; fi

bench: ## Go benchmarks, then the load comparison against a bare reverse proxy
	$(GO) test -run '^$$' -bench . -benchmem ./...
	bash scripts/bench.sh

fuzz: ## run each fuzz target for 30s
	bash scripts/fuzz.sh 30s
