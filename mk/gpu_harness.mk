# mk/gpu_harness.mk: the GPU test harness run on the CPU (part of `make test`).
#
# tests/gpu/standin_cuda.c builds a stand-in liblogitlens_cuda.so: the CPU backend naming itself "cuda" and
# rounding as the real module does (activations to the weights' 16-bit dtype before GEMMs, TF32 in the
# forward matmuls under allow_tf32 but never in the lens, lens_expect's split p). Against it:
#   - tests/gpu/test_lens_tiling: the CUDA lens tiling rule (include/ll_cuda_tiling.h), pure C;
#   - test_backend_ops (every op case, and a filtered run), run_models.sh (whole models, cpu vs "cuda") and
#     sanitize.sh (with tests/gpu/fake_sanitizer.sh, clean and with a reported error) must pass;
#   - tests/gpu/harness_negative.sh: with a fixed defect of the real module brought back in the stand-in
#     (LL_STANDIN_EMULATE), the tests that would have caught it must fail, and with a GPU present but an
#     unusable module (faked with LL_TEST_GPU_NODES) cuda_probe and test_backend_ops must fail, not skip.
# A harness that would fail correct CUDA code, or crash, or pass a defect, is found without a GPU.
#
#   make test-gpu-harness

.PHONY: test-gpu-harness

STANDIN_DIR := $(BUILD)/tests/gpu/standin
STANDIN     := $(STANDIN_DIR)/liblogitlens_cuda.so
STANDIN_SRCS := tests/gpu/standin_cuda.c $(sort $(wildcard kernels/cpu/*.c)) host/util/common.c

EXTRA_TESTS += test-gpu-harness

$(STANDIN): $(STANDIN_SRCS) $(wildcard kernels/cpu/*.h include/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -fPIC -shared -fvisibility=hidden -fopenmp -Wall -Wextra -Iinclude \
	  -Ikernels/cpu $(PKG_CFLAGS) -o $@ $(STANDIN_SRCS) $(PKG_LIBS) -lm

test-gpu-harness: all $(STANDIN) $(BUILD)/tests/gpu/test_backend_ops $(BUILD)/tests/gpu/cuda_probe \
                  $(BUILD)/tests/gpu/test_lens_tiling
	@echo "test-gpu-harness: the GPU tests against a CPU stand-in module"
	@$(BUILD)/tests/gpu/test_lens_tiling > $(STANDIN_DIR)/tiling.log 2>&1 \
	  || { cat $(STANDIN_DIR)/tiling.log; echo "test-gpu-harness: FAILED (test_lens_tiling)"; exit 1; }
	@tail -1 $(STANDIN_DIR)/tiling.log
	@$(BUILD)/tests/gpu/test_backend_ops $(STANDIN) > $(STANDIN_DIR)/ops.log 2>&1; rc=$$?; tail -1 $(STANDIN_DIR)/ops.log; \
	  if [ $$rc -ne 0 ] || ! grep -q " 0 failed" $(STANDIN_DIR)/ops.log; then grep "^FAIL" $(STANDIN_DIR)/ops.log | head; \
	  echo "test-gpu-harness: FAILED (test_backend_ops)"; exit 1; fi
	@$(BUILD)/tests/gpu/test_backend_ops $(STANDIN) lens | tail -1 | grep -q " 0 failed" \
	  || { echo "test-gpu-harness: FAILED (test_backend_ops, filtered to lens)"; exit 1; }
	@OUT=$(abspath $(STANDIN_DIR))/neg bash tests/gpu/harness_negative.sh $(STANDIN) $(BUILD)/tests/gpu/test_backend_ops \
	  $(BUILD)/tests/gpu/cuda_probe > $(STANDIN_DIR)/neg.log 2>&1 \
	  || { cat $(STANDIN_DIR)/neg.log; echo "test-gpu-harness: FAILED (harness_negative.sh)"; exit 1; }
	@tail -1 $(STANDIN_DIR)/neg.log
	@LOGITLENS_CUDA_MODULE_DIR=$(abspath $(STANDIN_DIR)) LOGITLENS_BIN=$(abspath $(BUILD)/logitlens) \
	  PYTHON=$(PYTHON) bash tests/gpu/run_models.sh > $(STANDIN_DIR)/models.log 2>&1 \
	  || { cat $(STANDIN_DIR)/models.log; echo "test-gpu-harness: FAILED (run_models.sh)"; exit 1; }
	@tail -1 $(STANDIN_DIR)/models.log
	@COMPUTE_SANITIZER=$(abspath tests/gpu/fake_sanitizer.sh) OUT=$(abspath $(STANDIN_DIR))/san \
	  LOGITLENS_CUDA_MODULE_DIR=$(abspath $(STANDIN_DIR)) bash tests/gpu/sanitize.sh $(STANDIN) \
	  $(BUILD)/tests/gpu/test_backend_ops $(BUILD)/logitlens /bin/true > $(STANDIN_DIR)/san.log 2>&1 \
	  || { cat $(STANDIN_DIR)/san.log; echo "test-gpu-harness: FAILED (sanitize.sh, clean)"; exit 1; }
	@tail -1 $(STANDIN_DIR)/san.log
	@if FAKE_SANITIZER_ERRORS=1 COMPUTE_SANITIZER=$(abspath tests/gpu/fake_sanitizer.sh) OUT=$(abspath $(STANDIN_DIR))/san \
	  LOGITLENS_CUDA_MODULE_DIR=$(abspath $(STANDIN_DIR)) bash tests/gpu/sanitize.sh $(STANDIN) \
	  $(BUILD)/tests/gpu/test_backend_ops $(BUILD)/logitlens /bin/true > $(STANDIN_DIR)/san-err.log 2>&1; then \
	  cat $(STANDIN_DIR)/san-err.log; echo "test-gpu-harness: FAILED (sanitize.sh passed a reported error)"; exit 1; fi
	@echo "test-gpu-harness: passed"
