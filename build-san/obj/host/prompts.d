build-san/obj/host/prompts.o: host/prompts.c include/ll_prompts.h \
 include/ll_common.h include/ll_tokenizer.h /usr/include/cjson/cJSON.h
include/ll_prompts.h:
include/ll_common.h:
include/ll_tokenizer.h:
/usr/include/cjson/cJSON.h:
