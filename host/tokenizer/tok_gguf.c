/* tok_gguf.c: PLACEHOLDER being replaced by the GGUF tokenizer work. */
#include "ll_tokenizer.h"
ll_status ll_tokenizer_from_gguf(const struct ll_gguf *g, ll_tokenizer **out, ll_err *err) { (void)g; *out = NULL; return ll_fail(err, LL_ERR_INPUT, "gguf tokenizer: not yet supported"); }
