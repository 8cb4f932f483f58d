build-san/obj/host/cli_tokenize.o: host/cli_tokenize.c host/cli.h \
 include/ll_common.h include/ll_tokenizer.h include/ll_common.h
host/cli.h:
include/ll_common.h:
include/ll_tokenizer.h:
include/ll_common.h:
