/* tok_internal.h: data structures shared by the tokenizer's files (host/tokenizer/).
 *
 * Encoding follows the pipeline of Hugging Face `tokenizers`:
 *   text -> (invalid UTF-8 replaced by U+FFFD) -> split on non-normalized added tokens
 *        -> normalize each remaining piece -> split on normalized added tokens
 *        -> pre-tokenize (each stage splits/rewrites every piece) -> BPE each piece -> post-process.
 * Pieces that are already a token (added tokens) carry their id and skip the later stages. */
#ifndef LL_TOK_INTERNAL_H
#define LL_TOK_INTERNAL_H

#include "ll_common.h"
#include "ll_tokenizer.h"

#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

typedef struct cJSON cJSON;

/* ---- growable buffers (tok_buf.c) ---- */
typedef struct tok_buf {
    char *p;    /* bytes, not NUL-terminated unless a caller appends one */
    size_t n;   /* used bytes */
    size_t cap; /* allocated bytes */
} tok_buf;

typedef struct tok_piece {
    size_t off;   /* byte offset of the piece's text in its buffer */
    size_t len;   /* byte length */
    int32_t id;   /* >= 0: already a token (added token); -1: text still to tokenize */
    int at_start; /* 1 when the piece begins at offset 0 of the original text */
} tok_piece;

typedef struct tok_plist {
    tok_piece *v; /* pieces in text order */
    size_t n;
    size_t cap;
} tok_plist;

typedef struct tok_ids {
    int32_t *v; /* ids */
    size_t n;
    size_t cap;
} tok_ids;

int tok_buf_reserve(tok_buf *b, size_t extra);
int tok_buf_append(tok_buf *b, const void *p, size_t n);
void tok_buf_free(tok_buf *b);
int tok_plist_push(tok_plist *l, size_t off, size_t len, int32_t id, int at_start);
void tok_plist_free(tok_plist *l);
int tok_ids_push(tok_ids *l, int32_t id);
void tok_ids_free(tok_ids *l);

/* ---- hashing (tok_hash.c) ---- */
uint64_t tok_hash_bytes(const void *p, size_t n);

/* String -> int32 map with open addressing; keys are copied into an internal arena. */
typedef struct tok_strmap {
    uint32_t *slots;  /* cap entries: 0 = empty, else entry index + 1 */
    size_t cap;       /* power of two */
    size_t n;         /* entries */
    char **keys;      /* key bytes per entry (owned) */
    size_t *key_len;  /* key length per entry */
    int32_t *vals;    /* value per entry */
    uint64_t *hashes; /* hash per entry */
    size_t ecap;      /* allocated entries */
} tok_strmap;

int tok_strmap_put(tok_strmap *m, const char *k, size_t n, int32_t v); /* overwrites; 0 ok, -1 nomem */
int tok_strmap_get(const tok_strmap *m, const char *k, size_t n, int32_t *v); /* 1 found, 0 not */
void tok_strmap_free(tok_strmap *m);

/* (a, b) id pair -> (rank, new id). */
typedef struct tok_pairmap {
    uint64_t *keys;  /* (a << 32 | b) + 1; 0 = empty */
    int32_t *rank;   /* merge rank per slot */
    int32_t *newid;  /* merged token id per slot */
    size_t cap;      /* power of two */
    size_t n;
} tok_pairmap;

int tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t newid);
int tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *newid);
void tok_pairmap_free(tok_pairmap *m);

/* ---- UTF-8 and Unicode helpers (tok_utf8.c) ---- */
/* Decodes one code point at s[0..n); returns its length (1..4) or 0 when invalid there. */
size_t tok_utf8_decode(const uint8_t *s, size_t n, int32_t *cp);
size_t tok_utf8_encode(int32_t cp, char out[4]);
/* Replaces maximal invalid subsequences by U+FFFD (as Python's errors="replace" and Rust's
 * from_utf8_lossy do). */
int tok_utf8_lossy(const uint8_t *s, size_t n, tok_buf *out);
int tok_utf8_valid(const uint8_t *s, size_t n);
int tok_uni_is_whitespace(int32_t cp);  /* Rust char::is_whitespace (White_Space) */
int tok_uni_is_alnum_word(int32_t cp);  /* regex-syntax word character (\w of Rust regex) */
int tok_uni_is_punct(int32_t cp);       /* ASCII punctuation or Unicode P* */
int tok_uni_is_numeric(int32_t cp);     /* Rust char::is_numeric (N*) */
/* GPT-2 byte <-> char table: byte b is written as code point tok_bytelevel_cp[b]. */
extern int32_t tok_bytelevel_cp[256];
void tok_bytelevel_init(void);
int tok_bytelevel_byte(int32_t cp); /* inverse map, -1 when cp is not one of the 256 */

/* ---- regular expressions (tok_regex.c) ---- */
typedef struct tok_regex {
    pcre2_code *code;          /* compiled in UTF + UCP mode, JIT when available */
    pcre2_match_data *md;      /* reused match data */
    pcre2_match_context *mctx; /* match limits and JIT stack */
    pcre2_jit_stack *jit;      /* JIT stack (may be NULL) */
    char *literal;             /* set instead of code for a literal (String) pattern */
    size_t literal_len;
} tok_regex;

/* Compiles an Oniguruma-syntax pattern from tokenizer.json (what `tokenizers` uses) as PCRE2,
 * rewriting the classes whose meaning differs (\w). `where` names the field for messages. */
ll_status tok_regex_compile(tok_regex *re, const char *pattern, const char *where, ll_err *err);
ll_status tok_regex_literal(tok_regex *re, const char *s, size_t n, const char *where, ll_err *err);
/* Next non-overlapping match at or after *pos in s[0..n). Returns 1 found (start/end set), 0 none,
 * -1 on a matching error (message in err). */
int tok_regex_next(tok_regex *re, const char *s, size_t n, size_t pos, size_t *start, size_t *end, ll_err *err);
void tok_regex_free(tok_regex *re);
/* Parses a tokenizer.json pattern object {"String": s} or {"Regex": r}. */
ll_status tok_regex_from_json(tok_regex *re, const cJSON *pattern, const char *where, ll_err *err);

/* ---- split behaviours shared by Split, Punctuation, Digits, Metaspace (tok_split.c) ---- */
typedef enum tok_split_behavior {
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_MERGED_WITH_PREVIOUS,
    TOK_SPLIT_MERGED_WITH_NEXT,
    TOK_SPLIT_CONTIGUOUS,
} tok_split_behavior;

ll_status tok_split_behavior_parse(const cJSON *obj, const char *where, tok_split_behavior *out, ll_err *err);

typedef struct tok_span {
    size_t start, end; /* byte range in the piece */
    int is_match;      /* matched the pattern (after `invert`) */
} tok_span;

typedef struct tok_spans {
    tok_span *v;
    size_t n, cap;
} tok_spans;

int tok_spans_push(tok_spans *s, size_t start, size_t end, int is_match);
void tok_spans_free(tok_spans *s);
/* Applies a behaviour to the match/non-match spans covering a piece and appends the resulting
 * non-empty pieces (copied from src) to out/pl. */
int tok_split_emit(const tok_spans *sp, tok_split_behavior b, const char *src, int at_start, tok_buf *out,
                   tok_plist *pl);
/* Match / non-match spans of a regex over s[0..n), as `tokenizers`' find_matches; invert flips
 * is_match. Returns 0, -1 on a matching error (message in err), -2 when out of memory. */
int tok_regex_spans(tok_regex *re, const char *s, size_t n, int invert, tok_spans *out, ll_err *err);

/* ---- normalizers (tok_normalizer.c) ---- */
typedef enum tok_norm_kind {
    TOK_NORM_NFC, TOK_NORM_NFD, TOK_NORM_NFKC, TOK_NORM_NFKD,
    TOK_NORM_LOWERCASE, TOK_NORM_REPLACE, TOK_NORM_PREPEND, TOK_NORM_STRIP,
    TOK_NORM_STRIP_ACCENTS, TOK_NORM_SEQUENCE,
} tok_norm_kind;

typedef struct tok_normalizer {
    tok_norm_kind kind;
    tok_regex re;                 /* REPLACE: pattern */
    char *content;                /* REPLACE: replacement; PREPEND: prefix */
    size_t content_len;
    int strip_left, strip_right;  /* STRIP */
    struct tok_normalizer *subs;  /* SEQUENCE: children */
    size_t n_subs;
} tok_normalizer;

ll_status tok_normalizer_parse(tok_normalizer *nz, const cJSON *j, const char *where, ll_err *err);
/* Normalizes s[0..n) (valid UTF-8) appending to out (valid UTF-8). *lead_kept (may be NULL) tells
 * whether the first output character is aligned with the first input character (0 when Strip,
 * StripAccents or an empty Replace removed leading characters): `tokenizers` then no longer sees the
 * piece as starting at its original offset, which Metaspace's prepend_scheme "first" depends on. */
ll_status tok_normalizer_apply(tok_normalizer *nz, const char *s, size_t n, tok_buf *out, int *lead_kept,
                               ll_err *err);
void tok_normalizer_free(tok_normalizer *nz);

/* ---- pre-tokenizers (tok_pretok.c) ---- */
typedef enum tok_pretok_kind {
    TOK_PRE_BYTELEVEL, TOK_PRE_SPLIT, TOK_PRE_METASPACE, TOK_PRE_DIGITS, TOK_PRE_WHITESPACE,
    TOK_PRE_WHITESPACE_SPLIT, TOK_PRE_PUNCTUATION, TOK_PRE_BERT, TOK_PRE_CHAR_DELIMITER, TOK_PRE_SEQUENCE,
} tok_pretok_kind;

typedef enum tok_prepend_scheme { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER } tok_prepend_scheme;

typedef struct tok_pretok {
    tok_pretok_kind kind;
    int add_prefix_space;          /* BYTELEVEL */
    int use_regex;                 /* BYTELEVEL */
    tok_regex re;                  /* BYTELEVEL (GPT-2 pattern), SPLIT, WHITESPACE */
    tok_split_behavior behavior;   /* SPLIT, PUNCTUATION */
    int invert;                    /* SPLIT */
    int32_t replacement;           /* METASPACE replacement char; CHAR_DELIMITER delimiter */
    tok_prepend_scheme prepend;    /* METASPACE */
    int split;                     /* METASPACE */
    int individual_digits;         /* DIGITS */
    struct tok_pretok *subs;       /* SEQUENCE */
    size_t n_subs;
} tok_pretok;

ll_status tok_prepend_scheme_parse(const cJSON *j, const char *where, tok_prepend_scheme *out, ll_err *err);
ll_status tok_pretok_parse(tok_pretok *pt, const cJSON *j, const char *where, ll_err *err);
/* Runs one pre-tokenizer over every text piece of `in` (strings in inbuf), writing the new pieces to
 * `out` (strings in outbuf). Token pieces pass through. */
ll_status tok_pretok_apply(tok_pretok *pt, const tok_plist *in, const tok_buf *inbuf, tok_plist *out,
                           tok_buf *outbuf, ll_err *err);
void tok_pretok_free(tok_pretok *pt);

/* ---- BPE model (tok_bpe.c, tok_bpe_load.c) ---- */
typedef struct tok_bpe_cache {
    tok_strmap map;  /* word -> index into offs */
    size_t *offs;    /* start of each cached word's ids in ids */
    size_t *lens;    /* number of ids of each cached word */
    size_t n, cap;   /* cached words */
    tok_ids ids;     /* concatenated ids */
} tok_bpe_cache;

typedef struct tok_bpe {
    tok_strmap vocab;        /* token string -> id */
    char **id_tok;           /* id -> token string (NULL when the id is unused), n_ids entries */
    size_t *id_len;          /* byte length per id */
    int64_t n_ids;           /* max id + 1 */
    size_t n_vocab;          /* number of vocab entries (the `tokenizers` vocab size) */
    tok_pairmap merges;      /* (left, right) -> (rank, merged id) */
    int32_t unk_id;          /* -1 when there is no unknown token */
    char *unk_token;         /* unknown token string (may be set while absent from the vocab) */
    int fuse_unk;
    int byte_fallback;
    int ignore_merges;
    char *prefix;            /* continuing_subword_prefix or NULL */
    size_t prefix_len;
    char *suffix;            /* end_of_word_suffix or NULL */
    size_t suffix_len;
    int32_t byte_ids[256];   /* ids of <0xNN> tokens, -1 when absent */
    tok_bpe_cache cache;     /* word -> ids */
    /* scratch reused across words */
    struct tok_bpe_sym *syms;
    size_t syms_cap;
    struct tok_bpe_heap_item *heap;
    size_t heap_cap;
} tok_bpe;

ll_status tok_bpe_parse(tok_bpe *m, const cJSON *j, const char *path, ll_err *err);
/* Appends the ids of one pre-token (valid UTF-8) to out. */
ll_status tok_bpe_encode_word(tok_bpe *m, const char *w, size_t n, tok_ids *out, ll_err *err);
void tok_bpe_free(tok_bpe *m);

/* ---- added tokens (tok_added.c) ---- */
typedef struct tok_added {
    char *content;   /* token text */
    size_t len;
    int32_t id;
    int special, single_word, lstrip, rstrip, normalized;
} tok_added;

typedef struct tok_trie_node {
    int32_t next_first; /* first child index, -1 none */
    int32_t sibling;    /* next sibling index, -1 none */
    int32_t token;      /* index into added tokens when a pattern ends here, -1 otherwise */
    uint8_t byte;       /* edge byte from the parent */
} tok_trie_node;

typedef struct tok_trie {
    tok_trie_node *nodes; /* node 0 is the root */
    size_t n, cap;
    uint8_t first[256];   /* 1 when some pattern begins with this byte */
    int empty;            /* 1 when no pattern was added */
} tok_trie;

typedef struct tok_added_vocab {
    tok_added *tokens;     /* in tokenizer.json order */
    size_t n;
    tok_trie raw;          /* patterns of non-normalized tokens (matched on the original text) */
    tok_trie norm;         /* normalized patterns of normalized tokens */
    char **norm_content;   /* per token: normalized content (normalized tokens only, else NULL) */
    size_t *norm_len;
    tok_strmap by_content; /* content -> index into tokens */
    int32_t *by_id;        /* id -> index into tokens or -1; n_by_id entries (built after loading) */
    int64_t n_by_id;
} tok_added_vocab;

ll_status tok_added_parse(struct ll_tokenizer *tk, const cJSON *arr, const char *path, ll_err *err);
/* Splits text s[0..n) (inside buffer buf at base offset) into pieces using one trie; token pieces
 * get their id. */
int tok_added_split(const tok_added_vocab *av, const tok_trie *trie, const char *buf, size_t base, size_t n,
                    int at_start, tok_plist *out);
void tok_added_free(tok_added_vocab *av);
int tok_added_find(const tok_added_vocab *av, const char *s, size_t n); /* index or -1 */

/* ---- post-processor (tok_post.c) ---- */
typedef struct tok_post {
    int32_t *prefix;  /* ids added before the sequence */
    size_t n_prefix;
    int32_t *suffix;  /* ids added after the sequence */
    size_t n_suffix;
} tok_post;

ll_status tok_post_parse(struct ll_tokenizer *tk, const cJSON *j, const char *path, ll_err *err);
ll_status tok_post_apply_config(struct ll_tokenizer *tk, const cJSON *cfg, const char *path, ll_err *err);

/* ---- decoders (tok_decoder.c) ---- */
typedef enum tok_dec_kind {
    TOK_DEC_BYTELEVEL, TOK_DEC_METASPACE, TOK_DEC_BYTEFALLBACK, TOK_DEC_FUSE, TOK_DEC_STRIP,
    TOK_DEC_REPLACE, TOK_DEC_BPE, TOK_DEC_SEQUENCE,
} tok_dec_kind;

typedef struct tok_decoder {
    tok_dec_kind kind;
    int32_t replacement;          /* METASPACE */
    tok_prepend_scheme prepend;   /* METASPACE */
    int32_t strip_char;           /* STRIP content */
    size_t strip_start, strip_stop;
    tok_regex re;                 /* REPLACE pattern */
    char *content;                /* REPLACE content; BPE suffix */
    size_t content_len;
    struct tok_decoder *subs;     /* SEQUENCE */
    size_t n_subs;
} tok_decoder;

ll_status tok_decoder_parse(tok_decoder *d, const cJSON *j, const char *where, ll_err *err);
void tok_decoder_free(tok_decoder *d);
/* Runs the decoder chain over a list of token strings (each a tok_buf) in place. */
ll_status tok_decoder_chain(tok_decoder *d, tok_buf **toks, size_t *n, ll_err *err);

/* ---- building (tok_load.c) ---- */
/* Builds a tokenizer from a parsed tokenizer.json tree (the GGUF path, tok_gguf.c, builds one from the
 * metadata); `name` stands for the file in messages. No tokenizer_config.json is read. */
ll_status tok_load_tree(const cJSON *j, const char *name, ll_tokenizer **out, ll_err *err);

/* ---- the tokenizer ---- */
struct ll_tokenizer {
    char *path;                 /* tokenizer.json path, for messages */
    tok_bpe bpe;                /* the model */
    tok_added_vocab added;      /* added tokens */
    tok_normalizer *norm;       /* NULL when none */
    tok_pretok *pre;            /* NULL when none */
    tok_decoder *dec;           /* NULL when none (tokens joined with spaces) */
    tok_post post;              /* special tokens around a sequence */
    int64_t n_ids;              /* max id + 1 over model and added tokens */
    int bytelevel_display;      /* token strings are GPT-2 byte-level (decoder ByteLevel) */
    int32_t meta_char;          /* metaspace char shown as a space, or -1 */
    /* encoding scratch */
    tok_buf buf[3];
    tok_plist pl[2];
};

#endif
