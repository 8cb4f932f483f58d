build-san/obj/host/arch_llama.o: host/arch_llama.c host/arch_common.h \
 include/ll_model.h include/ll_backend.h include/ll_common.h \
 include/ll_math.h include/ll_safetensors.h /usr/include/cjson/cJSON.h \
 host/config_fields.h include/ll_common.h
host/arch_common.h:
include/ll_model.h:
include/ll_backend.h:
include/ll_common.h:
include/ll_math.h:
include/ll_safetensors.h:
/usr/include/cjson/cJSON.h:
host/config_fields.h:
include/ll_common.h:
