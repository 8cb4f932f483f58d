build-san/obj/host/comm_single.o: host/comm_single.c include/ll_comm.h \
 include/ll_backend.h include/ll_common.h include/ll_math.h
include/ll_comm.h:
include/ll_backend.h:
include/ll_common.h:
include/ll_math.h:
