build-san/obj/host/weights.o: host/weights.c include/ll_model.h \
 include/ll_backend.h include/ll_common.h include/ll_math.h \
 include/ll_safetensors.h /usr/include/cjson/cJSON.h
include/ll_model.h:
include/ll_backend.h:
include/ll_common.h:
include/ll_math.h:
include/ll_safetensors.h:
/usr/include/cjson/cJSON.h:
