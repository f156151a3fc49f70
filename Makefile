# kjobs. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

# ko builds with CGO_ENABLED=0 -trimpath; building and testing the same way
# lets every target share one Go build cache.
export CGO_ENABLED := 0
export GOFLAGS := -trimpath
export KO_CONFIG_PATH := $(CURDIR)/ko.yaml

BIN := $(CURDIR)/bin
PORT ?= 8080

.PHONY: help build run test images deploy release bench fuzz

help: ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build every binary into ./bin
	go build -o $(BIN)/ ./services/... ./functions/... ./processor

run: build ## the whole pipeline on 127.0.0.1:$(PORT), no cluster needed
	PORT=$(PORT) KJOBS_PROCESSOR=$(BIN)/processor $(BIN)/local

test: ## install and start what the tests need, then run every test
	hack/test.sh
