#!/usr/bin/env python3
"""Generate reference fixtures for icam's LLM engine from an independent implementation.

The fixtures are produced with llama.cpp (through the llama-cpp-python bindings) running the
real default model (Gemma 3 270M, Q4_K_M GGUF) on the CPU backend:

  tokenizer.json  token ids for a few hundred deliberately awkward strings
  greedy.json     40-step greedy (argmax of raw logits) continuations of a handful of prompts,
                  with the top-1 logit at each step, the first step's top-5 and checksums of the
                  first step's full logit vector, and (case 0) the top-1 of every prompt position

Everything is deterministic: the string list is fixed plus combinations drawn from a seeded
random.Random, decoding is pure argmax (no sampler, no penalties), and a fresh llama_context is
created for every prompt. Running the script twice must produce byte-identical files.

Usage:
  python make_fixtures.py --model /path/to/gemma-3-270m-q4_k_m.gguf --out tests/fixtures/gemma3-270m
  python make_fixtures.py --model ... --out ... --diagnostics   # also print numeric-noise checks

See tests/fixtures/gemma3-270m/NOTE.md for how the checked-in fixtures were made.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import logging
import os
import random
import sys
from dataclasses import dataclass, asdict
from typing import List, Optional, Sequence, Tuple

import numpy as np
import llama_cpp
from llama_cpp import Llama

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

# Token ids whose first-step logits are recorded verbatim in greedy.json's logits_checksum.
CHECKSUM_IDS = [0, 1, 2, 100, 1000, 10000, 100000, 262143]

# Greedy prompts. parse_special=True only for the chat-formatted ones (their turn markers must
# become the <start_of_turn>/<end_of_turn> control tokens). add_bos is always True.
CHAT_QA = "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n"
CHAT_HAIKU = "<start_of_turn>user\nWrite a haiku about the sea.<end_of_turn>\n<start_of_turn>model\n"
CHAT_MULTI = (
    "<start_of_turn>user\nHi! What's your name?<end_of_turn>\n"
    "<start_of_turn>model\nI'm a helpful assistant.<end_of_turn>\n"
    "<start_of_turn>user\nName three primary colors.<end_of_turn>\n"
    "<start_of_turn>model\n"
)
LONG_PARAGRAPH = (
    "Lighthouses have guided sailors along dangerous coastlines for more than two thousand "
    "years. The earliest known example, the Pharos of Alexandria, was built in the third "
    "century BC and stood for over a millennium before earthquakes finally brought it down. "
    "Medieval towers burned wood or coal in open braziers, which were smoky and dim. In 1822 "
    "the French physicist Augustin Fresnel introduced a lens made of concentric glass prisms "
    "that could focus a single lamp into a beam visible from twenty miles away. By 1900, nearly "
    "every major lighthouse in the world"
)
GREEDY_PROMPTS: List[Tuple[str, bool]] = [
    ("The capital of France is", False),
    ("def fibonacci(n):", False),
    ("Once upon a time,", False),
    ("1, 2, 3, 4,", False),
    (LONG_PARAGRAPH, False),
    ("日本の首都は", False),
    (CHAT_QA, True),
    (CHAT_HAIKU, True),
    (CHAT_MULTI, True),
]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def sha256_file(path: str) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def f32(x) -> float:
    """A float32 value as a Python float (exact; JSON writes its shortest round-trip repr)."""
    return float(np.float32(x))


def dump_json(path: str, header: dict, cases: List[dict]) -> None:
    """Write {header..., "cases": [...]} with one case per line (diffable, compact).

    Non-ASCII text is written as raw UTF-8 (ensure_ascii=False); control characters are still
    escaped by json (\\n, \\t, \\u0000 ...).
    """
    lines = ["{"]
    for key, value in header.items():
        lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
    lines.append('  "cases": [')
    for i, case in enumerate(cases):
        sep = "," if i + 1 < len(cases) else ""
        lines.append("    " + json.dumps(case, ensure_ascii=False, separators=(",", ":")) + sep)
    lines.append("  ]")
    lines.append("}")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------
# Tokenizer fixture strings
# --------------------------------------------------------------------------------------------

# Texts of special tokens and near-misses; each is emitted with parse_special both False and True.
SPECIAL_TEXTS = [
    "<start_of_turn>user\nhi<end_of_turn>",
    "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
    "<start_of_turn>model\nSure!<end_of_turn>\n",
    "<bos>",
    "<bos>hello",
    "hello<bos>",
    "<eos>",
    "<pad>",
    "<unk>",
    "<mask>",
    "<pad><unk><mask>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<end_of_turn><end_of_turn>",
    "text<end_of_turn>text",
    " <start_of_turn> ",
    "<start_of_turn",          # truncated: never a special token
    "start_of_turn>",
    "< start_of_turn>",
    "<START_OF_TURN>",
    "<<start_of_turn>>",
    "</s>",                    # control-looking token (id 212) llama.cpp treats as control + EOG
    "a</s>b",
    "<s>",                     # user-defined (HTML strike-through) tag
    "<unused0>",
    "<unused6241>",
    "<unused99>x<unused100>",
    "[multimodal]",
    "<start_of_image>",
    "<end_of_image>",
    "<start_of_image><end_of_image>",
    "<image_soft_token>",
    "<0x0A>",                  # text of a byte-fallback token: never parsed as one
    "<|im_start|>user<|im_end|>",
    "<bos><start_of_turn>user\n<start_of_turn>model\n",
    "<end_of_turn>\n\n<start_of_turn>",
]

# Mostly-fixed corpus. Kept as a literal list so the fixture is reviewable.
FIXED_TEXTS = [
    # --- empty and single characters
    "", " ", "a", "A", "0", ".", ",", "!", "?", '"', "\n", "\t", "\r", "\r\n",
    "\u00a0", "\u3000", "é", "ß", "中", "あ", "한", "ع", "א", "क", "ก", "😀", "€", "∑",
    "\x00", "\x01", "\x7f", "\x1b[0m",
    # --- ASCII prose
    "Hello world",
    "Hello, world!",
    "HELLO WORLD",
    "The quick brown fox jumps over the lazy dog.",
    "It's a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife.",
    "I can't believe it's not butter! Don't you think so? We'll see... they're here; you've won.",
    "Mr. and Mrs. Dursley, of number four, Privet Drive, were proud to say that they were "
    "perfectly normal, thank you very much.",
    "antidisestablishmentarianism",
    "Supercalifragilisticexpialidocious",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "tokenization TOKENIZATION Tokenization tokenIZATION",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "The end.\n",
    "Line one\nLine two\nLine three",
    "Paragraph one.\n\nParagraph two.\n\n\nParagraph three.",
    # --- punctuation
    "...", "?!?!", "!!!!!!!!!!", "—", "–", "‘quoted’ “double”", "«guillemets»",
    "(parentheses) [brackets] {braces} <angles>",
    "~`!@#$%^&*()_+-={}|[]\\:\";'<>?,./",
    "\\n is not a newline",
    "a,b;c:d.e!f?g",
    "foo_bar-baz.qux",
    # --- numbers and digit runs
    "0123456789",
    "1234567890123456789012345678901234567890",
    "3.14159265358979323846",
    "-42", "+7", "1e-10", "6.022e23", "0x1F", "0b1010", "1,000,000",
    "2026-11-22", "12:34:56", "v1.2.3", "$19.99", "€5,00", "100%", "1/2", "½ ¼ ¾",
    "In 1492, Columbus sailed 3 ships across 4,000 miles.",
    "9999999999999999999999",
    "000000",
    "١٢٣٤٥", "१२३४५", "一二三四五", "①②③", "Ⅻ",
    # --- code
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "class Foo:\n    def __init__(self, x: int) -> None:\n        self.x = x\n",
    "import numpy as np\nx = np.zeros((3, 4), dtype=np.float32)\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\n",
    "#include <stdio.h>\n\nint main(void) {\n\tprintf(\"Hello, %s!\\n\", \"world\");\n\treturn 0;\n}\n",
    "template <typename T>\nstd::vector<T> f(const std::vector<T>& v) { return v; }",
    "if (x != nullptr && *x >= 0) { y = x->next; } else { y = NULL; }",
    "{\n  \"name\": \"icam\",\n  \"version\": 1,\n  \"tags\": [\"a\", \"b\"],\n  \"nested\": {\"k\": null, \"ok\": true}\n}",
    '{"a":1,"b":[1,2,3],"c":{"d":"e"}}',
    "SELECT id, name FROM users WHERE age > 21 ORDER BY name DESC;",
    "fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!(\"{:?}\", v);\n}",
    "const f = async (x) => { await g(x); return x ?? 0; };",
    "$ ls -la | grep '^d' && echo \"done\" > /dev/null 2>&1",
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<root attr='1'/>",
    "\tindented with a tab",
    "\t\tdouble tab",
    "\t\t\t\ttab run",
    "    four spaces",
    "        eight spaces",
    "x = 1  # comment\ny = 2\t# tab comment",
    "key:\n  - item1\n  - item2\n    nested: true",
    "a\tb\tc\n1\t2\t3",
    "    \n    \n",
    "// TODO(fixme): handle edge-cases\n/* block\n * comment */",
    "arr[i][j] += mat[j][k] * vec[k];",
    "@decorator\ndef f(*args, **kwargs): pass",
    # --- whitespace: leading/trailing, mixed
    " hello", "hello ", "  hello  world  ", "hello\n", "\nhello", " \n ", "\n \n", " \t \t ",
    "hello\tworld", "hello\r\nworld", "trailing newlines\n\n\n", "   leading spaces",
    "word  word   word    word", "\u00a0non-breaking\u00a0space", "zero\u200bwidth\u200bspace",
    "ideographic\u3000space", "\ufeffBOM at start",
    # --- URLs, emails, paths
    "https://www.example.com/path/to/page?query=1&lang=en#section",
    "http://localhost:8080/api/v1/users/42",
    "ftp://ftp.example.org/pub/file.tar.gz",
    "user.name+tag@example.co.uk",
    "Contact: alice@example.com, bob@test.org",
    "/usr/local/bin/python3",
    "C:\\Users\\Admin\\Documents\\file.txt",
    "git@github.com:owner/repo.git",
    # --- HTML / markdown (several HTML tags are user-defined tokens in this vocab)
    "<html><body><div class=\"x\">Hi</div></body></html>",
    "<table><tr><td>1</td><td>2</td></tr></table>",
    "<h1>Title</h1>\n<p>Para <b>bold</b> <i>it</i> <code>x</code></p>",
    "<strong>strong</strong><em>em</em><u>u</u><sub>2</sub><sup>3</sup>",
    "<ul><li>one</li><li>two</li></ul>",
    "<a href=\"https://example.com\">link</a>",
    "<br/><hr><img src=\"a.png\" alt=\"\">",
    "<blockquote>quote</blockquote>",
    "<span>x</span><iframe></iframe><footer>f</footer>",
    "<tbody><thead><tfoot><caption>",
    "<bbox>12,34</bbox>",
    "# Heading\n\n## Subheading\n\n- item\n- item\n\n1. first\n2. second\n",
    "**bold** and *italic* and `code` and ~~strike~~",
    "```python\nprint('hi')\n```",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "[link](https://example.com) ![img](a.png)",
    "> quoted line\n>> nested",
    "&amp; &lt; &gt; &quot; &#39; &nbsp;",
    # --- CJK / Japanese / Korean
    "你好，世界！",
    "我爱自然语言处理。",
    "中华人民共和国",
    "繁體中文與簡體中文",
    "こんにちは世界",
    "ひらがなカタカナ漢字",
    "東京は日本の首都です。",
    "ｶﾀｶﾅ ﾊﾝｶｸ",
    "ＡＢＣ１２３",
    "안녕하세요 세계",
    "한국어 텍스트입니다.",
    "日本語とEnglishのmixed文章です",
    # --- RTL
    "مرحبا بالعالم",
    "اللغة العربية جميلة.",
    "שלום עולם",
    "עברית: אבגד",
    "Mixed English עברית and العربية text",
    "\u200fRTL mark\u200e LTR mark",
    # --- Indic, Thai, other scripts
    "नमस्ते दुनिया",
    "हिन्दी भाषा",
    "ক্ষ বাংলা",
    "தமிழ்",
    "สวัสดีชาวโลก",
    "ภาษาไทย",
    "Привет, мир!",
    "Ελληνικά γράμματα",
    "Tiếng Việt có dấu",
    "ქართული",
    "Հայերեն",
    "ᐃᓄᒃᑎᑐᑦ",
    "አማርኛ",
    "ລາວ",
    "ខ្មែរ",
    "ᚠᚢᚦᚨᚱᚲ",
    # --- emoji
    "😀😃😄😁",
    "I ❤️ you",
    "👍🏻👍🏼👍🏽👍🏾👍🏿",
    "👨‍👩‍👧‍👦",
    "👩🏽‍💻",
    "🏳️‍🌈",
    "🇫🇷🇯🇵🇺🇸🇩🇪",
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "#️⃣ 1️⃣ *️⃣",
    "🧑‍🤝‍🧑",
    "emoji🙂inside🙃words",
    "✅❌⚠️",
    # --- combining marks and normalisation-sensitive text
    "e\u0301",
    "e\u0301\u0301\u0301",
    "caf\u00e9 vs cafe\u0301",
    "n\u0303",
    "a\u0308o\u0308u\u0308",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349algo",
    "\u1100\u1161\u11a8",            # decomposed Hangul jamo
    "ﬁ ﬂ ﬀ",                          # ligatures
    "Å Å",                            # precomposed vs angstrom sign
    # --- math and symbols
    "∀x ∈ ℝ: x² ≥ 0",
    "∫₀^∞ e^{-x²} dx = √π/2",
    "α β γ δ ε ζ η θ λ μ π σ φ ω",
    "≤ ≥ ≠ ≈ ∞ ∂ ∇ ⊂ ⊃ ∪ ∩ ⊕ ⊗",
    "E = mc²",
    "𝔸𝔹ℂ 𝐀𝐁𝐂 𝒜ℬ𝒞",
    "→ ← ↑ ↓ ⇒ ⇔",
    "™ © ® ° ± × ÷ § ¶",
    "\\frac{a}{b} + \\sqrt{x^2 + y^2}",
    # --- rare / unassigned-ish characters (force byte fallback)
    "\ue000\uf8ff",                   # private use
    "\U000f0000",                     # supplementary private use
    "\U0010fffd",
    "\u0378\u0379",                   # unassigned in Greek block
    "\U0002fffd",                     # unassigned plane 2
    "\U00012000\U00012001",           # cuneiform
    "\U00010000",                     # Linear B
    "\U0001d11e",                     # musical symbol G clef
    "\ufffd",
    "\ufffe\uffff",                   # noncharacters
    "\U000e0001\U000e0020",           # tag characters
    "x\U0001f9ffy\U0001fae8z",
    "\u2028\u2029",                   # line/paragraph separators
    "\x00\x00\x00",
    "a\x00b",
    "\x07\x08\x0b\x0c",
    "\u0600\u06dd",
    "\ua000\ua001",                   # Yi syllables
    "\U0001f0a1\U0001f0b1",           # playing cards
]


def whitespace_runs() -> List[str]:
    """Runs of spaces/newlines/tabs (1..40) and mixtures; many are user-defined tokens."""
    out = []
    for n in [1, 2, 3, 4, 7, 8, 16, 30, 31, 32, 33, 40]:
        out.append(" " * n)
    for n in [1, 2, 3, 4, 8, 30, 31, 32, 40]:
        out.append("\n" * n)
    for n in [1, 2, 4, 31, 32, 40]:
        out.append("\t" * n)
    out += [
        "a" + " " * 10 + "b",
        "a" + " " * 33 + "b",
        "a" + "\n" * 5 + "b",
        "a" + "\n" * 35 + "b",
        " \n" * 6,
        "\n " * 6,
        "\r\n" * 4,
        " " * 3 + "\n" * 3 + "\t" * 3,
        "x" + " " * 40,
        " " * 40 + "x",
        "\n" * 40 + "end",
    ]
    return out


# Fragment pool for seeded random combinations.
FRAGMENTS = [
    "the", " the", "The", " cat", " sat", " on", " mat", "hello", " world", "token", "izer",
    "ing", "un", "believ", "able", " ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", ".", ",", "!",
    "?", ":", ";", "-", "_", "/", "\\", "(", ")", "[", "]", "{", "}", "\"", "'", "`", "#", "@",
    "0", "1", "42", "007", "3.14", "1e9", "2026", "中", "文", "日本", "語", "한국", "ع", "ب",
    "ש", "ל", "न", "म", "ส", "ว", "😀", "👍🏽", "🇯🇵", "❤️", "e\u0301", "ß", "ñ", "Ω", "∑",
    "<b>", "</b>", "<td>", "<div>", "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>",
    "user", "model", "http://", "www.", ".com", "@example", "\ue000", "\U0002fffd", "\x00",
    "def ", "return ", "    ", "print(", ")", "{\"k\": ", "null", "true", "</s>", "<unused7>",
    "[multimodal]", "<0x41>",
]


def random_texts(seed: int, count: int) -> List[Tuple[str, bool, bool]]:
    """Seeded random concatenations of fragments, with random add_bos/parse_special flags."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        k = rng.randint(2, 14)
        text = "".join(rng.choice(FRAGMENTS) for _ in range(k))
        add_bos = rng.random() < 0.25
        parse_special = rng.random() < 0.5
        out.append((text, add_bos, parse_special))
    return out


def tokenizer_inputs(seed: int, n_random: int) -> List[Tuple[str, bool, bool]]:
    """All (text, add_bos, parse_special) triples, in a fixed order, deduplicated."""
    triples: List[Tuple[str, bool, bool]] = []
    fixed = FIXED_TEXTS + whitespace_runs()
    for i, text in enumerate(fixed):
        triples.append((text, False, False))
        if i % 25 == 0:                      # a sprinkling with BOS
            triples.append((text, True, False))
    for i, text in enumerate(SPECIAL_TEXTS):
        triples.append((text, False, False))
        triples.append((text, False, True))
        if i < 6:                            # chat-like ones also as a real prompt would be
            triples.append((text, True, True))
    triples += random_texts(seed, n_random)
    seen = set()
    unique = []
    for t in triples:
        if t not in seen:
            seen.add(t)
            unique.append(t)
    return unique


def make_tokenizer_fixture(vocab_llm: Llama, seed: int, n_random: int) -> List[dict]:
    cases = []
    for text, add_bos, parse_special in tokenizer_inputs(seed, n_random):
        ids = vocab_llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=parse_special)
        cases.append({"text": text, "add_bos": add_bos, "parse_special": parse_special,
                      "ids": [int(t) for t in ids]})
    return cases


# --------------------------------------------------------------------------------------------
# Greedy decoding through the low-level llama.cpp API
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineConfig:
    """Everything that can influence the numbers; written into greedy.json."""
    backend: str = "CPU"
    n_gpu_layers: int = 0
    n_ctx: int = 1024
    n_batch: int = 512
    n_ubatch: int = 512
    n_threads: int = 2
    n_threads_batch: int = 2
    flash_attn: bool = False
    type_k: str = "f16"
    type_v: str = "f16"
    weight_repack: bool = True      # llama.cpp default: CPU "extra" buffer types (Q4_K -> 8x8)


class Engine:
    """One loaded model; hands out fresh contexts. Frees everything on close()."""

    def __init__(self, model_path: str, cfg: EngineConfig):
        self.cfg = cfg
        llama_cpp.llama_backend_init()
        mp = llama_cpp.llama_model_default_params()
        mp.n_gpu_layers = cfg.n_gpu_layers
        mp.use_extra_bufts = cfg.weight_repack
        self.model = llama_cpp.llama_model_load_from_file(model_path.encode("utf-8"), mp)
        if not self.model:
            raise RuntimeError(f"failed to load {model_path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)

    def new_context(self, all_outputs: bool = False):
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = self.cfg.n_ctx
        cp.n_batch = self.cfg.n_batch
        cp.n_ubatch = self.cfg.n_ubatch
        cp.n_seq_max = 1
        cp.n_threads = self.cfg.n_threads
        cp.n_threads_batch = self.cfg.n_threads_batch
        cp.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.cfg.flash_attn
                              else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        cp.type_k = llama_cpp.GGML_TYPE_F16
        cp.type_v = llama_cpp.GGML_TYPE_F16
        cp.offload_kqv = False
        cp.op_offload = False
        cp.no_perf = True
        if all_outputs:
            # Allow one output row per batch token (default is 1 per sequence).
            cp.n_outputs_max = 0
            cp.n_outputs_max_per_seq = 0
        ctx = llama_cpp.llama_init_from_model(self.model, cp)
        if not ctx:
            raise RuntimeError("failed to create llama_context")
        return ctx

    def close(self) -> None:
        if self.model:
            llama_cpp.llama_model_free(self.model)
            self.model = None


def decode(engine: Engine, ctx, tokens: Sequence[int], pos0: int, want: str) -> np.ndarray:
    """Decode `tokens` (one llama_batch) at positions pos0.. and return logits.

    want = "last": logits of the last token only, shape (n_vocab,)
    want = "all":  logits of every token, shape (len(tokens), n_vocab)
    """
    n = len(tokens)
    batch = llama_cpp.llama_batch_init(n, 0, 1)
    try:
        batch.n_tokens = n
        for i, tok in enumerate(tokens):
            batch.token[i] = int(tok)
            batch.pos[i] = pos0 + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1 if (want == "all" or i == n - 1) else 0
        rc = llama_cpp.llama_decode(ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed: {rc}")
        rows = range(n) if want == "all" else [n - 1]
        out = []
        for i in rows:
            ptr = llama_cpp.llama_get_logits_ith(ctx, i)
            out.append(np.ctypeslib.as_array(ptr, shape=(engine.n_vocab,)).copy())
        return np.stack(out) if want == "all" else out[0]
    finally:
        llama_cpp.llama_batch_free(batch)


def argmax_first(logits: np.ndarray) -> int:
    """Greedy choice: the largest logit, lowest id on ties (np.argmax semantics)."""
    return int(np.argmax(logits))


def topk(logits: np.ndarray, k: int) -> List[List]:
    """Top-k [id, logit], descending by logit, ties broken by lower id."""
    order = np.lexsort((np.arange(logits.size), -logits.astype(np.float64)))[:k]
    return [[int(i), f32(logits[i])] for i in order]


def greedy_run(engine: Engine, prompt_ids: List[int], n_predict: int) -> dict:
    """Prefill the prompt as one batch, then decode one token at a time, argmax each step."""
    ctx = engine.new_context()
    try:
        logits = decode(engine, ctx, prompt_ids, 0, "last")
        first = logits
        tokens, top1, gaps = [], [], []
        pos = len(prompt_ids)
        for step in range(n_predict):
            tok = argmax_first(logits)
            tokens.append(tok)
            top1.append(f32(logits[tok]))
            two = topk(logits, 2)
            gaps.append(f32(two[0][1] - two[1][1]))
            if step + 1 < n_predict:
                logits = decode(engine, ctx, [tok], pos, "last")
                pos += 1
        return {"tokens": tokens, "top1_logits": top1, "top2_gap": gaps, "first_logits": first}
    finally:
        llama_cpp.llama_free(ctx)


def prompt_prefill_all(engine: Engine, prompt_ids: List[int]) -> np.ndarray:
    """Logits for every prompt position from one batched prefill (fresh context)."""
    ctx = engine.new_context(all_outputs=True)
    try:
        return decode(engine, ctx, prompt_ids, 0, "all")
    finally:
        llama_cpp.llama_free(ctx)


def logits_checksum(logits: np.ndarray) -> dict:
    l64 = logits.astype(np.float64)
    return {
        "n": int(logits.size),
        "sum": float(np.sum(l64)),
        "sum_sq": float(np.sum(l64 * l64)),
        "ids": CHECKSUM_IDS,
        "values": [f32(logits[i]) for i in CHECKSUM_IDS],
    }


def decode_text(vocab_llm: Llama, ids: List[int]) -> str:
    """Human-readable detokenization (special tokens shown; broken UTF-8 replaced)."""
    return vocab_llm.detokenize(ids, special=True).decode("utf-8", errors="replace")


def make_greedy_fixture(engine: Engine, vocab_llm: Llama,
                        n_predict: int) -> Tuple[List[dict], List[np.ndarray]]:
    """Returns the fixture cases and (for diagnostics) each case's full first-step logits."""
    cases, firsts = [], []
    for idx, (prompt, parse_special) in enumerate(GREEDY_PROMPTS):
        prompt_ids = [int(t) for t in vocab_llm.tokenize(prompt.encode("utf-8"), add_bos=True,
                                                          special=parse_special)]
        r = greedy_run(engine, prompt_ids, n_predict)
        case = {
            "prompt": prompt,
            "add_bos": True,
            "parse_special": parse_special,
            "prompt_ids": prompt_ids,
            "tokens": r["tokens"],
            "text": decode_text(vocab_llm, r["tokens"]),
            "top1_logits": r["top1_logits"],
            "top2_gap": r["top2_gap"],
            "first_step_top5": topk(r["first_logits"], 5),
            "logits_checksum": logits_checksum(r["first_logits"]),
        }
        if idx == 0:
            all_logits = prompt_prefill_all(engine, prompt_ids)
            case["prompt_top1"] = [[argmax_first(row), f32(row.max())] for row in all_logits]
        cases.append(case)
        firsts.append(r["first_logits"])
        print(f"[greedy {idx}] {prompt[:40]!r} -> {case['text']!r}", file=sys.stderr)
    return cases, firsts


# --------------------------------------------------------------------------------------------
# Optional diagnostics (stdout only; not part of the fixtures)
# --------------------------------------------------------------------------------------------


def run_diagnostics(model_path: str, base: EngineConfig, n_predict: int,
                    reference: List[dict], ref_firsts: List[np.ndarray]) -> None:
    """Re-run the greedy cases under variant configurations and report how far they move.

    Gives a feel for the numeric noise an independent engine should expect: tokens identical?
    max |delta| of the first-step logits, max |delta| over the 40 top-1 logits.
    """
    variants = {
        "no_repack": EngineConfig(**{**asdict(base), "weight_repack": False}),
        "threads_1": EngineConfig(**{**asdict(base), "n_threads": 1, "n_threads_batch": 1}),
        "flash_attn": EngineConfig(**{**asdict(base), "flash_attn": True}),
    }
    for name, cfg in variants.items():
        engine = Engine(model_path, cfg)
        try:
            for idx, ref in enumerate(reference):
                r = greedy_run(engine, ref["prompt_ids"], n_predict)
                same = r["tokens"] == ref["tokens"]
                first_div = next((i for i, (a, b) in enumerate(zip(r["tokens"], ref["tokens"]))
                                  if a != b), None)
                d_first = float(np.max(np.abs(r["first_logits"] - ref_firsts[idx])))
                rel = d_first / float(np.max(np.abs(ref_firsts[idx])))
                n_cmp = first_div if first_div is not None else n_predict
                d_top1 = max((abs(a - b) for a, b in
                              zip(r["top1_logits"][:n_cmp], ref["top1_logits"][:n_cmp])),
                             default=0.0)
                d_sum = abs(logits_checksum(r["first_logits"])["sum"] -
                            ref["logits_checksum"]["sum"])
                print(f"diag {name:10s} case {idx}: tokens_equal={same} first_diff_step={first_div} "
                      f"step0 max|d|={d_first:.3g} (rel to max|logit| {rel:.2g}) "
                      f"max|dtop1| over agreeing steps={d_top1:.3g} |dsum step0|={d_sum:.3g}")
        finally:
            engine.close()


def prefill_consistency(engine: Engine, reference: List[dict]) -> None:
    """Last row of the all-logits prefill vs the last-only prefill used for greedy (case 0)."""
    ref = reference[0]
    all_logits = prompt_prefill_all(engine, ref["prompt_ids"])
    last_only = greedy_run(engine, ref["prompt_ids"], 1)["first_logits"]
    print(f"diag prefill all-outputs vs last-only (case 0): "
          f"max|d|={float(np.max(np.abs(all_logits[-1] - last_only))):.3g}")


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="path to the Gemma 3 270M Q4_K_M GGUF")
    ap.add_argument("--out", required=True, help="output directory for the fixtures")
    ap.add_argument("--n-predict", type=int, default=40, help="greedy steps per prompt")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (decode and batch)")
    ap.add_argument("--seed", type=int, default=20261122, help="seed for random tokenizer strings")
    ap.add_argument("--n-random", type=int, default=32, help="number of random tokenizer strings")
    ap.add_argument("--diagnostics", action="store_true",
                    help="also re-run greedy under variant configs and print the differences")
    ap.add_argument("--verbose", action="store_true", help="show llama.cpp logging")
    args = ap.parse_args(argv)

    # llama.cpp logs through a C callback; unless --verbose, install a silent one. The ctypes
    # object must stay referenced while llama.cpp may call it, i.e. until main returns.
    logging.getLogger("llama-cpp-python").setLevel(logging.DEBUG if args.verbose else logging.ERROR)
    quiet_log = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
    if not args.verbose:
        llama_cpp.llama_log_set(quiet_log, ctypes.c_void_p(0))
    os.makedirs(args.out, exist_ok=True)
    model_sha = sha256_file(args.model)

    # Tokenizer-only instance (no weights touched beyond the vocabulary).
    vocab_llm = Llama(model_path=args.model, vocab_only=True, verbose=args.verbose)

    tok_cases = make_tokenizer_fixture(vocab_llm, args.seed, args.n_random)
    dump_json(os.path.join(args.out, "tokenizer.json"),
              {"model_sha256": model_sha, "generator": "llama-cpp-python " + llama_cpp.__version__,
               "n_cases": len(tok_cases)},
              tok_cases)
    print(f"tokenizer.json: {len(tok_cases)} cases", file=sys.stderr)

    cfg = EngineConfig(n_threads=args.threads, n_threads_batch=args.threads)
    engine = Engine(args.model, cfg)
    try:
        eog = [t for t in range(engine.n_vocab) if llama_cpp.llama_vocab_is_eog(engine.vocab, t)]
        greedy_cases, firsts = make_greedy_fixture(engine, vocab_llm, args.n_predict)
        dump_json(os.path.join(args.out, "greedy.json"),
                  {"model_sha256": model_sha,
                   "generator": "llama-cpp-python " + llama_cpp.__version__,
                   "n_predict": args.n_predict,
                   "decoding": "argmax of raw logits, lowest id on ties; never stops at EOG",
                   "eog_ids": eog,
                   "config": asdict(cfg)},
                  greedy_cases)
        if args.diagnostics:
            prefill_consistency(engine, greedy_cases)
    finally:
        engine.close()

    if args.diagnostics:
        run_diagnostics(args.model, cfg, args.n_predict, greedy_cases, firsts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
