build-san/obj/host/tokenizer/tok_encode.o: host/tokenizer/tok_encode.c \
 host/tokenizer/tok_internal.h include/ll_common.h include/ll_tokenizer.h \
 include/ll_common.h
host/tokenizer/tok_internal.h:
include/ll_common.h:
include/ll_tokenizer.h:
include/ll_common.h:
