build-san/obj/kernels/cpu/cpu_memory.o: kernels/cpu/cpu_memory.c \
 kernels/cpu/cpu_internal.h include/ll_backend.h include/ll_common.h \
 include/ll_math.h
kernels/cpu/cpu_internal.h:
include/ll_backend.h:
include/ll_common.h:
include/ll_math.h:
