build-san/obj/host/cli_synth.o: host/cli_synth.c host/args.h host/cli.h \
 include/ll_model.h include/ll_backend.h include/ll_common.h \
 include/ll_math.h include/ll_safetensors.h /usr/include/cjson/cJSON.h \
 include/ll_tokenizer.h
host/args.h:
host/cli.h:
include/ll_model.h:
include/ll_backend.h:
include/ll_common.h:
include/ll_math.h:
include/ll_safetensors.h:
/usr/include/cjson/cJSON.h:
include/ll_tokenizer.h:
