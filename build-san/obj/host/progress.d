build-san/obj/host/progress.o: host/progress.c include/ll_progress.h
include/ll_progress.h:
