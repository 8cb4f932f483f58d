build-san/obj/kernels/cpu/cpu_lens.o: kernels/cpu/cpu_lens.c \
 kernels/cpu/cpu_internal.h include/ll_backend.h include/ll_common.h \
 include/ll_math.h kernels/cpu/cpu_exp.h \
 /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h \
 /usr/include/x86_64-linux-gnu/openblas-pthread/openblas_config.h
kernels/cpu/cpu_internal.h:
include/ll_backend.h:
include/ll_common.h:
include/ll_math.h:
kernels/cpu/cpu_exp.h:
/usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h:
/usr/include/x86_64-linux-gnu/openblas-pthread/openblas_config.h:
