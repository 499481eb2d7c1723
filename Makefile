# switchboard — the two commands a newcomer needs are `make run` and `make test`.
GO       ?= go
BIN      := bin
RUN_DIR  ?= run
SOCKET   ?= $(RUN_DIR)/switchboard.sock
ADMIN    ?= $(RUN_DIR)/admin.sock
METRICS  ?= 127.0.0.1:9464
CMDS     := switchboard sbctl sbbench telsim xmlapi peerbench
XML_ADDR ?= 127.0.0.1:8080
PKGS     := ./...
BENCH    ?= .
COUNT    ?= 6
FUZZTIME ?= 10s

.PHONY: all build run test test-short bench bench-compare bench-table fuzz lint cover clean

all: build

## build: every binary into bin/
build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

## run: build and start the daemon on its embedded default (three in-process simulated
##      tiers) and the XML API front end beside it; Ctrl-C stops both
run: build
	@mkdir -p $(RUN_DIR)/data
	@echo "switchboard: socket $(SOCKET), admin $(ADMIN), metrics http://$(METRICS)/metrics, data $(RUN_DIR)/data; XML API on http://$(XML_ADDR)/WBXService/XMLService"
	@echo "try it, in another terminal:"
	@echo "  curl -sS -i --data-binary @xmlapi/testdata/seed_request.xml http://$(XML_ADDR)/WBXService/XMLService"
	@echo "  $(BIN)/sbctl -socket $(SOCKET) -json allocate -name 'Sample Teleconference-only meeting'"
	@echo "  $(BIN)/sbctl -socket $(SOCKET) lookup KEY"
	@echo "  $(BIN)/sbbench -socket $(SOCKET) -concurrency 32 -duration 5s"
	@echo "  $(BIN)/sbctl -admin-socket $(ADMIN) status     # tiers, breakers, pools; also reload, drain, breaker"
	@echo "stop with Ctrl-C"
	@trap 'kill $$xp 2>/dev/null; wait $$xp 2>/dev/null' EXIT INT TERM; \
	$(BIN)/xmlapi -listen $(XML_ADDR) -socket $(SOCKET) & xp=$$!; \
	$(BIN)/switchboard -socket $(SOCKET) -data-dir $(RUN_DIR)/data -admin-socket $(ADMIN) -metrics-addr $(METRICS)

## test: vet and staticcheck (pinned in go.mod as a tool), then every test with the race
##       detector (what CI runs)
test:
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	$(GO) test -race -count=1 -timeout 5m $(PKGS)

## test-short: fast tests only, no race detector
test-short:
	$(GO) test -short -count=1 $(PKGS)

## bench: every benchmark, COUNT runs, into bench/results/latest.txt (compare with go tool benchstat)
bench:
	@mkdir -p bench/results
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(COUNT) $(PKGS) | tee bench/results/latest.txt

## bench-compare REF=<git ref>: go tool benchstat of REF against the working tree
bench-compare:
	@test -n "$(REF)" || (echo "usage: make bench-compare REF=<git ref>"; exit 2)
	./bench/compare.sh $(REF)

## bench-table: measure every budget of the design (benchmarks and sbbench scenarios) and
##              rewrite the table in bench/README.md; needs an idle machine (bench/table.sh)
bench-table: build
	./bench/table.sh

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	@for t in $$($(GO) test -list '^Fuzz' ./fuzz | grep '^Fuzz'); do \
		echo "== $$t"; \
		$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./fuzz || exit 1; \
	done

## lint: gofmt, go vet and staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)

## cover: coverage profile and summary
cover:
	$(GO) test -count=1 -coverprofile=cover.out $(PKGS)
	$(GO) tool cover -func=cover.out | tail -1

clean:
	rm -rf $(BIN) $(RUN_DIR) cover.out
