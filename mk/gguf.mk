# mk/gguf.mk: GGUF dequantization (host/model/gguf_dequant.c): its test driver and its benchmark.
#
#   make test-gguf     builds $(BUILD)/tools/gguf_dequant and runs tests/test_gguf_dequant.py (bit-exact
#                      comparison with the gguf Python package); the tool is also built before `make
#                      test-py`, which runs the same test file with the others
#   make bench-gguf    dequantization throughput per type against memcpy, then the gguf package's numpy
#                      dequantization as the peer (bench/gguf/, results in bench/README.md)
#
# Both link only the dequantization and common.o, not the whole library, so that they build and run
# while other parts of the library are half-written.

.PHONY: test-gguf bench-gguf

GGUF_DQ_OBJS := $(BUILD)/obj/host/model/gguf_dequant.o $(BUILD)/obj/host/util/common.o

$(BUILD)/tools/gguf_dequant: tools/gguf_dequant.c $(GGUF_DQ_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(GGUF_DQ_OBJS) $(LDFLAGS) -lm

$(BUILD)/bench/gguf_dequant_bench: bench/gguf/bench_dequant.c $(GGUF_DQ_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(GGUF_DQ_OBJS) $(LDFLAGS) -lm

# tests/test_gguf_dequant.py finds the tool next to LOGITLENS_BIN (or through GGUF_DEQUANT_BIN).
test-py: $(BUILD)/tools/gguf_dequant

test-gguf: $(BUILD)/tools/gguf_dequant
	GGUF_DEQUANT_BIN=$(abspath $(BUILD)/tools/gguf_dequant) $(PYTHON) -m pytest -q tests/test_gguf_dequant.py

# GGUF_BENCH_ARGS: [elements [repeats]] for both programs (default 64M elements, 5 and 3 repeats).
GGUF_BENCH_ARGS ?=
bench-gguf: $(BUILD)/bench/gguf_dequant_bench
	$(BUILD)/bench/gguf_dequant_bench $(GGUF_BENCH_ARGS)
	@if $(PYTHON) -c "import gguf" 2>/dev/null; then $(PYTHON) bench/gguf/peer_numpy.py $(GGUF_BENCH_ARGS); \
	else echo "bench-gguf: the numpy peer was skipped: the gguf Python package is missing (pip install gguf==0.19.0)"; fi
