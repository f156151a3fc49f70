# kjobs. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

# ko builds with CGO_ENABLED=0 -trimpath -tags=grpcnotrace (ko.yaml says
# why the tag); building and testing the same way lets every target share
# one Go build cache.
export CGO_ENABLED := 0
export GOFLAGS := -trimpath -tags=grpcnotrace
export KO_CONFIG_PATH := $(CURDIR)/ko.yaml

BIN := $(CURDIR)/bin
PORT ?= 8080

.PHONY: help build run cluster test bench images deploy release

help: ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

# kn-jobs is the CLI under its kn plugin name. kn finds plugins with
# os.Stat and exec.LookPath, which follow links, and runs them by the link's
# path, so the binary sees it is kn-jobs.
build: ## build every binary into ./bin, the CLI kjobs (and kn-jobs, its kn plugin name) too
	go build -o $(BIN)/ ./services/... ./functions/... ./processor ./cmd/...
	ln -sfn kjobs $(BIN)/kn-jobs

run: build ## the whole pipeline on 127.0.0.1:$(PORT), no cluster needed
	PORT=$(PORT) KJOBS_PROCESSOR=$(BIN)/processor $(BIN)/local

# Knative's in-memory channel dispatcher always listens on 8080, so the
# cluster's API defaults to 8090; PORT=<port> on the command line or in the
# environment chooses another.
CLUSTER_PORT := $(if $(filter command line environment,$(origin PORT)),$(PORT),8090)

cluster: ## kjobs on a local control plane with Knative Eventing's real data plane; API on 127.0.0.1:8090 (or PORT)
	hack/cluster.sh $(CLUSTER_PORT)

test: ## install and start what the tests need, then run every test
	hack/test.sh

bench: ## the load benchmarks of BENCHMARKS.md (needs redis-server and wrk)
	hack/bench/run.sh

# ko comes from hack/tools (the pinned version, so a release is reproducible);
# kubectl is yours, matching your cluster.
images: ## build and push every image to $(KO_DOCKER_REPO) with ko
	bin="$$(hack/tools/build.sh ko)"; PATH="$$bin:$$PATH" hack/images.sh

deploy: ## build from source and apply the dev overlay to the current kubeconfig (needs KO_DOCKER_REPO)
	ko="$$(hack/tools/build.sh ko)/ko"; kubectl kustomize kustomize/overlays/dev | "$$ko" resolve -B -f - | kubectl apply -f -

release: ## push every image to $(KO_DOCKER_REPO) and pin kustomize/overlays to them by digest
	bin="$$(hack/tools/build.sh ko)"; PATH="$$bin:$$PATH" hack/release.sh
