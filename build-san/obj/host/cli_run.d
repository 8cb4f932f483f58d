build-san/obj/host/cli_run.o: host/cli_run.c host/args.h host/cli.h \
 include/ll_engine.h include/ll_backend.h include/ll_common.h \
 include/ll_math.h include/ll_comm.h include/ll_model.h \
 include/ll_safetensors.h /usr/include/cjson/cJSON.h include/ll_h5.h \
 include/ll_progress.h include/ll_prompts.h include/ll_tokenizer.h
host/args.h:
host/cli.h:
include/ll_engine.h:
include/ll_backend.h:
include/ll_common.h:
include/ll_math.h:
include/ll_comm.h:
include/ll_model.h:
include/ll_safetensors.h:
/usr/include/cjson/cJSON.h:
include/ll_h5.h:
include/ll_progress.h:
include/ll_prompts.h:
include/ll_tokenizer.h:
