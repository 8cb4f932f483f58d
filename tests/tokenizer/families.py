"""Reference tokenizers built with Hugging Face `tokenizers` (the oracle), one per family we run, each
trained on the generated corpus and saved as tokenizer.json. Every family also gets added tokens that
exercise special tokens, lstrip/rstrip, single_word and normalized matching."""
import json
import os

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from . import corpus

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Added tokens common to every family (besides the family's own special tokens).
EXTRA_TOKENS = [
    AddedToken("<|sep|>", special=True, normalized=False),
    AddedToken("[MASK]", special=True, lstrip=True, rstrip=True, normalized=False),
    AddedToken("newword", normalized=True),
    AddedToken("ＡＢ", normalized=True),
    AddedToken("xyz", single_word=True, normalized=False),
    AddedToken("New York", normalized=False),
]
# Strings the tests insert into text so that added-token matching is exercised.
EXTRA_STRINGS = ["<|sep|>", "[MASK]", " [MASK] ", "newword", "NEWWORD", "ＡＢ", "ab", "xyz", "axyz", "xyz1",
                 "New York", "new york"]

FAMILIES = ["gpt2", "gpt2_prefix", "llama3", "sentencepiece", "llama2_meta", "metaspace", "metaspace_strip", "nfkc",
            "bert", "splitmix"]
SPECIALS = {
    "gpt2": ["<|endoftext|>"],
    "gpt2_prefix": ["<s>", "</s>", "<pad>"],
    "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
    "sentencepiece": ["<unk>", "<s>", "</s>"],
    "llama2_meta": ["<unk>", "<s>", "</s>"],
    "metaspace": ["<unk>", "<s>", "</s>"],
    "metaspace_strip": ["<unk>", "<s>", "</s>"],
    "nfkc": ["[UNK]", "[CLS]", "[SEP]"],
    "bert": ["[UNK]", "[CLS]", "[SEP]"],
    "splitmix": ["<unk>", "<eos>"],
}
VOCAB = 2500
TRAIN_SENTENCES = 4000


def _train(tok, trainer):
    tok.train_from_iterator(corpus.training_text(7, TRAIN_SENTENCES), trainer)


def _bytelevel_trainer(special):
    return trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=special, show_progress=False,
                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet())


def _sp_postedit(tok, family):
    """Llama-2 layout: <unk> <s> </s>, then the 256 <0xNN> byte tokens, then the learned tokens."""
    d = json.loads(tok.to_str())
    old = sorted(d["model"]["vocab"].items(), key=lambda kv: kv[1])
    specials = SPECIALS[family]
    vocab = {s: i for i, s in enumerate(specials)}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for t, _ in old:
        if t not in vocab:
            vocab[t] = len(vocab)
    d["model"]["vocab"] = vocab
    d["model"]["byte_fallback"] = True
    d["model"]["fuse_unk"] = True
    d["model"]["unk_token"] = "<unk>"
    for a in d["added_tokens"]:
        a["id"] = vocab[a["content"]]
    return Tokenizer.from_str(json.dumps(d))


def build(family):
    """Returns the trained Tokenizer of a family (extra added tokens included)."""
    sp = SPECIALS[family]
    if family in ("gpt2", "gpt2_prefix"):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=family == "gpt2_prefix")
        tok.decoder = decoders.ByteLevel()
        _train(tok, _bytelevel_trainer(sp))
        if family == "gpt2":
            tok.post_processor = processors.ByteLevel(trim_offsets=True)
        else:
            tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                              ("<s>", tok.token_to_id("<s>")))
    elif family == "llama3":
        tok = Tokenizer(models.BPE(ignore_merges=True))
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tok.decoder = decoders.ByteLevel()
        _train(tok, _bytelevel_trainer(sp))
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B",
            special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))])
    elif family == "sentencepiece":
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
        _train(tok, trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=sp, limit_alphabet=150,
                                        show_progress=False))
        tok = _sp_postedit(tok, family)
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.pre_tokenizer = None
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", 1)])
    elif family == "llama2_meta":
        # The newer Llama-2 conversion: no normalizer, Metaspace with prepend_scheme "first" and no split.
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
        _train(tok, trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=sp, limit_alphabet=150,
                                        show_progress=False))
        tok = _sp_postedit(tok, family)
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", 1)])
    elif family == "metaspace":
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.normalizer = normalizers.NFD()
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
        _train(tok, trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=sp, limit_alphabet=120,
                                        show_progress=False))
        tok = _sp_postedit(tok, family)
        tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement="▁",
                                                                                     prepend_scheme="first")])
        tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> $B </s>",
                                                           special_tokens=[("<s>", 1), ("</s>", 2)])
    elif family == "nfkc":
        tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##"))
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(),
                                               normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()])
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                     pre_tokenizers.Punctuation(behavior="isolated"),
                                                     pre_tokenizers.Digits(individual_digits=True)])
        _train(tok, trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=sp, limit_alphabet=200,
                                        continuing_subword_prefix="##", show_progress=False))
        tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                                       ("[CLS]", tok.token_to_id("[CLS]")))
    elif family == "bert":
        tok = Tokenizer(models.BPE(unk_token="[UNK]", fuse_unk=True))
        tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.BertPreTokenizer(),
                                                     pre_tokenizers.Digits(individual_digits=False),
                                                     pre_tokenizers.Whitespace()])
        _train(tok, trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=sp, limit_alphabet=150,
                                        show_progress=False))
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                           special_tokens=[("[CLS]", tok.token_to_id("[CLS]")),
                                                                           ("[SEP]", tok.token_to_id("[SEP]"))])
    elif family == "splitmix":
        tok = Tokenizer(models.BPE(unk_token="<unk>", end_of_word_suffix="</w>"))
        tok.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.Replace("\t", "    ")])
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"\d+"), behavior="merged_with_previous"),
            pre_tokenizers.Split(",", behavior="merged_with_next"),
            pre_tokenizers.Split(Regex(r"[aeiouAEIOU]+"), behavior="contiguous", invert=True),
            pre_tokenizers.CharDelimiterSplit("|"),
            pre_tokenizers.Split(Regex(r"\w+"), behavior="isolated"),
            pre_tokenizers.Punctuation(behavior="merged_with_next"),
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Split(Regex(r"q"), behavior="removed")])
        tok.decoder = decoders.BPEDecoder(suffix="</w>")
        _train(tok, trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=sp, limit_alphabet=150,
                                        end_of_word_suffix="</w>", show_progress=False))
        tok.post_processor = processors.TemplateProcessing(single="$A <eos>", pair="$A <eos> $B <eos>",
                                                           special_tokens=[("<eos>", tok.token_to_id("<eos>"))])
    elif family == "metaspace_strip":
        # Normalizers that remove leading characters: Metaspace "first" then no longer prepends (the piece no
        # longer starts at original offset 0); "^" is a line anchor in tokenizers' regex syntax.
        tok = build("metaspace")
        tok.normalizer = normalizers.Sequence([normalizers.Strip(left=True, right=False), normalizers.StripAccents(),
                                               normalizers.Replace(Regex("^x+"), "")])
        return tok
    else:
        raise ValueError(family)
    tok.add_tokens(EXTRA_TOKENS)
    return tok


def save(family, directory):
    """Writes directory/tokenizer.json for a family; returns the Tokenizer reloaded from that file."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "tokenizer.json")
    build(family).save(path)
    return Tokenizer.from_file(path)
