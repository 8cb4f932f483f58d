build-san/obj/host/model_config.o: host/model_config.c \
 host/config_fields.h include/ll_common.h /usr/include/cjson/cJSON.h \
 include/ll_model.h include/ll_backend.h include/ll_common.h \
 include/ll_math.h include/ll_safetensors.h
host/config_fields.h:
include/ll_common.h:
/usr/include/cjson/cJSON.h:
include/ll_model.h:
include/ll_backend.h:
include/ll_common.h:
include/ll_math.h:
include/ll_safetensors.h:
