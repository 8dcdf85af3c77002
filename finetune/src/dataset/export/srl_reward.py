"""srl's rewards for TRL and verl: what `srl train srl` and `srl train rlvr`
optimise, so a run on a GPU cluster optimises the same thing.

Written by `srl data export`. Standard library only.

- SRL (step) reward: the model's response must be a `<think>...</think>`
  monologue followed by its action (the opening tag may be left out when the
  prompt ended with it); a missing or unclosed block, text before `<think>`,
  a second block or an empty action is a format failure, reward -1.
  Otherwise the action (a copied "Step k:" label removed) is compared with
  the expert's step by `difflib.SequenceMatcher(None, action, step).ratio()`,
  in [0, 1]. This is srl's `parse_response` and `similarity::ratio` line for
  line; srl's tests check it gives srl's reward bit for bit.
- RLVR reward: 1 when the response's final answer (its last `\\boxed{}`, else
  its last "answer: ..." / "answer is ...", else its last number, after the
  last `</think>`) equals the reference, else 0. The comparison here is
  simpler than srl's checker (which also reads fractions, LaTeX and units):
  text after light normalisation, or equal numbers.

TRL (`GRPOTrainer(reward_funcs=[srl_step_reward_trl])`): the reward
functions take the completions and the dataset's other columns as keyword
lists. verl (`custom_reward_function.path=srl_reward.py`,
`custom_reward_function.name=compute_score`): `compute_score(data_source,
solution_str, ground_truth, extra_info)`.
"""
import difflib
import re

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

# Rust's char::is_whitespace (Unicode White_Space): Python's str.isspace
# also counts \x1c-\x1f, which Rust's trim keeps.
WS = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
      "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def _is_ws(c):
    return c in WS


def _digits(s):
    n = 0
    while n < len(s) and "0" <= s[n] <= "9":
        n += 1
    return n


def _parse_label(s, bold, heading):
    """A step label at the start of s: (kind, number, rest, closed) or None."""
    word = s[:4].isascii() and s[:4].lower() == "step" and len(s[:4].encode()) == 4
    paren = not word and s.startswith("(")
    t = s[4:].lstrip(WS) if word else (s[1:] if paren else s)
    n_digits = _digits(t)
    if n_digits == 0 or n_digits > 3:
        return None
    n = int(t[:n_digits])
    t = t[n_digits:]
    if paren:
        if not t.startswith(")"):
            return None
        t = t[1:]
    closed = False

    def close(t):
        nonlocal closed
        if bold is not None and t.startswith(bold) and not closed:
            closed = True
            return t[len(bold):]
        return t

    t = close(t)
    sep = paren
    if not paren:
        u = t.lstrip(WS) if word else t
        if u and u[0] in ":.)-\u2013\u2014":
            c = u[0]
            after = u[1:]
            if (after[:1] and "0" <= after[0] <= "9") or (not word and c not in ".)"):
                return None
            t = after
            sep = True
    t = close(t)
    if word:
        if not (sep or closed or heading or t.strip(WS) == ""):
            return None
        kind = "step"
    else:
        if not sep or not (closed or t == "" or _is_ws(t[0])):
            return None
        kind = "number"
    return kind, n, t.lstrip(WS), closed


def _whole_bold(s):
    for d in ("**", "__"):
        if s.startswith(d) and s.endswith(d) and len(s) >= 2 * len(d):
            inner = s[len(d):len(s) - len(d)]
            if d not in inner and inner.strip(WS) != "":
                return inner.strip(WS)
    return None


def _marker(line):
    """srl's step_label::marker: (label kind or None, text) or None."""
    s = line.lstrip(WS).rstrip(WS)
    heading = None
    hashes = len(s) - len(s.lstrip("#"))
    if 1 <= hashes <= 6 and (len(s) == hashes or _is_ws(s[hashes])):
        heading = hashes
        s = s[hashes:].strip(WS)
        unclosed = s.rstrip("#")
        if len(unclosed) < len(s) and (unclosed == "" or unclosed.endswith(" ")):
            s = unclosed.rstrip(WS)
    bold = next((d for d in ("**", "__") if s.startswith(d)), None)
    label = _parse_label(s[len(bold):] if bold else s, bold, heading is not None)
    if label is not None and not label[3] and bold is not None:
        kind, _, rest, _ = label
        i = rest.find(bold)
        if i >= 0 and i + len(bold) == len(rest):
            title = rest[:i].strip(WS)
            text = title
        elif i >= 0:
            text, title = rest[:i] + rest[i + len(bold):], None
        else:
            text, title = rest, None
    elif label is not None:
        kind, _, rest, _ = label
        text, title = rest, _whole_bold(rest)
    else:
        kind, text, title = None, s, _whole_bold(s)
    if heading is not None:
        title = _whole_bold(text) or text
    if title == "":
        title = None
    if kind is None and heading is None and title is None:
        return None
    return kind, text


def strip_step_label(text):
    """text without a leading "Step k:" label (srl's strip_step_label)."""
    text = text.strip(WS)
    first, _, rest = text.partition("\n")
    m = _marker(first)
    if m is not None and m[0] == "step":
        rest = rest.rstrip(WS)
        if rest.strip(WS) == "":
            return m[1]
        if m[1] == "":
            return rest.lstrip("\n\r")
        return m[1] + "\n" + rest
    return text


class FormatFailure(ValueError):
    pass


def parse_response(text):
    """(thought, action) of a response, or FormatFailure (srl's parse_response)."""
    t = text.lstrip(WS)
    if t.startswith(THINK_OPEN):
        after = t[len(THINK_OPEN):]
        end = after.find(THINK_CLOSE)
        if end < 0:
            raise FormatFailure("the <think> block is not closed")
        thought, rest = after[:end], after[end + len(THINK_CLOSE):]
    elif THINK_CLOSE in t:
        end = t.find(THINK_CLOSE)
        if THINK_OPEN in t[:end]:
            raise FormatFailure("text before <think>")
        thought, rest = t[:end], t[end + len(THINK_CLOSE):]
    elif THINK_OPEN in t:
        raise FormatFailure("text before <think>")
    else:
        raise FormatFailure("no <think> block")
    if THINK_OPEN in thought or THINK_OPEN in rest or THINK_CLOSE in rest:
        raise FormatFailure("more than one <think> block")
    action = strip_step_label(rest)
    if action == "":
        raise FormatFailure("no action after </think>")
    return thought.strip(WS), action


def similarity(action, expert_step, autojunk=True):
    """difflib's ratio, the action as a and the expert's step as b."""
    return difflib.SequenceMatcher(None, action, expert_step, autojunk=autojunk).ratio()


def srl_step_reward(response, expert_step, autojunk=True):
    """srl's SRL reward: -1 for a broken format, else the action's similarity."""
    try:
        _, action = parse_response(response)
    except FormatFailure:
        return -1.0
    return similarity(action, expert_step, autojunk)


# --- RLVR --------------------------------------------------------------------

def _boxed(text):
    i = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if i < 0:
        return None
    rest = text[i:].split("{", 1)
    if len(rest) < 2:
        return None
    depth, out = 1, []
    for c in rest[1]:
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return "".join(out).strip()
        out.append(c)
    return None


def final_answer(response):
    """The final answer of a whole-solution response, or None."""
    i = response.rfind(THINK_CLOSE)
    text = response[i + len(THINK_CLOSE):] if i >= 0 and response[i + len(THINK_CLOSE):].strip() else response
    boxed = _boxed(text)
    if boxed is not None:
        return boxed
    m = list(re.finditer(r"answer(?: is|:)\s*\**\s*([^\n]*)", text, re.IGNORECASE))
    if m:
        return m[-1].group(1).strip().rstrip(".*").strip("$ ")
    nums = re.findall(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+", text)
    return nums[-1] if nums else None


def _norm(a):
    a = a.replace("$", "").replace("\\text{", "").replace("\\!", "").replace(",", "")
    a = re.sub(r"\s+", "", a).rstrip(".").strip("{}")
    return a.lower()


def rlvr_reward(response, reference):
    """1.0 when the final answer equals the reference (see the module docs)."""
    answer = final_answer(response)
    if answer is None:
        return 0.0
    ref = _boxed(reference) or reference
    a, b = _norm(answer), _norm(ref)
    if a == b:
        return 1.0
    num = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)")
    ma, mb = num.match(a), num.match(b)
    if ma and mb and float(ma.group(0)) == float(mb.group(0)):
        # The same number, a unit on one side at most.
        ua, ub = a[ma.end():], b[mb.end():]
        return 1.0 if ua == ub or not ua or not ub else 0.0
    return 0.0


# --- trainers ------------------------------------------------------------------

def _text(completion):
    """A TRL completion: a string, or a conversational list of messages."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content") or "" for m in completion if m.get("role") == "assistant")


def srl_step_reward_trl(completions, expert_step, **kwargs):
    """TRL reward function for the SRL step data (column `expert_step`)."""
    return [srl_step_reward(_text(c), e) for c, e in zip(completions, expert_step)]


def rlvr_reward_trl(completions, answer, **kwargs):
    """TRL reward function for the RLVR problems (column `answer`)."""
    return [rlvr_reward(_text(c), a) for c, a in zip(completions, answer)]


def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    """verl's custom reward function."""
    if data_source == "srl/step":
        return srl_step_reward(solution_str, ground_truth)
    if data_source == "srl/rlvr":
        return rlvr_reward(solution_str, ground_truth)
    raise ValueError(f"srl_reward.py does not know the data source {data_source!r}")


if __name__ == "__main__":
    # Scores JSONL lines {"response", "b"} read from stdin, printing each
    # step reward as its shortest repr (the digits `srl reward` prints):
    # srl's tests compare the two.
    import json
    import sys

    for line in sys.stdin:
        if line.strip():
            v = json.loads(line)
            print(repr(srl_step_reward(v["response"], v["b"], v.get("autojunk", True))))
