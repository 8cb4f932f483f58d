build-san/obj/host/common.o: host/common.c include/ll_common.h
include/ll_common.h:
