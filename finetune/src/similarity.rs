//! The SRL step reward's similarity: Python's
//! `difflib.SequenceMatcher(None, a, b).ratio()`, bit for bit.
//!
//! srl calls it as SRL.md's reward does: `a` is the model's action (the
//! rollout) and `b` the expert's step. The order matters: difflib indexes `b`
//! (`set_seq2`) and its autojunk heuristic looks at `b` only, so
//! `ratio(a, b)` and `ratio(b, a)` can differ. [`Similarity`] keeps the index
//! of one expert step and scores a group of rollouts against it.
//!
//! Sequences are Unicode code points (Python `str` items), so `"é"` and
//! `"e\u{301}"` differ, and lengths count code points, not bytes.
//!
//! The algorithm is CPython 3.11's `Lib/difflib.py`, step by step:
//! - `__chain_b`: `b2j` maps each element of `b` to its ascending positions.
//!   With autojunk (difflib's default) and `len(b) >= 200`, an element that
//!   occurs more than `len(b) // 100 + 1` times is "popular" and dropped
//!   from `b2j` (it can still extend a match, below).
//! - `find_longest_match(alo, ahi, blo, bhi)`: for each `i`, for each
//!   position `j` of `a[i]` in `b2j` within `[blo, bhi)`, in ascending
//!   order, `k = j2len[j - 1] + 1` where `j2len` holds only the previous
//!   row's entries; the largest `k` wins, the first block to reach it in
//!   that order (of where blocks end) if there are ties. Then the match is extended while `a` and `b` agree on
//!   elements that are not junk, backwards and forwards (this is how popular
//!   elements join a match), then over junk elements. srl, like the reward,
//!   passes `isjunk=None`, so the junk set is empty and the last two loops
//!   never run; they are left out.
//! - `get_matching_blocks`: a LIFO queue of `(alo, ahi, blo, bhi)` ranges,
//!   each split around its longest match; the blocks sorted, adjacent ones
//!   merged, and the `(len(a), len(b), 0)` sentinel appended.
//! - `ratio = 2.0 * M / T` (`_calculate_ratio`), `M` the sum of the block
//!   sizes and `T = len(a) + len(b)`; 1.0 when both are empty.
//!
//! Speed without changing a single decision: elements are dense ids (an
//! ASCII table, a hash map for the rest), `b2j` is one array of positions
//! with an offset per id, the `[blo, bhi)` window is found by binary search
//! (the same positions, in the same order, as difflib's skip-and-break loop),
//! and `j2len` is two arrays (even and odd rows) whose entries carry the
//! row that wrote them, allocated once per [`Similarity::ratio`] call or
//! once for many with [`Similarity::ratio_with`] (see [`Scratch`]).
//!
//! Checked against difflib on `finetune/tests/data/similarity_pairs.jsonl`
//! (`scripts/reference/gen_similarity.py`), ratios and matching blocks, with
//! autojunk on and off.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// The id of an element of `a` that does not occur in `b`.
const ABSENT: u32 = u32::MAX;

/// `difflib.SequenceMatcher(None, a, b, autojunk=autojunk).ratio()`: in SRL,
/// `a` is the rollout's action and `b` the expert step. In `[0, 1]`; 1.0
/// when both are empty.
pub fn ratio(a: &str, b: &str, autojunk: bool) -> f64 {
    Similarity::new(b, autojunk).ratio(a)
}

/// One matching block: `a[a..a + size] == b[b..b + size]` (code point
/// indices), as difflib's `Match(a, b, size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub a: usize,
    pub b: usize,
    pub size: usize,
}

/// The difflib index of one `b` (an expert step), to score many `a`s
/// (rollouts) against it: what `SequenceMatcher.set_seq2(b)` builds.
#[derive(Debug, Clone)]
pub struct Similarity {
    /// Id of each ASCII code point of `b`, or [`ABSENT`].
    ascii: [u32; 128],
    /// Id of each non-ASCII code point of `b`.
    other: HashMap<char, u32>,
    /// `b` as ids.
    b: Vec<u32>,
    /// `b2j[id]` is `positions[starts[id]..starts[id + 1]]`, ascending;
    /// empty for a popular element.
    starts: Vec<usize>,
    positions: Vec<u32>,
    /// Elements dropped as popular by autojunk.
    popular: usize,
}

/// Reusable buffers of the matcher, so a [`Similarity`] can score many
/// rollouts without allocating: `a` as ids, `j2len` and the range queue.
///
/// difflib's `j2len` is a dict holding only the previous row's entries
/// (`j2len = newj2len`, `j2len.get(j - 1, 0)`). Here it is two arrays, one
/// for even rows and one for odd (lanes 0 and 1 of `j2len[j + 1]` for
/// position `j`), so a row reads the previous row's lane while it writes its
/// own. An entry is `stamp << 32 | k`, `stamp` the row that wrote it, and
/// counts only if that is the previous row: stamps increase across rows and
/// calls, so nothing is cleared (except when the 32-bit stamp would wrap).
/// Code point counts are below 2^32.
#[derive(Debug, Default)]
pub struct Scratch {
    a: Vec<u32>,
    j2len: Vec<[u64; 2]>,
    stamp: u32,
    queue: Vec<(usize, usize, usize, usize)>,
}

/// The last stamp handed out before the entries are cleared: small in unit
/// tests, so that they clear often.
const STAMP_LIMIT: u32 = if cfg!(test) { 1000 } else { u32::MAX };

impl Similarity {
    /// Indexes `b` (difflib's `__chain_b`), with or without autojunk.
    pub fn new(b: &str, autojunk: bool) -> Self {
        let mut ascii = [ABSENT; 128];
        let mut other = HashMap::new();
        let mut counts: Vec<usize> = Vec::new();
        let mut ids = Vec::with_capacity(b.len());
        for c in b.chars() {
            let slot = if (c as u32) < 128 {
                &mut ascii[c as usize]
            } else {
                other.entry(c).or_insert(ABSENT)
            };
            if *slot == ABSENT {
                *slot = counts.len() as u32;
                counts.push(0);
            }
            counts[*slot as usize] += 1;
            ids.push(*slot);
        }
        let n = ids.len();
        let mut popular = 0;
        if autojunk && n >= 200 {
            let ntest = n / 100 + 1;
            for c in counts.iter_mut().filter(|c| **c > ntest) {
                *c = 0;
                popular += 1;
            }
        }
        let mut starts = Vec::with_capacity(counts.len() + 1);
        let mut total = 0;
        starts.push(0);
        for &c in &counts {
            total += c;
            starts.push(total);
        }
        let mut fill = starts[..counts.len()].to_vec();
        let mut positions = vec![0; total];
        for (j, &id) in ids.iter().enumerate() {
            if counts[id as usize] > 0 {
                positions[fill[id as usize]] = j as u32;
                fill[id as usize] += 1;
            }
        }
        Similarity {
            ascii,
            other,
            b: ids,
            starts,
            positions,
            popular,
        }
    }

    /// `len(b)` in code points.
    pub fn len(&self) -> usize {
        self.b.len()
    }

    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }

    /// How many distinct elements autojunk dropped as popular (difflib's
    /// `bpopular`).
    pub fn popular(&self) -> usize {
        self.popular
    }

    /// `SequenceMatcher(None, a, b).ratio()` for this `b`.
    pub fn ratio(&self, a: &str) -> f64 {
        self.ratio_with(a, &mut Scratch::default())
    }

    /// [`Similarity::ratio`] with caller-owned buffers (no allocation once
    /// they have grown to the largest `a` and `b`).
    pub fn ratio_with(&self, a: &str, scratch: &mut Scratch) -> f64 {
        let mut matches = 0;
        self.for_each_block(a, scratch, |m| matches += m.size);
        calculate_ratio(matches, scratch.a.len() + self.b.len())
    }

    /// difflib's `get_matching_blocks()`: sorted, adjacent blocks merged,
    /// ending with the sentinel `(len(a), len(b), 0)`.
    pub fn matching_blocks(&self, a: &str) -> Vec<Match> {
        let mut scratch = Scratch::default();
        let mut blocks = Vec::new();
        self.for_each_block(a, &mut scratch, |m| blocks.push(m));
        blocks.sort_by_key(|m| (m.a, m.b, m.size));
        let mut merged = Vec::with_capacity(blocks.len() + 1);
        let mut cur = Match {
            a: 0,
            b: 0,
            size: 0,
        };
        for m in blocks {
            if cur.a + cur.size == m.a && cur.b + cur.size == m.b {
                cur.size += m.size;
            } else {
                if cur.size > 0 {
                    merged.push(cur);
                }
                cur = m;
            }
        }
        if cur.size > 0 {
            merged.push(cur);
        }
        merged.push(Match {
            a: scratch.a.len(),
            b: self.b.len(),
            size: 0,
        });
        merged
    }

    /// The id of `c` in `b`, or [`ABSENT`].
    fn id(&self, c: char) -> u32 {
        if (c as u32) < 128 {
            self.ascii[c as usize]
        } else {
            self.other.get(&c).copied().unwrap_or(ABSENT)
        }
    }

    /// The unsorted blocks of `get_matching_blocks`, in the order difflib's
    /// queue finds them. Leaves `a` (as ids) in `scratch.a`.
    fn for_each_block(&self, a: &str, scratch: &mut Scratch, mut on_block: impl FnMut(Match)) {
        scratch.a.clear();
        scratch.a.extend(a.chars().map(|c| self.id(c)));
        let lb = self.b.len();
        if scratch.j2len.len() < lb + 1 {
            scratch.j2len.resize(lb + 1, [0; 2]);
        }
        let la = scratch.a.len();
        scratch.queue.clear();
        scratch.queue.push((0, la, 0, lb));
        while let Some((alo, ahi, blo, bhi)) = scratch.queue.pop() {
            let m = self.find_longest_match(scratch, alo, ahi, blo, bhi);
            let (i, j, k) = (m.a, m.b, m.size);
            if k > 0 {
                on_block(m);
                if alo < i && blo < j {
                    scratch.queue.push((alo, i, blo, j));
                }
                if i + k < ahi && j + k < bhi {
                    scratch.queue.push((i + k, ahi, j + k, bhi));
                }
            }
        }
    }

    /// difflib's `find_longest_match(alo, ahi, blo, bhi)` with no junk.
    fn find_longest_match(
        &self,
        scratch: &mut Scratch,
        alo: usize,
        ahi: usize,
        blo: usize,
        bhi: usize,
    ) -> Match {
        if (STAMP_LIMIT - scratch.stamp) as usize <= ahi - alo + 1 {
            scratch.j2len.fill([0; 2]);
            scratch.stamp = 0;
        }
        let (a, b) = (&scratch.a, &self.b);
        let j2len = &mut scratch.j2len;
        let (mut besti, mut bestj, mut bestsize) = (alo, blo, 0);
        // The stamp of row alo - 1, which wrote nothing.
        scratch.stamp += 1;
        for (i, &id) in (alo..ahi).zip(&a[alo..ahi]) {
            let prev = scratch.stamp;
            scratch.stamp += 1;
            let row = scratch.stamp;
            if id == ABSENT {
                continue;
            }
            let js = &self.positions[self.starts[id as usize]..self.starts[id as usize + 1]];
            // `if j < blo: continue` / `if j >= bhi: break`.
            let js = window(js, blo, bhi);
            if let Some((j, k)) = scan_row(js, j2len, prev, row, bestsize as u32) {
                let (j, k) = (j as usize, k as usize);
                (besti, bestj, bestsize) = (i + 1 - k, j + 1 - k, k);
            }
        }
        // Extend over equal non-junk elements (popular ones included).
        while besti > alo && bestj > blo && a[besti - 1] == b[bestj - 1] {
            (besti, bestj, bestsize) = (besti - 1, bestj - 1, bestsize + 1);
        }
        while besti + bestsize < ahi
            && bestj + bestsize < bhi
            && a[besti + bestsize] == b[bestj + bestsize]
        {
            bestsize += 1;
        }
        Match {
            a: besti,
            b: bestj,
            size: bestsize,
        }
    }
}

/// The positions of `js` (ascending) in `[blo, bhi)`; most windows are all
/// of `js`.
fn window(js: &[u32], blo: usize, bhi: usize) -> &[u32] {
    let lo = match js.first() {
        Some(&j) if (j as usize) < blo => js.partition_point(|&j| (j as usize) < blo),
        _ => 0,
    };
    let js = &js[lo..];
    match js.last() {
        Some(&j) if j as usize >= bhi => &js[..js.partition_point(|&j| (j as usize) < bhi)],
        _ => js,
    }
}

/// One row of `find_longest_match`, `a[i]` at positions `js` of `b`: for
/// each `j` in order, `k = j2len.get(j - 1, 0) + 1` from row `prev`, stored
/// for row `row`. Returns the `(j, k)` that last raised the best size above
/// `bestsize` (the row's largest `k`, first `j` to reach it), if any.
fn scan_row(
    js: &[u32],
    j2len: &mut [[u64; 2]],
    prev: u32,
    row: u32,
    bestsize: u32,
) -> Option<(u32, u32)> {
    let (read, write) = ((prev & 1) as usize, (row & 1) as usize);
    let (prev, row) = (prev as u64, (row as u64) << 32);
    let (mut best_j, mut best_k) = (0, bestsize);
    for &j in js {
        // Branch-free: whether row `prev` wrote j - 1 is hard to predict.
        let e = j2len[j as usize][read];
        let valid = 0u32.wrapping_sub((e >> 32 == prev) as u32);
        let k = (e as u32 & valid) + 1;
        j2len[j as usize + 1][write] = row | k as u64;
        if k > best_k {
            (best_j, best_k) = (j, k);
        }
    }
    (best_k > bestsize).then_some((best_j, best_k))
}

/// difflib's `_calculate_ratio(matches, length)`.
fn calculate_ratio(matches: usize, length: usize) -> f64 {
    if length > 0 {
        2.0 * matches as f64 / length as f64
    } else {
        1.0
    }
}

/// Why [`score_pairs`] stopped. I/O errors carry their cause as the
/// error's source.
#[derive(thiserror::Error, Debug)]
pub enum PairsError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: line {line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot write the output")]
    Write(#[source] std::io::Error),
}

/// Scores a JSONL file of pairs, for debugging rewards: each non-blank line
/// is an object with string fields `a` (the rollout's action) and `b` (the
/// expert step), and the output line is that object with `"ratio"` added
/// (replaced if present); or with `response` (a whole rollout) instead of
/// `a`, and then `"reward"` is added: SRL's reward, -1 when the response
/// breaks the think format, else the ratio of its action. The input line's text is kept as it was, other fields included.
/// Returns the number of pairs.
pub fn score_pairs(path: &Path, autojunk: bool, out: &mut dyn Write) -> Result<usize, PairsError> {
    let read = |source| PairsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = BufReader::new(std::fs::File::open(path).map_err(read)?);
    let mut scratch = Scratch::default();
    let mut buf = Vec::new();
    let (mut line, mut pairs) = (0, 0);
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(read)? == 0 {
            break;
        }
        line += 1;
        let bad = |message: String| PairsError::Line {
            path: path.to_path_buf(),
            line,
            message,
        };
        let text = std::str::from_utf8(&buf)
            .map_err(|e| bad(format!("not valid UTF-8: {e}")))?
            .trim();
        if text.is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let serde_json::Value::Object(mut object) = value else {
            return Err(bad(
                "expected a JSON object with fields \"a\" and \"b\"".into()
            ));
        };
        let field = |name: &str| match object.get(name) {
            Some(serde_json::Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(bad(format!("field \"{name}\" must be a string"))),
            None => Err(bad(format!("missing field \"{name}\""))),
        };
        // A pair, or a whole response scored as SRL's reward is.
        let (key, r) = if object.contains_key("response") {
            let (response, b) = (field("response")?, field("b")?);
            let r = match crate::steps::parse_response(response) {
                Ok(p) => Similarity::new(b, autojunk).ratio_with(&p.action, &mut scratch),
                Err(_) => -1.0,
            };
            ("reward", r)
        } else {
            let (a, b) = (field("a")?, field("b")?);
            (
                "ratio",
                Similarity::new(b, autojunk).ratio_with(a, &mut scratch),
            )
        };
        let number = serde_json::Value::from(r);
        let record = if object.contains_key(key) {
            object.insert(key.into(), number);
            serde_json::Value::Object(object).to_string()
        } else {
            // The object's own text, minus its closing brace.
            format!("{}, \"{key}\": {number}}}", &text[..text.len() - 1])
        };
        writeln!(out, "{record}").map_err(PairsError::Write)?;
        pairs += 1;
    }
    out.flush().map_err(PairsError::Write)?;
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// difflib's quadratic definition, straight from Lib/difflib.py with
    /// dicts: the reference the fast `find_longest_match` must agree with.
    #[allow(clippy::needless_range_loop)] // `for i in range(alo, ahi)`, as difflib
    fn reference_blocks(a: &str, b: &str, autojunk: bool) -> Vec<(usize, usize, usize)> {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        let mut b2j: HashMap<char, Vec<usize>> = HashMap::new();
        for (j, &c) in b.iter().enumerate() {
            b2j.entry(c).or_default().push(j);
        }
        if autojunk && b.len() >= 200 {
            let ntest = b.len() / 100 + 1;
            b2j.retain(|_, js| js.len() <= ntest);
        }
        let flm = |alo: usize, ahi: usize, blo: usize, bhi: usize| {
            let (mut bi, mut bj, mut bk) = (alo, blo, 0);
            let mut j2len: HashMap<usize, usize> = HashMap::new();
            for i in alo..ahi {
                let mut new = HashMap::new();
                for &j in b2j.get(&a[i]).map(|v| v.as_slice()).unwrap_or(&[]) {
                    if j < blo {
                        continue;
                    }
                    if j >= bhi {
                        break;
                    }
                    let k = if j == 0 {
                        0
                    } else {
                        *j2len.get(&(j - 1)).unwrap_or(&0)
                    } + 1;
                    new.insert(j, k);
                    if k > bk {
                        (bi, bj, bk) = (i + 1 - k, j + 1 - k, k);
                    }
                }
                j2len = new;
            }
            while bi > alo && bj > blo && a[bi - 1] == b[bj - 1] {
                (bi, bj, bk) = (bi - 1, bj - 1, bk + 1);
            }
            while bi + bk < ahi && bj + bk < bhi && a[bi + bk] == b[bj + bk] {
                bk += 1;
            }
            (bi, bj, bk)
        };
        let mut queue = vec![(0, a.len(), 0, b.len())];
        let mut blocks = Vec::new();
        while let Some((alo, ahi, blo, bhi)) = queue.pop() {
            let (i, j, k) = flm(alo, ahi, blo, bhi);
            if k > 0 {
                blocks.push((i, j, k));
                if alo < i && blo < j {
                    queue.push((alo, i, blo, j));
                }
                if i + k < ahi && j + k < bhi {
                    queue.push((i + k, ahi, j + k, bhi));
                }
            }
        }
        blocks
    }

    #[test]
    fn small_cases_match_difflib() {
        // Values printed by CPython 3.11's difflib.
        assert_eq!(ratio("", "", true), 1.0);
        assert_eq!(ratio("", "abc", true), 0.0);
        assert_eq!(ratio("abcd", "bcde", true), 0.75);
        assert_eq!(ratio("qabxcd", "abycdf", true), 2.0 * 4.0 / 12.0);
        let blocks: Vec<_> = Similarity::new("abycdf", true)
            .matching_blocks("qabxcd")
            .iter()
            .map(|m| (m.a, m.b, m.size))
            .collect();
        assert_eq!(blocks, [(1, 0, 2), (4, 3, 2), (6, 6, 0)]);
        // autojunk only looks at b, so the order of the arguments matters.
        let long = "ab".repeat(150);
        assert_eq!(ratio("b", &long, true), 0.0);
        assert_eq!(ratio(&long, "b", true), 2.0 / 301.0);
        // Popular elements still extend a match, even an empty one at (0, 0).
        assert_eq!(ratio("a", &long, true), 2.0 / 301.0);
    }

    #[test]
    fn fast_matcher_equals_dict_reference() {
        // xorshift strings over small alphabets: many ties, long b's.
        let mut s = 0x2545f4914f6cdd1du64;
        let mut next = |n: u64| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s % n
        };
        let alphabet: Vec<char> = "ab c€😀".chars().collect();
        let mut scratch = Scratch::default();
        for case in 0..300 {
            let (na, nb) = (next(400) as usize, next(400) as usize);
            let k = 1 + (case % alphabet.len() as u64);
            let a: String = (0..na).map(|_| alphabet[next(k) as usize]).collect();
            let b: String = (0..nb).map(|_| alphabet[next(k) as usize]).collect();
            for autojunk in [true, false] {
                let sim = Similarity::new(&b, autojunk);
                let mut fast = Vec::new();
                sim.for_each_block(&a, &mut scratch, |m| fast.push((m.a, m.b, m.size)));
                assert_eq!(fast, reference_blocks(&a, &b, autojunk), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn score_pairs_keeps_the_line_and_names_bad_lines() {
        let dir = std::env::temp_dir().join(format!("srl-similarity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pairs.jsonl");
        std::fs::write(
            &path,
            "{\"id\": 7, \"a\": \"abcd\", \"b\": \"bcde\"}\n\n{\"a\":\"\",\"b\":\"\",\"ratio\":0}\n",
        )
        .unwrap();
        let mut out = Vec::new();
        assert_eq!(score_pairs(&path, true, &mut out).unwrap(), 2);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            "{\"id\": 7, \"a\": \"abcd\", \"b\": \"bcde\", \"ratio\": 0.75}\n{\"a\":\"\",\"b\":\"\",\"ratio\":1.0}\n"
        );
        std::fs::write(&path, "{\"a\": \"x\", \"b\": \"y\"}\n{\"a\": \"x\"}\n").unwrap();
        let err = score_pairs(&path, true, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pairs.jsonl: line 2: missing field \"b\""),
            "{err}"
        );
        std::fs::write(&path, "{\"a\": 1, \"b\": \"y\"}\n").unwrap();
        let err = score_pairs(&path, true, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 1: field \"a\" must be a string"),
            "{err}"
        );
        std::fs::write(&path, "{\"a\": \"x\", \"b\": \n").unwrap();
        let err = score_pairs(&path, true, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1: not valid JSON"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
