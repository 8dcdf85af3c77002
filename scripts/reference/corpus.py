"""Tokenizer corpus for tests/data/llamacpp/tokenize.json.

CASES is a list of (text, add_special, parse_special).  Every plain text is
tokenized with add_special=False, parse_special=False; texts containing
special-token markup are additionally tokenized with parse_special=True, and a
subset with add_special=True.
"""

PROSE = [
    "Hello world",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "hello",
    " hello",
    "  hello",
    "Hello",
    "HELLO WORLD",
    "hElLo WoRlD",
    "I am a large language model.",
    "What is the capital of France?",
    "Once upon a time, in a land far, far away, there lived a little dragon.",
    "e.g. i.e. etc. Mr. Mrs. Dr. St. U.S.A.",
    "state-of-the-art, well-known, self-contained",
    "email: john.doe@example.com, url: https://www.example.org/path?q=1&r=two#frag",
    "@user #hashtag $100 50% a&b a|b a^b ~x",
    "C++ C# F# .NET node.js",
    "camelCaseIdentifier snake_case_identifier SCREAMING_CASE kebab-case",
    "ALLCAPSWORDFOLLOWEDbyLOWER",
    "Mixed123Numbers456InWords",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "Supercalifragilisticexpialidocious is a very long word.",
    "a" * 300,
    "ab" * 150,
    "xyzzy" * 40,
    "antidisestablishmentarianism" * 5,
]

CONTRACTIONS = [
    "It's a dog's life, isn't it?",
    "don't won't can't shouldn't",
    "DON'T WON'T CAN'T",
    "you're we're they're YOU'RE",
    "I'll we'll she'LL HE'LL",
    "I've you've I'VE",
    "I'd you'd I'D",
    "I'm I'M i'm",
    "the students' books; James's car",
    "'s 't 're 've 'm 'll 'd",
    "rock 'n' roll",
    "‘curly’ “double” quotes, it’s",
    "'quoted' \"double\" `backtick`",
    "'''triple''' \"\"\"docstring\"\"\"",
]

NUMBERS = [
    "1",
    "12",
    "123",
    "1234",
    "12345",
    "123456",
    "1234567",
    "0123456789",
    "3.14159265358979",
    "-42 +17 -0.5 1e10 6.02e23 1E-9",
    "1,000,000",
    "1 000 000",
    "1.000.000,50",
    "$1,234.56 and €99,99 and £5 and ¥1000",
    "2024-01-15",
    "15/01/2024 01/15/24",
    "12:34:56 09:00am 23:59",
    "2024-01-15T12:34:56Z",
    "0x1F 0xDEADBEEF 0b1010 0o777",
    "v1.2.3-beta.4",
    "192.168.0.1 ::1 fe80::1",
    "+1 (555) 123-4567",
    "1st 2nd 3rd 4th 21st 100th",
    "12345678901234567890123456789012345678901234567890",
    "3.14159265358979323846264338327950288419716939937510",
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10",
    "1 2 3 4 5 6 7 8 9 10 11 12",
    "x1 x12 x123 x1234",
    "٠١٢٣٤٥٦٧٨٩ ۰۱۲ ०१२३ 一二三 ①②③ ½ ¾ ²³",
    "1/2 3/4 100% 99.9%",
]

WHITESPACE = [
    "",
    " ",
    "  ",
    "   ",
    "    ",
    "        ",
    "\t",
    "\t\t",
    "\n",
    "\n\n",
    "\n\n\n",
    "\n\n\n\n\n",
    " \n ",
    "\r\n",
    "\r\n\r\n",
    "\r",
    "hello world ",
    "hello world   ",
    "   leading spaces",
    "trailing newline\n",
    "two  spaces",
    "three   spaces",
    "tab\tseparated\tvalues",
    "mixed \t \n whitespace \n\t ",
    "line one\nline two\n\nline four",
    "  \n  indented\n    more\n",
    "word\n\n\n\nword",
    " \t\n\r\x0b\x0c",
    "non\u00a0breaking\u00a0space",
    "ideographic\u3000space",
    "zero\u200bwidth\u200bspace",
    "\ufeffBOM at start",
    "line\u2028separator\u2029para",
    "en\u2002em\u2003thin\u2009spaces",
]

PUNCT = [
    "!!!",
    "???",
    "?!?!",
    "...",
    "…",
    "------",
    "======",
    "*****",
    "#####",
    "~~~~~",
    "a -- b --- c",
    "(((nested)))",
    "[[[brackets]]]",
    "{{{braces}}}",
    "<<<>>>",
    "!@#$%^&*()_+-=[]{}|;':\",./<>?`~",
    "Hello!!! How are you??? Fine...",
    "—em dash– en dash‐ hyphen",
    "«guillemets» „German“ 「Japanese」",
    "•bullet · middle dot",
    "->  => <= >= != == === !== && || ::",
    "/* comment */ // line # hash",
]

CODE = [
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "import numpy as np\nx = np.array([1, 2, 3])\nprint(x.mean())",
    "class Foo(Bar):\n    \"\"\"Docstring.\"\"\"\n\n    def __init__(self, *args, **kwargs):\n        super().__init__(*args, **kwargs)\n        self._x = None\n",
    "for i in range(10):\n\tprint(f\"{i:03d} -> {i**2}\")",
    "if __name__ == \"__main__\":\n    main()",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * 2).collect();\n    println!(\"{:?}\", v);\n}\n",
    "impl<T: Clone + Send + 'static> Foo<T> for Bar<'a> where T: Debug {}",
    "#[derive(Debug, Clone, PartialEq)]\npub struct Point { x: f32, y: f32 }",
    "let s = &mut self.buf[..n]; s?.unwrap_or_default();",
    "{\"name\": \"srl\", \"version\": \"0.1.0\", \"tags\": [\"a\", \"b\"], \"n\": 3.5, \"ok\": true, \"x\": null}",
    "{\n  \"nested\": {\n    \"deep\": [1, 2, {\"k\": \"v\"}]\n  }\n}",
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Test</title></head>\n<body><div class=\"a b\" id='x'>Hi &amp; bye</div></body>\n</html>",
    "<p>Some <b>bold</b> and <i>italic</i> text.</p>",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
    "const f = async (x) => { await fetch(`/api/${x}`); };",
    "$ ls -la | grep '.rs' && cargo build --release 2>&1",
    "x += 1; y -= 2; z *= 3; w /= 4; a <<= 1; b >>= 2;",
    "    indented code line with four spaces",
    "\tindented with a tab",
    "    \n    \n",
    "# Title\n\n## Subtitle\n\n- item one\n- item two\n\n1. first\n2. second\n\n```python\nprint('hi')\n```\n",
    "| col1 | col2 |\n|------|------|\n| a    | b    |",
    "\\begin{equation} E = mc^2 \\end{equation} $\\alpha + \\beta$",
]

UNICODE = [
    "café naïve résumé façade jalapeño",
    "Ångström Øre Æther ß straße",
    "Zürich Köln Müller",
    "ñ Ñ ü Ü é É",
    "e\u0301 (combining acute) vs \u00e9 (precomposed)",
    "Ελληνικά: Γειά σου κόσμε",
    "Русский: Привет, мир! Как дела?",
    "Українська мова",
    "עברית: שלום עולם",
    "العربية: مرحبا بالعالم",
    "مرحبا 123 hello",
    "हिन्दी: नमस्ते दुनिया",
    "বাংলা ভাষা",
    "தமிழ்",
    "ไทย: สวัสดีชาวโลก",
    "中文：你好，世界！",
    "日本語：こんにちは世界。カタカナ ひらがな",
    "한국어: 안녕하세요 세계",
    "我爱自然语言处理和机器学习",
    "東京タワーは333メートルです。",
    "Hello 世界 مرحبا мир नमस्ते 🌍",
    "😀",
    "😀😃😄😁",
    "I love 🍕 and 🍺!",
    "👍🏽 thumbs up medium skin tone",
    "👨\u200d👩\u200d👧\u200d👦 family (ZWJ)",
    "👩\u200d💻 woman technologist",
    "🏳️\u200d🌈 rainbow flag",
    "🇫🇷 🇺🇸 🇯🇵 🇩🇪 flags",
    "❤️ ♥ ☺️ ✨ ⭐",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math 𝐛𝐨𝐥𝐝 𝟙𝟚𝟛",
    "𐍈 gothic, 𓀀 hieroglyph",
    "™ © ® ° ± × ÷ ∞ ≈ ≠ ≤ ≥ √ ∑ ∫ π Ω µ",
    "→ ← ↑ ↓ ⇒ ⇔",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "ﬁ ligature ﬂ",
    "\u0000",
    "a\u0000b",
    "\x01\x02\x03",
    "bell\x07 escape\x1b[31m red\x1b[0m",
    "\x7f delete",
    "\u0080\u009f C1 controls",
    "\ufffd replacement char",
    "\U0010ffff max code point",
]

SPECIAL = [
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "Some text<|endoftext|>more text",
    "text <|endoftext|> with spaces",
    "<|im_start|><|im_end|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|im_start |> not quite special",
    "<|unknown_token|>",
    "<|endoftext|><|endoftext|>",
    "<repo_name>srl<file_sep>main.rs",
    "<filename>a.py\n<gh_stars>10",
    "<jupyter_start><jupyter_code>print(1)<jupyter_output>1",
    "<empty_output>",
    "user<|im_end|>\n<|im_start|>assistant\nHi there!<|im_end|>",
    "\n<|im_start|>",
    " <|im_end|> ",
]

ADD_SPECIAL = [
    "Hello world",
    "",
    " ",
    "<|im_start|>user\nhi<|im_end|>",
    "The capital of France is",
]

LONG = [
    (
        "The history of computing is longer than the history of computing hardware and modern computing technology "
        "and includes the history of methods intended for pen and paper or for chalk and slate, with or without the "
        "aid of tables.\n\nDigital computing is intimately tied to the representation of numbers. But long before "
        "abstractions like the number arose, there were mathematical concepts to serve the purposes of civilization. "
        "These concepts are implicit in concrete practices such as one-to-one correspondence, the basis of counting, "
        "and comparison to a standard, used for measurement.\n\nThe earliest known tool for use in computation was "
        "the abacus, and it was thought to have been invented in Babylon circa 2400 BC. Its original style of usage "
        "was by lines drawn in sand with pebbles. Abaci, of a more modern design, are still used as calculation tools "
        "today. In 1642, Blaise Pascal (1623-1662) built a mechanical calculator; by 1673 Leibniz had improved on it."
    ),
    (
        "Q: A train leaves the station at 3:45 PM traveling at 60 mph. Another train leaves at 4:15 PM at 80 mph. "
        "When does the second train catch up?\n\nA: Let's think step by step.\n1. In 30 minutes the first train "
        "covers 30 miles.\n2. The gap closes at 80 - 60 = 20 mph.\n3. 30 / 20 = 1.5 hours, so at 5:45 PM.\n\n"
        "Therefore, the answer is 5:45 PM.   \n\n\n"
    ),
    (
        "## Installation\n\n```bash\npip install srl==0.1.0\n```\n\n### Usage\n\n```rust\nuse srl::Model;\n\n"
        "fn main() -> anyhow::Result<()> {\n    let m = Model::load(\"SmolLM2-135M-Instruct.Q4_1.gguf\")?;\n"
        "    let out = m.generate(\"Hello\", 64)?;\n    println!(\"{out}\");\n    Ok(())\n}\n```\n\n"
        "> **Note:** the tokenizer must match llama.cpp *exactly*.\n"
    ),
    (
        "Der schnelle braune Fuchs springt über den faulen Hund. Le vif renard brun saute par-dessus le chien "
        "paresseux. El rápido zorro marrón salta sobre el perro perezoso. 敏捷的棕色狐狸跳过了懒狗。"
        "素早い茶色の狐がのろまな犬を飛び越える。Быстрая коричневая лиса прыгает через ленивую собаку. "
        "الثعلب البني السريع يقفز فوق الكلب الكسول. तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूदती है। 🦊🐕"
    ),
]


def cases():
    out = []
    seen = set()

    def add(text, a, p):
        key = (text, a, p)
        if key not in seen:
            seen.add(key)
            out.append(key)

    for group in (PROSE, CONTRACTIONS, NUMBERS, WHITESPACE, PUNCT, CODE, UNICODE, LONG):
        for t in group:
            add(t, False, False)
    for t in SPECIAL:
        add(t, False, False)
        add(t, False, True)
    for t in ADD_SPECIAL:
        add(t, True, False)
        add(t, True, True)
    return out
