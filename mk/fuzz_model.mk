# mk/fuzz_model.mk: fuzzing of the checkpoint readers with libFuzzer (settings in mk/fuzz_common.mk).
#
#   make fuzz-model        short run of each target (FUZZ_SECONDS, default 10 s each); part of `make test`;
#                          prints "fuzz-model: skipped (reason)" without clang's fuzzer runtime
#   make fuzz-model-long   long run (FUZZ_LONG_SECONDS each), corpus kept in build/fuzz/corpus_*
#
# Targets: fuzz_safetensors (bytes as a .safetensors file: host/model/safetensors.c), fuzz_model_config
# (bytes as config.json: host/model/model_config.c, host/model/config_fields.c, host/model/arch_*.c) and fuzz_gguf
# (bytes as a .gguf file: host/model/gguf.c). Built with ASan + UBSan + LeakSanitizer; any crash, leak, timeout,
# abort or broken invariant fails. Seeds: a few valid files written into the corpus before each run by
# tests/fuzz/make_model_seeds.py and tests/fuzz/make_gguf_seeds.py (the latter adds files from the gguf Python
# package's writer when it is installed, else only its own).

.PHONY: fuzz-model fuzz-model-long fuzz-model-run

FUZZ_MODEL_TARGETS := fuzz_safetensors fuzz_model_config fuzz_gguf
FUZZ_MODEL_SRCS    := host/model/safetensors.c host/model/gguf.c host/util/sha256.c host/util/common.c host/model/model_config.c host/model/config_fields.c \
                      $(sort $(wildcard host/model/arch_*.c))

EXTRA_TESTS += fuzz-model

$(FUZZ_BUILD)/fuzz_safetensors $(FUZZ_BUILD)/fuzz_model_config $(FUZZ_BUILD)/fuzz_gguf: $(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_MODEL_SRCS) \
    $(wildcard host/*/*.h include/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_MODEL_SRCS) $(FUZZ_LIBS)

fuzz-model:
	@mkdir -p $(FUZZ_BUILD)
	@reason=$$($(FUZZ_PROBE)); if [ -n "$$reason" ]; then echo "fuzz-model: skipped ($$reason)"; exit 0; fi; \
	$(MAKE) --no-print-directory $(addprefix $(FUZZ_BUILD)/,$(FUZZ_MODEL_TARGETS)) && \
	$(MAKE) --no-print-directory fuzz-model-run FUZZ_RUN_SECONDS=$(FUZZ_SECONDS)

fuzz-model-long:
	@mkdir -p $(FUZZ_BUILD)
	@reason=$$($(FUZZ_PROBE)); if [ -n "$$reason" ]; then echo "fuzz-model-long: cannot run ($$reason)"; exit 1; fi; \
	$(MAKE) --no-print-directory $(addprefix $(FUZZ_BUILD)/,$(FUZZ_MODEL_TARGETS)) && \
	$(MAKE) --no-print-directory fuzz-model-run FUZZ_RUN_SECONDS=$(FUZZ_LONG_SECONDS)

fuzz-model-run:
	@$(PYTHON) tests/fuzz/make_model_seeds.py $(FUZZ_BUILD)/corpus_safetensors $(FUZZ_BUILD)/corpus_model_config || exit 1; \
	$(PYTHON) tests/fuzz/make_gguf_seeds.py $(FUZZ_BUILD)/corpus_gguf || exit 1; \
	for t in $(FUZZ_MODEL_TARGETS); do \
	  c=$(FUZZ_BUILD)/corpus_$${t#fuzz_}; \
	  case $$t in fuzz_safetensors) extra="-dict=tests/fuzz/safetensors.dict -max_len=8192";; \
	    fuzz_gguf) extra="-dict=tests/fuzz/gguf.dict -max_len=8192";; \
	    *) extra="-dict=tests/fuzz/model_config.dict -max_len=8192";; esac; \
	  echo "fuzz-model: $$t for $(FUZZ_RUN_SECONDS) s"; \
	  TMPDIR=$(abspath $(FUZZ_BUILD)) $(FUZZ_BUILD)/$$t -max_total_time=$(FUZZ_RUN_SECONDS) -timeout=10 -rss_limit_mb=4096 \
	    $$extra -artifact_prefix=$(FUZZ_BUILD)/crash- $$c > $(FUZZ_BUILD)/$$t.log 2>&1; \
	  rc=$$?; tail -n 3 $(FUZZ_BUILD)/$$t.log; \
	  if [ $$rc -ne 0 ]; then echo "fuzz-model: $$t FAILED (log: $(FUZZ_BUILD)/$$t.log)"; exit 1; fi; \
	done; echo "fuzz-model: passed"
