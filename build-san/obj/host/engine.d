build-san/obj/host/engine.o: host/engine.c host/engine_internal.h \
 include/ll_engine.h include/ll_backend.h include/ll_common.h \
 include/ll_math.h include/ll_comm.h include/ll_model.h \
 include/ll_safetensors.h /usr/include/cjson/cJSON.h
host/engine_internal.h:
include/ll_engine.h:
include/ll_backend.h:
include/ll_common.h:
include/ll_math.h:
include/ll_comm.h:
include/ll_model.h:
include/ll_safetensors.h:
/usr/include/cjson/cJSON.h:
