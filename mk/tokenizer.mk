# mk/tokenizer.mk: fuzzing of the tokenizer (host/tokenizer/) with libFuzzer (settings shared with the
# other fuzz targets in mk/fuzz_common.mk).
#
#   make fuzz-tokenizer        short run of each target (FUZZ_SECONDS, default 10 s each); part of
#                              `make test`; prints "fuzz-tokenizer: skipped (reason)" without clang's
#                              fuzzer runtime
#   make fuzz-tokenizer-long   long run (FUZZ_LONG_SECONDS, default 3600 s each), corpus kept in
#                              build/fuzz/corpus_*; see docs/tokenizer.md
#   make test-tokenizer        the tokenizer's C and Python tests alone
#
# Targets: fuzz_tokenizer_load (bytes as tokenizer.json), fuzz_tokenizer_encode (bytes as text for
# four tokenizers) and fuzz_tokenizer_gguf (bytes as a GGUF file whose tokenizer.ggml.* metadata becomes a
# tokenizer; seeds written by tests/fuzz/fuzz_tokenizer_gguf_seeds.py, corpus build/fuzz/corpus_tok_gguf).
# Built with ASan + UBSan + LeakSanitizer; any crash, leak, timeout or abort fails.

.PHONY: fuzz-tokenizer fuzz-tokenizer-long test-tokenizer

# tok_gguf.c reads GGUF metadata through the GGUF reader (host/model/gguf.c, which hashes with sha256.c).
FUZZ_TOK_SRCS     := $(sort $(wildcard host/tokenizer/*.c)) host/util/common.c host/model/gguf.c host/util/sha256.c
FUZZ_TOK_TARGETS  := fuzz_tokenizer_load fuzz_tokenizer_encode fuzz_tokenizer_gguf

EXTRA_TESTS += fuzz-tokenizer

$(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_TOK_SRCS) $(wildcard host/tokenizer/*.h) include/ll_tokenizer.h include/ll_gguf.h $(wildcard tests/fuzz/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_TOK_SRCS) $(FUZZ_LIBS)

fuzz-tokenizer:
	@mkdir -p $(FUZZ_BUILD)
	@reason=$$($(FUZZ_PROBE)); if [ -n "$$reason" ]; then echo "fuzz-tokenizer: skipped ($$reason)"; exit 0; fi; \
	$(MAKE) --no-print-directory $(addprefix $(FUZZ_BUILD)/,$(FUZZ_TOK_TARGETS)) && \
	$(MAKE) --no-print-directory fuzz-tokenizer-run FUZZ_RUN_SECONDS=$(FUZZ_SECONDS)

fuzz-tokenizer-long:
	@mkdir -p $(FUZZ_BUILD)
	@reason=$$($(FUZZ_PROBE)); if [ -n "$$reason" ]; then echo "fuzz-tokenizer-long: cannot run ($$reason)"; exit 1; fi; \
	$(MAKE) --no-print-directory $(addprefix $(FUZZ_BUILD)/,$(FUZZ_TOK_TARGETS)) && \
	$(MAKE) --no-print-directory fuzz-tokenizer-run FUZZ_RUN_SECONDS=$(FUZZ_LONG_SECONDS)

.PHONY: fuzz-tokenizer-run
fuzz-tokenizer-run:
	@\
	for t in $(FUZZ_TOK_TARGETS); do \
	  corpus=$(FUZZ_BUILD)/corpus_$${t#fuzz_tokenizer_}; \
	  case $$t in fuzz_tokenizer_load) extra="-dict=tests/fuzz/tokenizer.dict -max_len=65536"; \
	    mkdir -p $$corpus; cp -n tests/fuzz/seeds_load/*.json $$corpus/ 2>/dev/null || true;; \
	  fuzz_tokenizer_gguf) extra="-dict=tests/fuzz/fuzz_tokenizer_gguf.dict -max_len=65536"; \
	    corpus=$(FUZZ_BUILD)/corpus_tok_gguf; \
	    $(PYTHON) tests/fuzz/fuzz_tokenizer_gguf_seeds.py $$corpus || exit 1;; \
	  *) extra="-max_len=4096";; esac; \
	  mkdir -p $$corpus; \
	  echo "fuzz-tokenizer: $$t for $(FUZZ_RUN_SECONDS) s"; \
	  $(FUZZ_BUILD)/$$t -max_total_time=$(FUZZ_RUN_SECONDS) -timeout=10 -rss_limit_mb=4096 $$extra \
	    -artifact_prefix=$(FUZZ_BUILD)/crash- $$corpus > $(FUZZ_BUILD)/$$t.log 2>&1; \
	  rc=$$?; tail -n 3 $(FUZZ_BUILD)/$$t.log; \
	  if [ $$rc -ne 0 ]; then echo "fuzz-tokenizer: $$t FAILED (log: $(FUZZ_BUILD)/$$t.log)"; exit 1; fi; \
	done; echo "fuzz-tokenizer: passed"

test-tokenizer: all $(BUILD)/tests/test_tokenizer
	$(BUILD)/tests/test_tokenizer
	LOGITLENS_BIN=$(abspath $(BUILD)/logitlens) PYTHONPATH=$(abspath tools/python) $(PYTHON) -m pytest -q \
		tests/test_tokenizer_hf.py tests/test_tokenizer_synth.py tests/test_tokenizer_cli.py tests/test_tokenizer_errors.py \
		tests/test_tokenizer_bytelevel_holes.py tests/test_tokenizer_gguf.py
