# mk/fuzz_common.mk: settings shared by the libFuzzer targets (mk/fuzz_model.mk, mk/tokenizer.mk).
# clang with its fuzzer runtime: Debian packages clang and libclang-rt-14-dev
# (tools/deps/debian-tokenizer.txt). Targets are built with ASan + UBSan + LeakSanitizer.

FUZZ_CC           ?= clang
FUZZ_SECONDS      ?= 10
FUZZ_LONG_SECONDS ?= 3600
FUZZ_BUILD        := build/fuzz
FUZZ_LIBS          = $(shell pkg-config --libs libcjson libpcre2-8 libutf8proc 2>/dev/null) -lm
FUZZ_CFLAGS        = -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
                     -fno-sanitize-recover=undefined -Wall -Wextra -Iinclude -Ihost \
                     $(shell pkg-config --cflags libcjson libpcre2-8 libutf8proc 2>/dev/null)

# Prints nothing and succeeds when clang can link a libFuzzer target, else prints the reason.
FUZZ_PROBE = printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
	| $(FUZZ_CC) -x c -fsanitize=fuzzer,address -o $(FUZZ_BUILD)/.probe - >/dev/null 2>&1 \
	|| echo "$(FUZZ_CC) cannot link -fsanitize=fuzzer; install clang and libclang-rt-14-dev (tools/deps/debian-tokenizer.txt)"
