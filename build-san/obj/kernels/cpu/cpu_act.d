build-san/obj/kernels/cpu/cpu_act.o: kernels/cpu/cpu_act.c \
 kernels/cpu/cpu_internal.h include/ll_backend.h include/ll_common.h \
 include/ll_math.h
kernels/cpu/cpu_internal.h:
include/ll_backend.h:
include/ll_common.h:
include/ll_math.h:
