/* ll_sha256.h: SHA-256 (FIPS 180-4), for the fingerprints of config.json and safetensors headers
 * recorded in result files. */
#ifndef LL_SHA256_H
#define LL_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct ll_sha256 {
    uint32_t h[8];     /* chaining state */
    uint64_t n_bytes;  /* message length so far */
    uint8_t buf[64];   /* pending partial block */
    size_t buf_len;
} ll_sha256;

void ll_sha256_init(ll_sha256 *s);
void ll_sha256_update(ll_sha256 *s, const void *data, size_t len);
void ll_sha256_final(ll_sha256 *s, uint8_t out[32]);
/* One-shot digest as 64 lowercase hex digits plus NUL. */
void ll_sha256_hex(const void *data, size_t len, char out[65]);

#endif
