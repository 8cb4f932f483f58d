/* h5_util.c: checked-call messages, datatypes and chunk shapes shared by the HDF5 writer and reader. */
#include "h5_util.h"

#include <stdio.h>
#include <string.h>

void ll_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

typedef struct h5_reason {
    char *buf;  /* destination */
    size_t cap; /* its size */
} h5_reason;

/* Walking downward visits the API function first and the innermost cause last; keep the last one that
 * says something. */
static herr_t h5_reason_walk(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    h5_reason *r = data;
    if (e->desc && e->desc[0]) snprintf(r->buf, r->cap, "%s", e->desc);
    return 0;
}

void ll_h5_error_reason(char *buf, size_t cap) {
    if (!cap) return;
    buf[0] = 0;
    h5_reason r = {buf, cap};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, h5_reason_walk, &r);
    H5Eclear2(H5E_DEFAULT);
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

ll_status ll_h5_fail_call(ll_err *err, ll_status status, const char *ctx, const char *stmt, const char *src,
                          int line) {
    char reason[512];
    ll_h5_error_reason(reason, sizeof reason);
    return ll_fail(err, status, "hdf5 %s: %s failed at %s:%d: %s", ctx ? ctx : "?", stmt, src, line,
                   reason[0] ? reason : "no reason given by HDF5");
}

hid_t ll_h5_type_utf8(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

/* Half precision as h5py and numpy understand it: sign bit 15, exponent bits 10..14 (bias 15), mantissa
 * bits 0..9. Built from a 32-bit float type because HDF5 1.10 has no predefined half type. */
hid_t ll_h5_type_f16(int native) {
    hid_t t = H5Tcopy(native ? H5T_NATIVE_FLOAT : H5T_IEEE_F32LE);
    if (t < 0) return -1;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

void ll_h5_chunk_shape(int rank, const hsize_t *row, size_t elem, hsize_t *chunk) {
    /* Shrink the later axes from the outermost inward until one row of the chunk fits. */
    size_t row_bytes = elem;
    for (int d = 1; d < rank; d++) {
        chunk[d] = row[d - 1] ? row[d - 1] : 1;
        row_bytes *= (size_t)chunk[d];
    }
    for (int d = 1; d < rank && row_bytes > LL_H5_CHUNK_BYTES; d++) {
        size_t inner = row_bytes / (size_t)chunk[d]; /* bytes of one step along axis d */
        hsize_t fit = inner > LL_H5_CHUNK_BYTES ? 1 : (hsize_t)(LL_H5_CHUNK_BYTES / inner);
        if (fit < chunk[d]) chunk[d] = fit;
        row_bytes = inner * (size_t)chunk[d];
    }
    hsize_t rows = (hsize_t)(LL_H5_CHUNK_BYTES / row_bytes);
    chunk[0] = rows ? rows : 1;
}

void ll_h5_close_id(hid_t *id) {
    if (*id < 0) return;
    switch (H5Iget_type(*id)) {
    case H5I_FILE: H5Fclose(*id); break;
    case H5I_GROUP: H5Gclose(*id); break;
    case H5I_DATATYPE: H5Tclose(*id); break;
    case H5I_DATASPACE: H5Sclose(*id); break;
    case H5I_DATASET: H5Dclose(*id); break;
    case H5I_ATTR: H5Aclose(*id); break;
    case H5I_GENPROP_LST: H5Pclose(*id); break;
    default: break;
    }
    *id = -1;
}
