# sluice build, run and test targets. `make help` lists them.

GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
FUZZTIME ?= 10s
# Upper bound for one `go test` run (the end-to-end tests move several GiB).
TEST_TIMEOUT ?= 15m

.PHONY: all help build gen run test test-race-binary fuzz bench lint clean

all: build

help:
	@echo "targets: build gen run test test-race-binary fuzz bench lint clean"

## build: bin/sluice and every shipped main package
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/sluice .
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/demo-upstream ./tools/demo-upstream
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/apikey ./plugins/apikey
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/jwt ./plugins/jwt
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/gencert ./tools/gencert

## gen: regenerate the plugin protocol's Go code (protoc, protoc-gen-go,
## protoc-gen-go-grpc; .ci/run installs them)
gen:
	plugins/authapi/gen.sh

## run: sluice on etc/sluice.toml in front of a demo upstream on 127.0.0.1:8081
## (HTTP/1.1) and 127.0.0.1:8444 (TLS, HTTP/2); Ctrl-C stops both
run: build
	@mkdir -p bin/run
	@bin/gencert -dir etc/certs
	@bin/demo-upstream -listen 127.0.0.1:8081 -tls-listen 127.0.0.1:8444 \
		-cert etc/certs/upstream.pem -key etc/certs/upstream-key.pem & up=$$!; \
	trap 'kill $$up 2>/dev/null; wait $$up 2>/dev/null' EXIT; trap 'exit 130' INT TERM; \
	RUNTIME_DIRECTORY="$(CURDIR)/bin/run" bin/sluice run -c etc/sluice.toml || exit $$?; \
	while [ -S bin/run/control.sock ]; do sleep 1; done
	@# (after "sluice upgrade" the supervisor started here has handed over to
	@# a new one: keep the demo upstream up while that one serves, that is
	@# until it removes its control socket on exit; polling the socket file
	@# sends the new supervisor nothing, so its log stays quiet)

## test: vet, then unit and end-to-end tests with the race detector
## (the e2e tests build their own sluice binary)
test:
	$(GO) vet ./...
	$(GO) test -race -shuffle=on -count=1 -timeout $(TEST_TIMEOUT) ./...

## test-race-binary: the end-to-end and supervisor tests against a sluice
## binary built with the race detector, so that a data race in the
## supervisor, a worker or a plugin host stops that process and fails the
## test that met it (`make test` runs the tests, not sluice, under the
## detector). About five minutes; not part of `make test`.
test-race-binary:
	$(GO) build -race -ldflags "$(LDFLAGS)" -o bin/sluice-race .
	GORACE=halt_on_error=1 SLUICE_BINARY="$(CURDIR)/bin/sluice-race" \
		$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./gateway/e2e/ ./supervisor/

## fuzz: every Fuzz target of every package for $(FUZZTIME)
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		list=$$($(GO) test -list '^Fuzz' $$pkg) || { echo "$$list"; exit 1; }; \
		for fn in $$(echo "$$list" | grep '^Fuzz' || true); do \
			echo "== $$pkg $$fn"; \
			$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

## bench: Go benchmarks (-benchmem: head parser, router match, pool
## checkout, LB pick, ...), the end-to-end comparison with nginx and HAProxy
## (tools/bench/run.sh), and reload/upgrade timing and latency
## (tools/bench/restart.sh), the CPU an auth plugin call adds (tools/bench/plugin.sh),
## the cost of stats (tools/bench/stats.sh: builds with and without them), and
## upstream resilience (tools/bench/resilience.sh: health checks, rate limit and
## circuit breaker with 1 vs 4 workers, CPU cost of a retry)
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./gateway/...
	tools/bench/run.sh
	tools/bench/restart.sh
	tools/bench/plugin.sh
	tools/bench/stats.sh
	tools/bench/resilience.sh

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## clean: remove build output
clean:
	rm -rf bin
