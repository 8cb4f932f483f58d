# mk/fuzz_journal.mk: fuzzing of the run journal's batch files (host/io/journal_batch.c, include/ll_journal.h)
# with libFuzzer (settings in mk/fuzz_common.mk).
#
#   make fuzz-journal   short run (FUZZ_SECONDS, default 10 s); part of `make test`; prints
#                       "fuzz-journal: skipped (reason)" without clang's fuzzer runtime

.PHONY: fuzz-journal

FUZZ_JOURNAL_SRCS := host/io/journal_batch.c host/util/sha256.c host/util/common.c

EXTRA_TESTS += fuzz-journal

$(FUZZ_BUILD)/fuzz_journal: tests/fuzz/fuzz_journal.c $(FUZZ_JOURNAL_SRCS) include/ll_journal.h include/ll_h5.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_JOURNAL_SRCS) $(FUZZ_LIBS)

fuzz-journal:
	@mkdir -p $(FUZZ_BUILD)/corpus_journal
	@reason=$$($(FUZZ_PROBE)); if [ -n "$$reason" ]; then echo "fuzz-journal: skipped ($$reason)"; exit 0; fi; \
	$(MAKE) --no-print-directory $(FUZZ_BUILD)/fuzz_journal || exit 1; \
	printf 'R\001\003\002\001\004\005\006abcdefgh' > $(FUZZ_BUILD)/corpus_journal/seed-roundtrip; \
	printf 'LLJBATCH\001\000\000\000\001\000\000\000' > $(FUZZ_BUILD)/corpus_journal/seed-header; \
	echo "fuzz-journal: fuzz_journal for $(FUZZ_SECONDS) s"; \
	TMPDIR=$(abspath $(FUZZ_BUILD)) $(FUZZ_BUILD)/fuzz_journal -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	  -rss_limit_mb=4096 -max_len=4096 -artifact_prefix=$(FUZZ_BUILD)/crash- $(FUZZ_BUILD)/corpus_journal \
	  > $(FUZZ_BUILD)/fuzz_journal.log 2>&1; rc=$$?; tail -n 3 $(FUZZ_BUILD)/fuzz_journal.log; \
	if [ $$rc -ne 0 ]; then echo "fuzz-journal: FAILED (log: $(FUZZ_BUILD)/fuzz_journal.log)"; exit 1; fi; \
	echo "fuzz-journal: passed"
