# mk/cuda.mk: the CUDA backend module, its op tests and its benchmarks.
#
# With nvcc (NVCC from the Makefile; default /usr/local/cuda/bin/nvcc): builds
# $(BUILD)/liblogitlens_cuda.so from kernels/cuda/*.cu for sm_80 and sm_90, linked against cuBLAS,
# cuBLASLt and the CUDA runtime (rpath to the toolkit's lib dir), and adds it to ALL. The executable
# never links against CUDA: host/engine/backend.c dlopens the module at run time.
# Without nvcc: nothing is built, and test-gpu / bench-gpu say why they skip.
#
#   make test-gpu    op-by-op comparison CUDA vs CPU (tests/gpu), then the model suite
#                    (tests/gpu/run_models.sh); prints "test-gpu: skipped (reason)" only where there is
#                    no GPU at all; a GPU the module cannot use (old driver, missing libraries) fails
#   make sanitize-gpu  compute-sanitizer memcheck (op tests, one model run), racecheck and synccheck
#                    (tests/gpu/sanitize.sh); skipped without a GPU or without compute-sanitizer
#   make bench-gpu   lens benchmarks (bench/gpu); needs a GPU

.PHONY: test-gpu sanitize-gpu bench-gpu

CUDA_NVCC := $(strip $(NVCC))

# Plain C, built with or without nvcc (mk/gpu_harness.mk runs them against a CPU stand-in module).
# The probe only dlopens the module: it builds without the CPU backend and tells whether a GPU is usable.
$(BUILD)/tests/gpu/cuda_probe: tests/gpu/cuda_probe.c tests/gpu/gpu_present.h include/ll_backend.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Iinclude -o $@ $< -ldl

# test_backend_ops: the forward ops and main, the lens ops, and their shared harness.
GPU_OPS_SRCS := tests/gpu/test_backend_ops.c tests/gpu/test_backend_lens.c tests/gpu/ops_harness.c
$(BUILD)/tests/gpu/test_backend_ops: $(GPU_OPS_SRCS) tests/gpu/ops_harness.h tests/gpu/gpu_present.h $(BUILD)/liblogitlens.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(GPU_OPS_SRCS) $(BUILD)/liblogitlens.a $(LDFLAGS) $(LDLIBS)

# The lens tiling rule of the CUDA module (include/ll_cuda_tiling.h, plain C), unit-tested on the CPU.
$(BUILD)/tests/gpu/test_lens_tiling: tests/gpu/test_lens_tiling.c include/ll_cuda_tiling.h include/ll_cuda_plan.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Iinclude -Ikernels/cuda -o $@ $< -lm

ifneq ($(CUDA_NVCC),)

CUDA_HOME    ?= $(patsubst %/bin/nvcc,%,$(realpath $(CUDA_NVCC)))
CUDA_LIBDIR  := $(firstword $(wildcard $(CUDA_HOME)/lib64 $(CUDA_HOME)/targets/x86_64-linux/lib $(CUDA_HOME)/lib))
CUDA_GENCODE := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
ifeq ($(SAN),1)
CUDA_OPT     := -O1 -g
else
CUDA_OPT     := -O2 -g
endif
NVCCFLAGS    := -std=c++17 $(CUDA_OPT) $(CUDA_GENCODE) -Iinclude -Xcompiler -fPIC -Xcompiler -fvisibility=hidden -Xcompiler -Wall \
                -Xcompiler -Wextra -MMD -MP
CUDA_LDLIBS  := -L$(CUDA_LIBDIR) -Xlinker -rpath=$(CUDA_LIBDIR) -lcublas -lcublasLt -lcudart

CUDA_SRCS    := $(sort $(wildcard kernels/cuda/*.cu))
CUDA_OBJS    := $(CUDA_SRCS:%.cu=$(BUILD)/obj/%.o)
CUDA_MODULE  := $(BUILD)/liblogitlens_cuda.so

ALL += $(CUDA_MODULE)

$(BUILD)/obj/kernels/cuda/%.o: kernels/cuda/%.cu
	@mkdir -p $(dir $@)
	$(CUDA_NVCC) $(NVCCFLAGS) -c $< -o $@

$(CUDA_MODULE): $(CUDA_OBJS)
	$(CUDA_NVCC) -shared $(CUDA_GENCODE) -o $@ $^ $(CUDA_LDLIBS)

test-gpu: $(CUDA_MODULE) $(BUILD)/tests/gpu/cuda_probe
	@reason=$$($(BUILD)/tests/gpu/cuda_probe $(CUDA_MODULE) 2>&1); rc=$$?; \
	if [ $$rc -eq 2 ]; then echo "test-gpu: skipped ($$reason)"; exit 0; fi; \
	if [ $$rc -ne 0 ]; then echo "test-gpu: FAILED: $$reason"; exit 1; fi; \
	echo "test-gpu: $$reason"; \
	$(MAKE) --no-print-directory all $(BUILD)/tests/gpu/test_backend_ops || exit 1; \
	$(BUILD)/tests/gpu/test_backend_ops $(CUDA_MODULE) || exit 1; \
	if [ -f tests/gpu/run_models.sh ]; then \
	  LOGITLENS_BIN=$(abspath $(BUILD)/logitlens) PYTHON=$(PYTHON) bash tests/gpu/run_models.sh || exit 1; \
	fi; \
	echo "test-gpu: passed"

sanitize-gpu: all $(BUILD)/tests/gpu/test_backend_ops $(BUILD)/tests/gpu/cuda_probe
	bash tests/gpu/sanitize.sh $(CUDA_MODULE) $(BUILD)/tests/gpu/test_backend_ops $(BUILD)/logitlens \
	  $(BUILD)/tests/gpu/cuda_probe

$(BUILD)/bench/gpu/bench_lens: bench/gpu/bench_lens.cu include/ll_backend.h
	@mkdir -p $(dir $@)
	$(CUDA_NVCC) -std=c++17 -O2 $(CUDA_GENCODE) -Iinclude -Xcompiler -Wall -Xcompiler -Wextra -o $@ $< $(CUDA_LDLIBS) -ldl

bench-gpu: all $(BUILD)/bench/gpu/bench_lens $(BUILD)/tests/gpu/cuda_probe
	@reason=$$($(BUILD)/tests/gpu/cuda_probe $(CUDA_MODULE) 2>&1); rc=$$?; \
	if [ $$rc -ne 0 ]; then echo "bench-gpu: cannot run ($$reason)"; exit 1; fi
	$(BUILD)/bench/gpu/bench_lens $(CUDA_MODULE)
	LOGITLENS_BIN=$(abspath $(BUILD)/logitlens) PYTHON=$(PYTHON) bash bench/gpu/e2e_llama8b.sh

-include $(CUDA_OBJS:.o=.d)

else

# Without nvcc there is no module: a skip where there is no GPU, a failure where there is one.
test-gpu: $(BUILD)/tests/gpu/cuda_probe
	@gpu=$$($(BUILD)/tests/gpu/cuda_probe --gpu-present 2>&1); \
	if [ $$? -eq 0 ]; then echo "test-gpu: FAILED: a GPU is present ($$gpu) but nvcc was not found, so the CUDA module is not built (set NVCC=/path/to/nvcc)"; exit 1; fi; \
	echo "test-gpu: skipped (nvcc not found: the CUDA module is not built; set NVCC=/path/to/nvcc)"

sanitize-gpu:
	@echo "sanitize-gpu: skipped (nvcc not found: the CUDA module is not built; set NVCC=/path/to/nvcc)"

bench-gpu:
	@echo "bench-gpu: cannot run (nvcc not found: the CUDA module is not built; set NVCC=/path/to/nvcc)"; exit 1

endif

EXTRA_TESTS += test-gpu
