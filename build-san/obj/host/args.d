build-san/obj/host/args.o: host/args.c host/args.h
host/args.h:
