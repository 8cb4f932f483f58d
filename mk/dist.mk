# mk/dist.mk: the communicator modules behind include/ll_comm.h and their tests (docs/ranks.md).
#
# $(BUILD)/liblogitlens_mpi.so   host/dist/mpi/comm_mpi.c against OpenMPI (pkg-config ompi-c, else mpicc),
#                                for CPU ranks and as the NCCL module's bootstrap; built by `make all` when
#                                MPI is present (Debian: tools/deps/debian-mpi.txt).
# $(BUILD)/liblogitlens_nccl.so  host/dist/nccl/comm_nccl.c (+ rendezvous.c) with the system C compiler
#                                against the CUDA toolkit's headers, -lnccl -lcudart, rpath to their
#                                directories; built by `make all` when nvcc, nccl.h and libnccl.so are found.
# The executable links neither: host/dist/ranks.c (in the main library) dlopens them at run time.
# Each module exports only its init symbol (-fvisibility=hidden) and links its own copy of common.c, so
# it needs nothing from the program that loads it (-Wl,-z,defs checks that at link time).
#
#   make test-dist   rank detection, rendezvous files, world-open errors, and the MPI communicator under
#                    mpirun with 1..4 ranks (every op; abort and a killed rank end the job); part of `make test`.
#                    Without MPI the mpirun tests say "skipped (reason)" and the rest still runs.

.PHONY: test-dist

DIST_MODULE_CFLAGS := -std=c11 -D_GNU_SOURCE $(OPT) -fPIC -shared -fvisibility=hidden -Wall -Wextra -Iinclude
DIST_MODULE_LDFLAGS := -Wl,-z,defs
DIST_COMMA := ,

# ---- MPI ----
DIST_MPI_MODULE := $(BUILD)/liblogitlens_mpi.so
DIST_MPI_SRCS   := host/dist/mpi/comm_mpi.c host/util/common.c
DIST_HAVE_OMPI_PC := $(shell pkg-config --exists ompi-c 2>/dev/null && echo yes)
DIST_MPICC      := $(shell command -v mpicc 2>/dev/null)
ifeq ($(DIST_HAVE_OMPI_PC),yes)
DIST_MPI_CC     := $(CC)
DIST_MPI_CFLAGS := $(shell pkg-config --cflags ompi-c)
DIST_MPI_LIBDIR := $(shell pkg-config --variable=libdir ompi-c)
DIST_MPI_LIBS   := $(shell pkg-config --libs ompi-c)
ifneq ($(DIST_MPI_LIBDIR),)
DIST_MPI_LIBS   += -Wl,-rpath,$(DIST_MPI_LIBDIR)
endif
DIST_MPI_SKIP   :=
else ifneq ($(DIST_MPICC),)
DIST_MPI_CC     := $(DIST_MPICC)
DIST_MPI_CFLAGS :=
DIST_MPI_LIBS   :=
DIST_MPI_SKIP   :=
else
DIST_MPI_SKIP   := neither mpicc nor the ompi-c pkg-config file found: CPU ranks need OpenMPI (apt-get install openmpi-bin libopenmpi-dev)
endif

# ---- NCCL ----
DIST_NCCL_MODULE := $(BUILD)/liblogitlens_nccl.so
DIST_NCCL_SRCS   := host/dist/nccl/comm_nccl.c host/dist/rendezvous.c host/util/common.c
DIST_NVCC        := $(strip $(NVCC))
NCCL_HOME        ?=
ifeq ($(DIST_NVCC),)
DIST_NCCL_SKIP   := nvcc not found: no CUDA toolkit (set NVCC=/path/to/nvcc)
else
DIST_CUDA_HOME   := $(patsubst %/bin/nvcc,%,$(realpath $(DIST_NVCC)))
DIST_CUDA_LIBDIR := $(firstword $(wildcard $(DIST_CUDA_HOME)/lib64 $(DIST_CUDA_HOME)/targets/x86_64-linux/lib $(DIST_CUDA_HOME)/lib))
DIST_NCCL_H      := $(firstword $(wildcard $(if $(NCCL_HOME),$(NCCL_HOME)/include/nccl.h) $(DIST_CUDA_HOME)/include/nccl.h \
                      /usr/include/nccl.h /usr/local/include/nccl.h))
DIST_NCCL_SO     := $(firstword $(wildcard $(if $(NCCL_HOME),$(NCCL_HOME)/lib/libnccl.so $(NCCL_HOME)/lib64/libnccl.so) \
                      $(DIST_CUDA_LIBDIR)/libnccl.so /usr/lib/x86_64-linux-gnu/libnccl.so /usr/local/lib/libnccl.so))
ifeq ($(DIST_NCCL_H),)
DIST_NCCL_SKIP   := nccl.h not found (install NCCL, e.g. Debian/Ubuntu libnccl-dev, or set NCCL_HOME)
else ifeq ($(DIST_NCCL_SO),)
DIST_NCCL_SKIP   := libnccl.so not found (install NCCL, e.g. Debian/Ubuntu libnccl-dev, or set NCCL_HOME)
else
DIST_NCCL_SKIP   :=
DIST_NCCL_LIBDIR := $(patsubst %/,%,$(dir $(realpath $(DIST_NCCL_SO))))
DIST_NCCL_INCS   := $(sort $(patsubst %/,%,$(dir $(DIST_NCCL_H))) $(DIST_CUDA_HOME)/include)
DIST_NCCL_LIBDIRS := $(sort $(DIST_NCCL_LIBDIR) $(patsubst %/,%,$(dir $(realpath $(DIST_CUDA_LIBDIR)/libcudart.so))))
DIST_NCCL_CFLAGS := $(addprefix -I,$(DIST_NCCL_INCS))
DIST_NCCL_LIBS   := $(addprefix -L,$(DIST_NCCL_LIBDIRS)) $(addprefix -Wl$(DIST_COMMA)-rpath$(DIST_COMMA),$(DIST_NCCL_LIBDIRS)) \
                    -lnccl -lcudart
endif
endif

ifeq ($(DIST_MPI_SKIP),)
ALL += $(DIST_MPI_MODULE)
$(DIST_MPI_MODULE): $(DIST_MPI_SRCS) include/ll_comm.h include/ll_backend.h include/ll_common.h
	@mkdir -p $(dir $@)
	$(DIST_MPI_CC) $(DIST_MODULE_CFLAGS) $(DIST_MPI_CFLAGS) -o $@ $(DIST_MPI_SRCS) $(DIST_MODULE_LDFLAGS) $(DIST_MPI_LIBS) -ldl
endif

ifeq ($(DIST_NCCL_SKIP),)
ALL += $(DIST_NCCL_MODULE)
$(DIST_NCCL_MODULE): $(DIST_NCCL_SRCS) include/ll_comm.h include/ll_rendezvous.h include/ll_backend.h include/ll_common.h
	@mkdir -p $(dir $@)
	$(CC) $(DIST_MODULE_CFLAGS) $(DIST_NCCL_CFLAGS) -o $@ $(DIST_NCCL_SRCS) $(DIST_MODULE_LDFLAGS) $(DIST_NCCL_LIBS)
endif

# ---- tests ----
DIST_TEST_BINS := $(patsubst tests/dist/%.c,$(BUILD)/tests/dist/%,$(sort $(wildcard tests/dist/*.c)))

$(BUILD)/tests/dist/%: tests/dist/%.c $(BUILD)/liblogitlens.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/liblogitlens.a $(LDFLAGS) $(LDLIBS)

EXTRA_TESTS += test-dist

test-dist: all $(DIST_TEST_BINS)
	@BUILD_DIR=$(abspath $(BUILD)) MPI_SKIP="$(DIST_MPI_SKIP)" NCCL_SKIP="$(DIST_NCCL_SKIP)" bash tests/dist/run.sh
