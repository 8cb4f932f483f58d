build-san/obj/host/tokenizer/tok_bpe_load.o: \
 host/tokenizer/tok_bpe_load.c host/tokenizer/tok_internal.h \
 include/ll_common.h include/ll_tokenizer.h include/ll_common.h
host/tokenizer/tok_internal.h:
include/ll_common.h:
include/ll_tokenizer.h:
include/ll_common.h:
