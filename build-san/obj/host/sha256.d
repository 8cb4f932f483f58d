build-san/obj/host/sha256.o: host/sha256.c include/ll_sha256.h
include/ll_sha256.h:
