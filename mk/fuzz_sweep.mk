# mk/fuzz_sweep.mk: fuzzing of the sweep file reader (host/sweep/sweep_yaml.c, host/sweep/sweep_file.c,
# include/ll_sweep.h) with libFuzzer (settings in mk/fuzz_common.mk).
#
#   make fuzz-sweep        short run (FUZZ_SECONDS, default 10 s); part of `make test`; prints
#                          "fuzz-sweep: skipped (reason)" without clang's fuzzer runtime
#   make fuzz-sweep-long   long run (FUZZ_LONG_SECONDS), corpus kept in build/fuzz/corpus_sweep
#
# Each input is read as YAML and as JSON. Seeds: the example sweeps of configs/sweeps/; a dictionary of the
# sweep file's keys and YAML's punctuation is written next to the corpus.

.PHONY: fuzz-sweep fuzz-sweep-long fuzz-sweep-run

FUZZ_SWEEP_SRCS := host/sweep/sweep_file.c host/sweep/sweep_yaml.c host/util/common.c
FUZZ_SWEEP_LIBS  = $(FUZZ_LIBS) $(shell pkg-config --libs yaml-0.1 2>/dev/null || echo -lyaml)
FUZZ_SWEEP_WORDS := name output shard_size models prompts lens slurm path backend tp pp batch_tokens threads \
                    files points layers topk save_probs job_name partition account qos time gpus_per_task \
                    cpus_per_task mem constraint max_parallel extra setup embed mid post last all cpu cuda auto \
                    '- ' ': ' '[' ']' '{' '}' '&a' '*a' '!!str' '---' '...' '\x22' "'" '|' '>' '\x23' null true '~'

EXTRA_TESTS += fuzz-sweep

$(FUZZ_BUILD)/fuzz_sweep: tests/fuzz/fuzz_sweep.c $(FUZZ_SWEEP_SRCS) include/ll_sweep.h host/sweep/sweep_tree.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(shell pkg-config --cflags yaml-0.1 2>/dev/null) -o $@ $< $(FUZZ_SWEEP_SRCS) \
	  $(FUZZ_SWEEP_LIBS)

fuzz-sweep:
	@mkdir -p $(FUZZ_BUILD)
	@reason=$$($(FUZZ_PROBE)); if [ -n "$$reason" ]; then echo "fuzz-sweep: skipped ($$reason)"; exit 0; fi; \
	$(MAKE) --no-print-directory $(FUZZ_BUILD)/fuzz_sweep && \
	$(MAKE) --no-print-directory fuzz-sweep-run FUZZ_RUN_SECONDS=$(FUZZ_SECONDS)

fuzz-sweep-long:
	@mkdir -p $(FUZZ_BUILD)
	@reason=$$($(FUZZ_PROBE)); if [ -n "$$reason" ]; then echo "fuzz-sweep-long: cannot run ($$reason)"; exit 1; fi; \
	$(MAKE) --no-print-directory $(FUZZ_BUILD)/fuzz_sweep && \
	$(MAKE) --no-print-directory fuzz-sweep-run FUZZ_RUN_SECONDS=$(FUZZ_LONG_SECONDS)

fuzz-sweep-run:
	@mkdir -p $(FUZZ_BUILD)/corpus_sweep; \
	cp configs/sweeps/*.yaml configs/sweeps/*.json $(FUZZ_BUILD)/corpus_sweep/ 2>/dev/null; \
	for w in $(FUZZ_SWEEP_WORDS); do printf '"%s"\n' "$$w"; done > $(FUZZ_BUILD)/sweep.dict; \
	echo "fuzz-sweep: fuzz_sweep for $(FUZZ_RUN_SECONDS) s"; \
	TMPDIR=$(abspath $(FUZZ_BUILD)) $(FUZZ_BUILD)/fuzz_sweep -max_total_time=$(FUZZ_RUN_SECONDS) -timeout=10 \
	  -rss_limit_mb=4096 -max_len=8192 -dict=$(FUZZ_BUILD)/sweep.dict -artifact_prefix=$(FUZZ_BUILD)/crash- \
	  $(FUZZ_BUILD)/corpus_sweep > $(FUZZ_BUILD)/fuzz_sweep.log 2>&1; rc=$$?; tail -n 3 $(FUZZ_BUILD)/fuzz_sweep.log; \
	if [ $$rc -ne 0 ]; then echo "fuzz-sweep: FAILED (log: $(FUZZ_BUILD)/fuzz_sweep.log)"; exit 1; fi; \
	echo "fuzz-sweep: passed"
