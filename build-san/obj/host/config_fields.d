build-san/obj/host/config_fields.o: host/config_fields.c \
 host/config_fields.h include/ll_common.h /usr/include/cjson/cJSON.h \
 include/ll_math.h
host/config_fields.h:
include/ll_common.h:
/usr/include/cjson/cJSON.h:
include/ll_math.h:
