build-san/obj/host/tokenizer/tok_synth_text.o: \
 host/tokenizer/tok_synth_text.c host/tokenizer/tok_synth.h \
 host/tokenizer/tok_internal.h include/ll_common.h include/ll_tokenizer.h \
 include/ll_common.h
host/tokenizer/tok_synth.h:
host/tokenizer/tok_internal.h:
include/ll_common.h:
include/ll_tokenizer.h:
include/ll_common.h:
