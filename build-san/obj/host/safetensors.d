build-san/obj/host/safetensors.o: host/safetensors.c \
 include/ll_safetensors.h include/ll_common.h include/ll_sha256.h \
 /usr/include/cjson/cJSON.h
include/ll_safetensors.h:
include/ll_common.h:
include/ll_sha256.h:
/usr/include/cjson/cJSON.h:
