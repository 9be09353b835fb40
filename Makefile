# DittoFS operator. `make help` lists the targets.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

# The release version: VERSION (written by make release). The image tag, the bundle, the catalog
# and the binary (--version, the startup log, dittofs_operator_build_info) carry it.
VERSION := $(shell cat VERSION)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
IMG ?= ghcr.io/dittofs/dittofs-operator:v$(VERSION)
K8S_VERSION ?= v1.35.4
DITTOFS_VERSION ?= v0.29.0

ROOT := $(shell pwd)
BIN := $(ROOT)/bin
TOOLS := $(BIN)/tools
K8S_BIN := $(BIN)/k8s/$(K8S_VERSION)
export KUBEBUILDER_ASSETS := $(K8S_BIN)

OPERATOR_SDK_VERSION ?= v1.42.2
OPM_VERSION ?= v1.63.0
BUNDLE_VERSION ?= $(VERSION)
BUNDLE_IMG ?= ghcr.io/dittofs/dittofs-operator-bundle:v$(BUNDLE_VERSION)
CONTROLLER_GEN_VERSION ?= v0.20.1
GOLANGCI_LINT_VERSION ?= v2.15.0
CONTROLLER_GEN := $(TOOLS)/controller-gen-$(CONTROLLER_GEN_VERSION)
GOLANGCI_LINT := $(TOOLS)/golangci-lint-$(GOLANGCI_LINT_VERSION)
KUSTOMIZE_VERSION ?= v5.8.2
KUSTOMIZE := $(TOOLS)/kustomize-$(KUSTOMIZE_VERSION)
GOFAKES3_VERSION ?= v1.2.0
GOFAKES3 := $(TOOLS)/gofakes3-$(GOFAKES3_VERSION)
# The Helm CLI the operator chart is tested with: the library version helm-operator-plugins uses.
HELM_VERSION ?= v3.21.1
HELM := $(TOOLS)/helm-$(HELM_VERSION)
GO_TEST_FLAGS ?= -count=1 -timeout 20m

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD, RBAC and webhook configuration from the kubebuilder markers.
	$(CONTROLLER_GEN) crd webhook paths=./... output:crd:artifacts:config=config/crd/bases output:webhook:artifacts:config=config/webhook
	@# Namespaced rules (internal/): ClusterRole manager-role, bound cluster-wide or per namespace.
	$(CONTROLLER_GEN) rbac:roleName=manager-role paths=./internal/... output:rbac:artifacts:config=config/rbac
	@# Cluster-scoped rules (main.go): ClusterRole manager-cluster-role, always bound cluster-wide.
	$(CONTROLLER_GEN) rbac:roleName=manager-cluster-role paths=. output:rbac:stdout > config/rbac/cluster_role.yaml
	@# The operator chart's copies of the CRD, the rules, the webhooks and the version.
	bash hack/chart.sh

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: docs
docs: ## Generate docs/CRD_REFERENCE.md from the CRD.
	go run ./hack/crdref config/crd/bases/dittofs.dittofs.com_dittoservers.yaml docs/CRD_REFERENCE.md

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint and go vet (the operator's module and hack/dfsnode's).
	go vet ./...
	$(GOLANGCI_LINT) run ./...
	cd hack/dfsnode && go vet ./... && $(GOLANGCI_LINT) run ./...

.PHONY: golden
golden: helm ## Rewrite the golden files of the rendered charts, the operand's and the operator's (review the diff!).
	go test ./internal/specs -run TestRenderGolden -update
	go test ./test/packaging -run 'TestChart$$' -count=1 -update

.PHONY: verify
verify: manifests generate docs bundle catalog ## Regenerate CRD, RBAC, webhook, deepcopy, docs, bundle, catalog; fail on a diff.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	@git diff --exit-code -- config api docs/CRD_REFERENCE.md bundle bundle.Dockerfile catalog helm-charts/dittofs-operator || { echo "generated files are out of date: run make manifests generate docs bundle catalog and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- config api docs bundle bundle.Dockerfile catalog helm-charts/dittofs-operator)" || { git status --porcelain -- config api docs bundle bundle.Dockerfile catalog helm-charts/dittofs-operator; echo "untracked generated files"; exit 1; }

##@ Test

.PHONY: k8s-binaries
k8s-binaries: ## Build kube-apiserver, etcd, controller-manager, scheduler, kubectl, kwok from the Go proxy.
	bash hack/build-k8s.sh

.PHONY: monitoring-crds
monitoring-crds: ## Fetch the Prometheus operator's ServiceMonitor CRD (module proxy) into bin/crds for the tests.
	bash hack/monitoring-crds.sh >/dev/null

.PHONY: helm
helm: ## Build the pinned Helm CLI (the operator chart's tests) from the Go proxy into bin/tools.
	HELM_VERSION=$(HELM_VERSION) bash hack/build-helm.sh >/dev/null

.PHONY: promtool
promtool: ## Build promtool (Prometheus rule checks and unit tests) from the Go proxy into bin/tools.
	bash hack/build-promtool.sh >/dev/null

.PHONY: dittofs
dittofs: ## Build the real DittoFS server and CLI (dfs, dfsctl) from the Go proxy.
	bash hack/build-dittofs.sh

.PHONY: test
test: k8s-binaries dittofs monitoring-crds promtool helm $(KUSTOMIZE) $(GOFAKES3) ## Run every test: unit, envtest integration, DittoFS conformance, e2e with real DittoFS pods, packaging.
	cd hack/dfsnode && go test $(GO_TEST_FLAGS) ./...
	go test $(GO_TEST_FLAGS) ./...

.PHONY: unit
unit: k8s-binaries ## Run the package tests: pure builders, and each reconcile step alone on an API server (no DittoFS).
	go test $(GO_TEST_FLAGS) ./api/... ./internal/... ./test/layout/...

.PHONY: integration
integration: k8s-binaries monitoring-crds ## Run the envtest integration tests.
	go test $(GO_TEST_FLAGS) ./test/integration/...

.PHONY: conformance
conformance: dittofs ## Boot the real DittoFS v0.29.0 on what the operator renders.
	go test $(GO_TEST_FLAGS) ./test/conformance/...

.PHONY: dfsnode
dfsnode: ## Build bin/dfsnode: the node that runs pods as real processes (hack/dfsnode, virtual-kubelet).
	cd hack/dfsnode && go build -o $(BIN)/dfsnode .

.PHONY: e2e
e2e: k8s-binaries dittofs build dfsnode $(GOFAKES3) ## Run the end-to-end test: real DittoFS pods on a local cluster, files over NFS and SMB.
	go test $(GO_TEST_FLAGS) ./test/e2e/...

CHAOS_KILLS ?= 100
CHAOS_SERVERS ?= 12
CHAOS_LEADER_KILLS ?= 3
CHAOS_CHECK_EVERY ?= 10

.PHONY: chaos
chaos: build k8s-binaries ## Fault suite, long run on kwok: 100 operator SIGKILLs, API server restart, leader kills, pending releases (docs/RELIABILITY.md; not part of make test, which runs a short one).
	CHAOS_KILLS=$(CHAOS_KILLS) CHAOS_SERVERS=$(CHAOS_SERVERS) CHAOS_LEADER_KILLS=$(CHAOS_LEADER_KILLS) \
	CHAOS_CHECK_EVERY=$(CHAOS_CHECK_EVERY) CHAOS_QUIET=30s CHAOS_REPORT=$(BIN)/chaos/long.json \
		go test -count=1 -timeout 90m -v -run '^TestFaults$$' ./test/chaos/

.PHONY: bench
bench: build k8s-binaries ## Benchmark on a local kwok control plane (N=1,50,200; ~18 min; not part of make test).
	bash hack/bench.sh

.PHONY: fuzz
fuzz: ## Fuzz the value translator and the validator for 30s each.
	go test ./internal/specs -run '^$$' -fuzz FuzzTranslate -fuzztime 30s
	go test ./internal/validation -run '^$$' -fuzz FuzzValidate -fuzztime 30s

.PHONY: fuzz-long
fuzz-long: ## Fuzz the translator and the validator for 10^6 executions each (~30 min on 2 cores; not in make test).
	go test ./internal/specs -run '^$$' -fuzz FuzzTranslate -fuzztime 1000000x
	go test ./internal/validation -run '^$$' -fuzz FuzzValidate -fuzztime 1000000x

##@ OLM

.PHONY: olm-tools
olm-tools: ## Build operator-sdk and opm from the Go proxy into bin/tools.
	OPERATOR_SDK_VERSION=$(OPERATOR_SDK_VERSION) OPM_VERSION=$(OPM_VERSION) bash hack/build-olm-tools.sh

.PHONY: bundle
bundle: manifests olm-tools $(KUSTOMIZE) ## Generate and validate the OLM bundle (bundle/, bundle.Dockerfile).
	VERSION=$(BUNDLE_VERSION) IMG=$(IMG) OPERATOR_SDK_VERSION=$(OPERATOR_SDK_VERSION) KUSTOMIZE_VERSION=$(KUSTOMIZE_VERSION) bash hack/bundle.sh

.PHONY: catalog
catalog: bundle ## Render and validate the file-based catalog (catalog/) with opm.
	VERSION=$(BUNDLE_VERSION) BUNDLE_IMG=$(BUNDLE_IMG) OPM_VERSION=$(OPM_VERSION) bash hack/catalog.sh

.PHONY: bundle-build
bundle-build: ## Build the bundle image (needs a container engine).
	docker build -f bundle.Dockerfile -t $(BUNDLE_IMG) .

##@ Build and run

.PHONY: build
build: ## Build the operator binary (bin/manager), as the image does: static, no symbol tables.
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.buildCommit=$(COMMIT)" -o $(BIN)/manager .

.PHONY: run
run: build ## Run the operator against the current kubeconfig.
	$(BIN)/manager --metrics-secure=false --metrics-bind-address=127.0.0.1:8080 --health-probe-bind-address=127.0.0.1:8081

.PHONY: demo
demo: ## Local cluster + a node running real DittoFS pods; the operator, the sample, a file over NFS, mount commands.
	bash hack/demo.sh

.PHONY: demo-down
demo-down: ## Stop the demo operator and dfsnode, delete the local cluster.
	bash hack/demo.sh down

.PHONY: release
release: $(KUSTOMIZE) ## Set the release version: make release VERSION=x.y.z (VERSION, image tag, operator chart, bundle, catalog; CHANGELOG.md needs its section).
	@echo "$(VERSION)" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+$$' || { echo "VERSION=$(VERSION) is not x.y.z"; exit 1; }
	@grep -q '^## \[$(VERSION)\]' CHANGELOG.md || { echo "CHANGELOG.md has no '## [$(VERSION)]' section: move the Unreleased entries under it first"; exit 1; }
	echo "$(VERSION)" > VERSION
	cd config/manager && $(KUSTOMIZE) edit set image controller=ghcr.io/dittofs/dittofs-operator:v$(VERSION)
	sed -i 's|^    containerImage: .*|    containerImage: ghcr.io/dittofs/dittofs-operator:v$(VERSION)|' config/manifests/bases/dittofs-operator.clusterserviceversion.yaml
	$(MAKE) manifests bundle catalog helm
	@# The operator chart's golden renderings carry the version.
	$(MAKE) golden >/dev/null
	@echo "release $(VERSION): review git diff, then make verify test and commit"

.PHONY: release-dry-run
release-dry-run: ## make release for the next patch version in a throwaway clone of HEAD, and check everything moved together (CI).
	bash hack/release-dry-run.sh

.PHONY: docker-build
docker-build: ## Build the operator image (needs a container engine).
	docker build --build-arg COMMIT=$(COMMIT) -t $(IMG) .

.PHONY: build-installer
build-installer: $(KUSTOMIZE) ## Write dist/install.yaml (CRD, RBAC, operator) for kubectl apply -f.
	mkdir -p dist
	$(KUSTOMIZE) build config/default > dist/install.yaml

##@ Tools

$(CONTROLLER_GEN):
	mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(TOOLS)/controller-gen $@

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Build the pinned kustomize into bin/tools.

$(KUSTOMIZE):
	mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(TOOLS)/kustomize $@

.PHONY: gofakes3
gofakes3: $(GOFAKES3) ## Build the fake S3 server the control-plane tests use.

$(GOFAKES3):
	mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install github.com/johannesboyne/gofakes3/cmd/gofakes3@$(GOFAKES3_VERSION)
	mv $(TOOLS)/gofakes3 $@

$(GOLANGCI_LINT):
	mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(TOOLS)/golangci-lint $@
