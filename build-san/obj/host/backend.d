build-san/obj/host/backend.o: host/backend.c include/ll_backend.h \
 include/ll_common.h include/ll_math.h
include/ll_backend.h:
include/ll_common.h:
include/ll_math.h:
