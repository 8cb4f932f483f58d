# logitlens: one Makefile. `make` builds build/logitlens (and build/liblogitlens_cuda.so when nvcc is
# present); `make demo` and `make test` install missing dependencies first (tools/install-deps.sh).
# SAN=1 builds everything with AddressSanitizer + UBSan under build-san/.

CC      ?= cc
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
PYTHON  ?= python3
SAN     ?= 0

ifeq ($(SAN),1)
BUILD    := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT      := -O1 -g
else
BUILD    := build
SANFLAGS :=
OPT      := -O2 -g
endif

PKGS     := hdf5 libcjson openblas libpcre2-8 libutf8proc yaml-0.1
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
HDF5_LIBDIR := $(shell pkg-config --variable=libdir hdf5 2>/dev/null)

CFLAGS  := -std=c11 -D_GNU_SOURCE $(OPT) -Wall -Wextra -fopenmp -Iinclude -Ihost $(PKG_CFLAGS) $(SANFLAGS) -MMD -MP
LDFLAGS := -fopenmp $(SANFLAGS) -rdynamic
LDLIBS  := $(PKG_LIBS) -lhdf5_hl -ldl -lm -lpthread

LIB_SRCS  := $(sort $(wildcard host/*/*.c kernels/cpu/*.c))
LIB_SRCS  := $(filter-out host/cli/main.c,$(LIB_SRCS))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ  := $(BUILD)/obj/host/cli/main.o
CTEST_SRCS := $(sort $(wildcard tests/c/*.c))
CTEST_BINS := $(CTEST_SRCS:tests/c/%.c=$(BUILD)/tests/%)

ALL := $(BUILD)/logitlens
# Extra test targets run by `make test` after the C and Python suites; fragments append to it.
EXTRA_TESTS :=

.DEFAULT_GOAL := all
# Fragments owned by one part of the project each (CUDA module, fuzzing, ...).
include $(sort $(wildcard mk/*.mk))

.PHONY: all deps demo test test-c test-py bench clean check-libs
all: check-libs $(ALL)

check-libs:
	@pkg-config --exists $(PKGS) || { echo "logitlens: missing libraries; run 'bash tools/install-deps.sh' (Debian: libhdf5-dev libcjson-dev libopenblas-dev libpcre2-dev libutf8proc-dev libyaml-dev pkg-config)" >&2; exit 1; }

deps:
	@bash tools/install-deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/liblogitlens.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/logitlens: $(MAIN_OBJ) $(BUILD)/liblogitlens.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/c/%.c $(BUILD)/liblogitlens.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/liblogitlens.a $(LDFLAGS) $(LDLIBS)

demo: deps
	@$(MAKE) --no-print-directory all
	@bash tools/demo.sh $(BUILD)/logitlens

test: deps
	@$(MAKE) --no-print-directory all $(CTEST_BINS)
	@$(MAKE) --no-print-directory test-c test-py $(EXTRA_TESTS)

test-c: $(CTEST_BINS)
	@bash tests/run_c_tests.sh $(CTEST_BINS)

test-py: all $(CTEST_BINS)
	rm -rf $(BUILD)/pyenv && $(PYTHON) -m venv --system-site-packages $(BUILD)/pyenv
	PIP_DISABLE_PIP_VERSION_CHECK=1 $(BUILD)/pyenv/bin/python -m pip install -q --no-index --no-build-isolation ./tools/python
	LOGITLENS_BIN=$(abspath $(BUILD)/logitlens) LOGITLENS_PKG_INSTALLED=1 $(abspath $(BUILD)/pyenv/bin/python) -m pytest -q tests

bench: all
	@bash bench/run_cpu.sh $(BUILD)/logitlens

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
