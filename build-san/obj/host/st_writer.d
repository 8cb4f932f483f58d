build-san/obj/host/st_writer.o: host/st_writer.c include/ll_safetensors.h \
 include/ll_common.h /usr/include/cjson/cJSON.h
include/ll_safetensors.h:
include/ll_common.h:
/usr/include/cjson/cJSON.h:
