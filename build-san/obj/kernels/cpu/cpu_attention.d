build-san/obj/kernels/cpu/cpu_attention.o: kernels/cpu/cpu_attention.c \
 kernels/cpu/cpu_internal.h include/ll_backend.h include/ll_common.h \
 include/ll_math.h kernels/cpu/cpu_exp.h
kernels/cpu/cpu_internal.h:
include/ll_backend.h:
include/ll_common.h:
include/ll_math.h:
kernels/cpu/cpu_exp.h:
