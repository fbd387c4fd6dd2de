#!/usr/bin/env python3
"""Generates tokenizer test vectors with Hugging Face `tokenizers` (the oracle).

Writes under tests/fixtures/tokenizer/:
  <name>/tokenizer.json       small tokenizers this script trains on a built-in text (committed):
      bytelevel_bpe        GPT-2 style byte-level BPE (ByteLevel pre-tokenizer with regex), added tokens
                           exercising lstrip/rstrip/single_word/normalized, BOS template
      sp_bpe               SentencePiece-style BPE: byte_fallback, unk, Metaspace(prepend first, no split),
                           Llama 2 decoder chain (Replace, ByteFallback, Fuse, Strip)
      sp_bpe_legacy        the older Llama 2 layout: Prepend + Replace normalizer, no pre-tokenizer
      sp_metaspace_split   Metaspace(split) pre-tokenizer and Metaspace decoder
      bytelevel_nfc, bytelevel_nfd, sp_nfkc, sp_nfkd
                           the committed bytelevel_bpe / sp_bpe tokenizer.json with a Unicode
                           normalizer added (bytelevel_nfc has Qwen2's whole layout: NFC, Split with
                           the Qwen2 regex, ByteLevel without regex; NFD, NFKC, NFKD); their vectors add
                           decomposed / compatibility inputs (normalization_inputs())
  <name>.vectors.jsonl      one JSON object per input: text, ids (no special tokens), ids_special
                           (add_special_tokens=True), decoded, decoded_skip; and decode-only records
                           {"decode_ids": [...], "decoded": ..., "decoded_skip": ...} from random ids.
  llama3.vectors.jsonl      the same for /work/shared/models/llama-3.1-8b (ids and inputs only; the
                           tokenizer itself is read from there at test time, never copied).

Usage: .venv/bin/python tools/make_tokenizer_vectors.py [--llama3 DIR] [--only NAME ...]
  --only regenerates just the named fixtures (e.g. --only bytelevel_nfc sp_nfkc llama3).
"""
import argparse
import json
import os
import random

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")

TRAIN_TEXT = """
The quick brown fox jumps over the lazy dog. A serving system schedules requests, batches them and streams
tokens back to each client as soon as they are sampled. Prefill computes the key-value cache of a prompt;
decode extends it one token at a time. When the two phases run on different machines, the cache must move.
It's what they'd do; we'll see, you're right, I'm sure, she's here, they've gone.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 3.14159 1,000,000 0x1F -7 +12.5e-3.
def tokenize(text: str) -> list[int]:
    ids = []
    for word in text.split():
        ids.extend(vocab.get(word, [UNK]))
    return ids

int main(int argc, char** argv) { std::vector<int> v{1, 2, 3}; return v.size() > 2 ? 0 : 1; }
Les élèves étudient à l'école. Über den Wolken muss die Freiheit wohl grenzenlos sein. ¿Dónde está?
Привет, мир! Γειά σου κόσμε. 你好，世界。日本語のテキスト。한국어 문장입니다. مرحبا بالعالم. שלום עולם.
Emoji: 😀 🎉 👍🏽 ❤️ 🇫🇷. Symbols: © ® ™ € £ ¥ § ¶ • … — – « » “ ” ‘ ’.
""" * 3

SEED = 1234
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")


def fixed_inputs():
    return [
        "Hello world",
        "Hello, world! How are you doing today?",
        " leading space",
        "trailing space ",
        "  two leading spaces",
        "multiple   spaces    between      words",
        "tabs\tand\nnewlines\r\nand\rcarriage returns",
        "\n\n\n",
        "   ",
        "\t\t",
        "line1\nline2\n\nline4\n",
        "It's a dog's life; they're here, we've gone, I'm sure, you'll see, he'd go. IT'S LOUD. It'S mixed.",
        "The year 2024 had 366 days; pi is 3.14159265358979 and e=2.718.",
        "1234567890 12 123 1234 12345 0000001",
        "def f(x):\n    return x ** 2  # square\n\nprint(f(12))\n",
        "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
        '{"key": "value", "list": [1, 2, 3], "nested": {"a": null}}',
        "https://example.com/path?query=1&other=two#frag",
        "你好，世界！这是一个测试。",
        "日本語のテキストとカタカナ、ひらがな。",
        "한국어 문장입니다.",
        "Привет, как дела? Всё хорошо.",
        "Γειά σου κόσμε",
        "مرحبا بالعالم، كيف حالك؟",
        "שלום עולם",
        "Mixed العربية and English כאן together",
        "Emoji: 😀😃😄 🎉 👍🏽 ❤️ 👨‍👩‍👧‍👦 🇫🇷🇩🇪",
        "café naïve résumé coöperate façade",
        "cafe\u0301 nai\u0308ve (combining accents)",
        "Ünïcödé ÀÉÎÕÜ àéîõü ß ø å æ",
        "<|begin_of_text|>Hello<|eot_id|>",
        "<|begin_of_text|><|begin_of_text|>",
        "<|begin_of_text",
        "< |eot_id|>",
        "<|eot_id|>\n\n<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
        "<|reserved_special_token_5|> and <|reserved_special_token_999|>",
        "<s>Hello</s> <unk> <0x41> <pad>",
        "<|endoftext|>text<|endoftext|>",
        "<|im_start|>user\nhello<|im_end|>\n",
        "before <mask> after <mask>",
        "a<mask>b",
        "[BRACKET] x[BRACKET]y [BRACKET]",
        "trailing <rs>   spaces then word",
        "\u00a0non-breaking\u00a0space\u2003em\u3000ideographic\u2028line sep\u0085nel",
        "zero\u200bwidth\u200djoiner\ufeffbom",
        "replacement char \ufffd here",
        "control \x00 \x01 \x1f \x7f chars",
        "a" * 300,
        "ab" * 200,
        " " * 100 + "x",
        "\n" * 50,
        "supercalifragilisticexpialidocious antidisestablishmentarianism",
        "snake_case_identifier CamelCaseIdentifier kebab-case-id SCREAMING_CASE",
        "!!!???...,,,;;;:::---___+++===",
        "'s 't 're 've 'm 'll 'd 'S 'T 'RE",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝟙𝟚𝟛 and ancient 𐍈𐌰𐌹",
        "ﬁ ﬂ ligatures and Ⅻ roman and ① circled and ½ fraction",
        "ǅ titlecase and ſ long s and K kelvin",
        "",
        "x",
        " ",
    ]


def normalization_inputs():
    """Inputs whose NFC/NFD/NFKC/NFKD forms differ from the input."""
    return [
        "e\u0301 cafe\u0301 E\u0301COLE nai\u0308ve",
        "\u00e9 precomposed vs e\u0301 decomposed",
        "a\u0323\u0302 a\u0302\u0323 \u1ea1\u0302 (reordering of combining marks)",
        "o\u0308\u0304 \u022b u\u031b\u0301",
        "\u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af (Hangul jamo)",
        "\ud55c\uad6d\uc5b4 \uac01 (precomposed Hangul)",
        "\u1100\u1161 \u1100 \u1161 \u11a8 jamo fragments",
        "\ufb01 \ufb02 \ufb00 office \ufb03ce ligatures",
        "\u2460\u2461\u2473 circled, \u00bd \u2153 fractions, x\u00b2 y\u2083",
        "\u216b \u2170\u2171 roman, \u2122 \u2116 \u33a1 \u3392",
        "\uff28\uff45\uff4c\uff4c\uff4f \uff11\uff12\uff13 fullwidth \uff01",
        "\uff76\uff9e\uff8a\uff9f halfwidth katakana \u30ac\u304c",
        "\u212b angstrom \u212a kelvin \u2126 ohm \u00c5 \u0041\u030a",
        "\u01c4 \u01c5 \u01c6 \u1e9b\u0323 \u017f",
        "\U0001d400\U0001d401 \U0001d7d9 math alnum",
        "\u0915\u093c \u0958 devanagari nukta, \u05e9\u05c1 \ufb2a hebrew",
        "\u00a0nbsp\u2002en\u3000ideo\u2028 spaces",
        "\u0308 leading combining mark",
        "\u03d3 \u03d2\u0301 \u1f71 \u03ac greek tonos/oxia",
        "\uf900 \uf9ff CJK compatibility \u2f00 \u3131",
        "\U0002f800 \U0002fa1d compatibility supplement",
        "e\u0301<|endoftext|>e\u0301 wow we\u0301ow",
        # Newer than HF's normalization tables (Unicode 11.0): HF leaves these unchanged.
        "\U0001f16c \u32ff \U00010781\U000107ad \ua7f2 \uab69 \U00011935\U00011930 \U0001fbf5",
    ]


RANGES = [
    (0x20, 0x7E, 40),       # ASCII printable
    (0x09, 0x0D, 4),        # ASCII whitespace
    (0xA0, 0x24F, 10),      # Latin-1, Latin Extended
    (0x300, 0x36F, 3),      # combining marks
    (0x370, 0x52F, 6),      # Greek, Cyrillic
    (0x590, 0x6FF, 5),      # Hebrew, Arabic
    (0x900, 0x97F, 2),      # Devanagari
    (0x2000, 0x206F, 4),    # general punctuation, spaces
    (0x3000, 0x30FF, 5),    # CJK punctuation, kana
    (0x4E00, 0x9FFF, 8),    # CJK
    (0xAC00, 0xD7A3, 3),    # Hangul
    (0xE000, 0xF8FF, 1),    # private use
    (0xFF00, 0xFFEF, 2),    # fullwidth
    (0x1F300, 0x1FAFF, 5),  # emoji
    (0x10000, 0x10FFFF, 2), # anything supplementary
    (0x0, 0xFFFF, 3),       # anything in the BMP
]


def random_inputs(n, seed):
    rng = random.Random(seed)
    weights = [w for _, _, w in RANGES]
    out = []
    for _ in range(n):
        length = rng.randint(1, 40)
        chars = []
        for _ in range(length):
            lo, hi, _ = rng.choices(RANGES, weights)[0]
            cp = rng.randint(lo, hi)
            if 0xD800 <= cp <= 0xDFFF:  # HF cannot encode lone surrogates
                cp = 0xFFFD
            chars.append(chr(cp))
        out.append("".join(chars))
    return out


def long_inputs():
    """One text long enough for tandem's parallel encode path (>= 16 KB: pre-tokenized on the calling
    thread, words BPE-encoded on a pool): the training text, the fixed inputs and a few random ones,
    shuffled and joined. Written only for LONG_INPUT_FIXTURES, to keep the vector files small."""
    rng = random.Random(SEED + 7)
    parts = fixed_inputs() + random_inputs(10, SEED + 8) + TRAIN_TEXT.split("\n") * 6
    rng.shuffle(parts)
    return [" ".join(parts)]


# Fixtures whose vectors include long_inputs(): a byte-level one (regex pre-tokenizer), one whose
# pre-tokenizer hands out words from its own scratch (Metaspace split), and Llama 3.
LONG_INPUT_FIXTURES = ("bytelevel_bpe", "sp_metaspace_split", "llama3")


def train_bytelevel():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False)
    tok.train_from_iterator([TRAIN_TEXT], trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, special=True, normalized=False)])
    tok.add_tokens([AddedToken("[BRACKET]", single_word=True, normalized=False),
                    AddedToken("<rs>", rstrip=True, normalized=False),
                    AddedToken("wow", normalized=True)])
    tok.post_processor = processors.TemplateProcessing(single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 0)])
    return tok


def sp_vocab_and_merges(split_metaspace):
    base = Tokenizer(models.BPE(unk_token="<unk>"))
    base.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=120,
                                  show_progress=False)
    base.train_from_iterator([TRAIN_TEXT], trainer)
    data = json.loads(base.to_str())
    trained = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for token, _ in trained:
        if token not in vocab:
            vocab[token] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]]
    return vocab, merges


def sp_tokenizer(kind):
    vocab, merges = sp_vocab_and_merges(kind == "sp_metaspace_split")
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    if kind == "sp_bpe":
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    elif kind == "sp_bpe_legacy":
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    if kind == "sp_metaspace_split":
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    else:
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ["<unk>", "<s>", "</s>"]])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tok


def vectors(tok, inputs, seed):
    records = []
    for text in inputs:
        plain = tok.encode(text, add_special_tokens=False).ids
        special = tok.encode(text, add_special_tokens=True).ids
        records.append({"text": text, "ids": plain, "ids_special": special,
                        "decoded": tok.decode(plain, skip_special_tokens=False),
                        "decoded_skip": tok.decode(special, skip_special_tokens=True)})
    rng = random.Random(seed)
    size = tok.get_vocab_size(with_added_tokens=True)
    for _ in range(60):
        ids = [rng.randrange(size) for _ in range(rng.randint(1, 12))]
        records.append({"decode_ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                        "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
    return records


def write(name, records):
    path = os.path.join(OUT, name + ".vectors.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print("wrote", path, len(records), "records")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama3", default=os.path.join(ROOT, "..", "shared", "models", "llama-3.1-8b"))
    ap.add_argument("--random", type=int, default=300)
    ap.add_argument("--only", nargs="*", help="regenerate only these fixtures")
    args = ap.parse_args()
    inputs = fixed_inputs() + random_inputs(args.random, SEED)
    wanted = (lambda name: args.only is None or name in args.only)

    built = {}
    if wanted("bytelevel_bpe"):
        built["bytelevel_bpe"] = train_bytelevel()
    for kind in ["sp_bpe", "sp_bpe_legacy", "sp_metaspace_split"]:
        if wanted(kind):
            built[kind] = sp_tokenizer(kind)
    for name, tok in built.items():
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        tok.save(os.path.join(d, "tokenizer.json"), pretty=False)
        write(name, vectors(tok, inputs + (long_inputs() if name in LONG_INPUT_FIXTURES else []), SEED + 1))

    # Unicode normalizers on top of the committed tokenizers (read back, so these fixtures can be
    # regenerated alone without retraining the others).
    unicode_forms = {"bytelevel_nfc": ("bytelevel_bpe", normalizers.NFC()),
                     "bytelevel_nfd": ("bytelevel_bpe", normalizers.NFD()),
                     "sp_nfkc": ("sp_bpe", normalizers.NFKC()),
                     "sp_nfkd": ("sp_bpe", normalizers.NFKD())}
    for name, (base, normalizer) in unicode_forms.items():
        if not wanted(name):
            continue
        tok = Tokenizer.from_file(os.path.join(OUT, base, "tokenizer.json"))
        tok.normalizer = normalizer
        if name == "bytelevel_nfc":  # Qwen2's layout: NFC, Split(Qwen2 regex), ByteLevel without regex
            tok.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        tok.save(os.path.join(d, "tokenizer.json"), pretty=False)
        write(name, vectors(tok, normalization_inputs() + inputs, SEED + 3))

    tj = os.path.join(args.llama3, "tokenizer.json")
    if not wanted("llama3"):
        pass
    elif os.path.exists(tj):
        write("llama3", vectors(Tokenizer.from_file(tj), inputs + long_inputs(), SEED + 2))
    else:
        print("skipping llama3: no", tj)


if __name__ == "__main__":
    main()
