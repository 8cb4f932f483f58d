# mk/device_check.mk: the engine's model suites again with LOGITLENS_DEVICE_CHECK=1 (host/engine/backend_check.c):
# the CPU backend's "device" memory is unreadable by host code between ops and every op argument must be
# a device buffer of sufficient size, so host-side code that would break on the CUDA backend fails here,
# on machines without a GPU. Part of `make test`.
#
#   make test-device-check

.PHONY: test-device-check

DEVICE_CHECK_SUITES := tests/test_model_reference.py tests/test_lens_reference.py tests/test_prompts_input.py \
                       tests/test_lens_memory.py tests/test_interrupt.py tests/test_run_backend_flags.py \
                       tests/test_gguf_models.py tests/test_ranks.py

EXTRA_TESTS += test-device-check

test-device-check: all
	@echo "test-device-check: model suites with LOGITLENS_DEVICE_CHECK=1"
	@LOGITLENS_DEVICE_CHECK=1 LOGITLENS_BIN=$(abspath $(BUILD)/logitlens) PYTHONPATH=$(abspath tools/python) \
	  $(PYTHON) -m pytest -q $(DEVICE_CHECK_SUITES)
