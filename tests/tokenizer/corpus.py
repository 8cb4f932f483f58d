"""Deterministic multilingual test text for the tokenizer tests and benchmark.

Every string is built from small word lists and character pools written for these tests, mixed by a
seeded random generator: Latin with accents, Cyrillic, Greek, CJK, Arabic, Hebrew, Devanagari, Thai,
Hangul, emoji (ZWJ sequences, skin tones, flags, keycaps), compatibility characters (full-width, ligatures,
circled and superscript digits, for NFKC), combining sequences, runs of spaces, tabs and newlines, digit
runs, contractions in both cases, and (optionally) special tokens inside the text.
"""
import random

WORDS = {
    "en": "the of and to in is that city tower river capital France Paris London people world time "
          "year number between because through without another important language letter".split(),
    "latin": "café naïve façade déjà über Straße Größe mañana corazón ação São Kraków Łódź żółw "
             "Việt Nam tiếng Ångström smörgåsbord İstanbul ıspanak ǅemal Œuvre æther".split(),
    "cyrillic": "Москва город столица привет мир язык Ёлка щука съезд Україна їжак ґанок".split(),
    "greek": "Αθήνα πόλη ΣΟΦΟΣ σοφός Ελλάδα γλώσσα ΟΔΥΣΣΕΥΣ ἄνθρωπος ῥῆμα".split(),
    "cjk": "東京 北京 中文 日本語 漢字 ひらがな カタカナ 한국어 서울 お茶 學習 简体 繁體 ㍿ ｶﾀｶﾅ".split(),
    "arabic": "العربية مدينة القاهرة سلام كتاب مُحَمَّد ﻻ".split(),
    "hebrew": "שלום עברית ירושלים".split(),
    "indic": "हिन्दी भाषा नमस्ते दिल्ली क्षत्रिय বাংলা தமிழ்".split(),
    "thai": "ภาษาไทย กรุงเทพ สวัสดี".split(),
    "emoji": ["😀", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🇯🇵", "1️⃣", "❤️", "🧑🏿‍🚀", "✌🏻", "🤷‍♀️", "🫠", "👋🏼"],
    "compat": ["ＡＢＣ", "ｈｅｌｌｏ", "１２３", "ﬁne", "ﬂag", "①②", "x²", "Ⅻ", "㎏", "™", "…", "ＫＯＮＮＩＣＨＩ", "Å", "ｰ"],
    "combining": ["e\u0301", "a\u0308", "n\u0303o", "A\u030a", "o\u0302\u0323", "\u0301x"],
    "contraction": ["I'm", "don't", "DON'T", "we'LL", "It'S", "they're", "THEY'RE", "you've", "he'd", "She'D",
                    "'s", "'t", "o'clock", "rock'n'roll"],
    "punct": [".", ",", "!", "?", "...", "--", "(", ")", "[x]", "{}", "\"", "'", "«", "»", "“quoted”", "¿qué?",
              "#", "$", "%", "&", "*", "+", "=", "@", "^", "_", "`", "|", "~", "<", ">", "/", "\\", "、", "。"],
    "digits": None,
    "space": [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2009", "\u2028",
              "\u200b", "    ", "\t\t", " \t\n"],
}

KINDS = list(WORDS)
WEIGHTS = {"en": 8, "latin": 4, "cyrillic": 2, "greek": 2, "cjk": 2, "arabic": 1, "hebrew": 1, "indic": 2,
           "thai": 1, "emoji": 2, "compat": 1, "combining": 1, "contraction": 2, "punct": 3, "digits": 2,
           "space": 2}


def _digits(r):
    n = r.choice([1, 1, 2, 3, 4, 5, 7, 12])
    s = "".join(r.choice("0123456789") for _ in range(n))
    if r.random() < 0.15:
        s = "".join(r.choice("٠١٢٣٤٥٦٧٨٩०१२३") for _ in range(n))
    return s


def _item(r):
    kind = r.choices(KINDS, weights=[WEIGHTS[k] for k in KINDS])[0]
    if kind == "digits":
        return _digits(r)
    w = r.choice(WORDS[kind])
    if kind in ("en", "latin", "cyrillic", "greek") and r.random() < 0.2:
        w = w.upper() if r.random() < 0.5 else w.capitalize()
    return w


def _sep(r):
    x = r.random()
    if x < 0.70:
        return " "
    if x < 0.80:
        return ""
    return r.choice(WORDS["space"])


def text(r, specials=(), max_items=30):
    """One test string (str)."""
    n = r.randint(0, max_items)
    parts = []
    for _ in range(n):
        if specials and r.random() < 0.04:
            parts.append(r.choice(specials))
        else:
            parts.append(_item(r))
        parts.append(_sep(r))
    s = "".join(parts)
    if r.random() < 0.03:
        s = " " * r.randint(1, 40) + s
    if r.random() < 0.03:
        s = s + r.choice(["\n", " ", "  ", "\t"]) * r.randint(1, 30)
    if r.random() < 0.01:
        s = s.replace(" ", "\x00")
    return s


def corrupt(r, s):
    """Bytes of s with invalid UTF-8 inserted (stray continuation bytes, truncated sequences, overlongs,
    surrogates encoded in UTF-8, bytes never valid)."""
    b = s.encode("utf-8")
    bad = [b"\x80", b"\xbf", b"\xc0\xaf", b"\xe2\x80", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xff", b"\xfe",
           b"\xf4\x90\x80\x80", b"\xc3", b"\xe0\x80\x80"]
    for _ in range(r.randint(1, 3)):
        i = r.randint(0, len(b))
        b = b[:i] + r.choice(bad) + b[i:]
    return b


def strings(seed, n, specials=()):
    """n test inputs as bytes: always the empty string, some fixed edge cases, then generated text; about
    one in twenty has invalid UTF-8."""
    r = random.Random(seed)
    fixed = ["", " ", "  ", "\n", "\t", "a", "The Eiffel Tower is in the city of", " " * 200, "\n" * 50,
             "a" * 3000, " a" * 500, "1234567890" * 20, "😀" * 50, "👨‍👩‍👧‍👦" * 10, "İ", "ΣΑΣ σας",
             "I'M HERE, YOU'RE THERE, it's", "x" + " " * 1000 + "y"]
    out = [s.encode("utf-8") for s in fixed]
    for s in specials:
        out += [s.encode(), (s + s).encode(), (" " + s + " ").encode(), ("a" + s + "b").encode()]
    while len(out) < n:
        s = text(r, specials)
        out.append(corrupt(r, s) if r.random() < 0.05 else s.encode("utf-8"))
    return out[:n]


def training_text(seed, n):
    """n training sentences (str) for the reference tokenizers. No NUL characters: tokenizer.json files
    whose tokens contain U+0000 are refused by logitlens (cJSON cannot represent them)."""
    r = random.Random(seed)
    return [text(r, (), 40).replace("\x00", " ") for _ in range(n)]


def bench_text(seed, n_bytes):
    """About n_bytes of multilingual text (str), lines of generated text."""
    r = random.Random(seed)
    parts, size = [], 0
    while size < n_bytes:
        s = text(r, (), 60) + "\n"
        parts.append(s)
        size += len(s.encode("utf-8"))
    return "".join(parts)
