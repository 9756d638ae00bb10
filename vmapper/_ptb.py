"""Reader and writer for PTB-bracketed trees, as in the Stanford Sentiment Treebank.

One tree per line, every node labelled with an integer::

    (3 (2 It) (4 (3 is) (4 great)))

Grammar (tokens are ``(``, ``)`` and words; words are maximal runs of
characters that are neither brackets nor ASCII whitespace)::

    tree := "(" LABEL WORD ")"          a preterminal: one leaf node
          | "(" LABEL tree+ ")"         an internal node

The parser is a hand-written loop over tokens rather than a recursive descent,
so that deep trees cannot hit Python's recursion limit and all of SST's train
split (8544 trees, 318k nodes) parses in well under a second.

Nodes are numbered in post-order as they close, so every child gets a smaller
id than its parent and each tree occupies one contiguous id range that ends at
its root: the invariants :class:`vmapper.forest.Forest` relies on.
"""
from __future__ import annotations

import re

import numpy as np

from .errors import ForestError

# Only ASCII whitespace separates tokens: SST has words with a no-break space
# (U+00A0) inside, which ``str.split()`` and regex ``\s`` would cut in two.
_ASCII_WS = " \t\n\r\f\v"
_TOKEN_RE = re.compile(r"[()]|[^() \t\n\r\f\v]+")

_INT64 = np.iinfo(np.int64)


def _is_integer(tok: str) -> bool:
    """An ASCII integer such as ``3`` or ``-1`` (``str.isdigit`` alone accepts '²')."""
    digits = tok[1:] if tok[0] == "-" else tok
    return digits.isascii() and digits.isdigit()


def _parse_tokens(toks, labels, words, texts, child_idx, child_ptr, vocab, build, unk, lowercase):
    """Append the nodes of one tree to the output lists.

    Returns None on success, or ``(token_index, message)`` for a malformed
    tree; ``token_index == len(toks)`` means "at the end of the line".
    """
    n = len(toks)
    if toks[0] != "(":
        return 0, f"expected '(' to start a tree, found {toks[0]!r}"
    # Parallel stacks for the open brackets: label, child ids, preterminal word.
    st_label, st_kids, st_word = [], [], []
    i = 0
    while i < n:
        tok = toks[i]
        if tok == "(":
            if st_word and st_word[-1] is not None:
                return i, "a subtree cannot follow the word of a preterminal"
            if i + 1 == n:
                return n, "expected a label after '(' but the line ended"
            lab = toks[i + 1]
            if lab == "(" or lab == ")" or not _is_integer(lab):
                return i + 1, f"expected an integer label after '(', found {lab!r}"
            if len(lab) > 20 or not _INT64.min <= int(lab) <= _INT64.max:  # (int() of 5000 digits raises)
                return i + 1, f"label {lab} does not fit in int64"
            st_label.append(int(lab))
            st_kids.append([])
            st_word.append(None)
            i += 2
        elif tok == ")":
            kids = st_kids.pop()
            word = st_word.pop()
            if word is None:
                if not kids:
                    return i, "empty tree: a label with neither a word nor subtrees"
                words.append(-1)
                texts.append(None)
                child_idx.extend(kids)
            else:
                key = word.lower() if lowercase else word
                if build:
                    wid = vocab.setdefault(key, len(vocab))
                else:
                    wid = vocab.get(key, unk)
                words.append(wid)
                texts.append(word)
            v = len(labels)
            labels.append(st_label.pop())
            child_ptr.append(len(child_idx))
            if st_kids:
                st_kids[-1].append(v)
            elif i + 1 < n:
                if toks[i + 1] == ")":
                    return i + 1, "unbalanced brackets: ')' without a matching '('"
                return i + 1, f"trailing text after the end of the tree: {toks[i + 1]!r}"
            i += 1
        else:
            if st_kids[-1]:
                return i, f"a word cannot follow a subtree: {tok!r}"
            if st_word[-1] is not None:
                return i, f"a preterminal holds exactly one word, found a second one: {tok!r}"
            st_word[-1] = tok
            i += 1
    if st_label:
        return n, f"unbalanced brackets: {len(st_label)} '(' not closed at the end of the line"
    return None


def _error(tree: int, lineno: int, line: str, tok_index: int, message: str) -> ForestError:
    """A ForestError locating token ``tok_index`` of ``line`` (1-based column)."""
    line = line.rstrip("\r\n")
    starts = [m.start() for m in _TOKEN_RE.finditer(line)]
    pos = starts[tok_index] if tok_index < len(starts) else len(line.rstrip(_ASCII_WS))
    lo = max(0, pos - 40)
    hi = min(len(line), pos + 40)
    excerpt = ("..." if lo else "") + line[lo:hi] + ("..." if hi < len(line) else "")
    caret = " " * (pos - lo + (3 if lo else 0)) + "^"
    err = ForestError(f"tree {tree} (line {lineno}, column {pos + 1}): {message}\n"
                      f"    {excerpt}\n    {caret}")
    err.tree, err.line, err.column = tree, lineno, pos + 1
    return err


def parse_ptb(lines, vocab=None, lowercase=False):
    """Parse PTB trees; returns the arrays that make up a Forest.

    ``lines`` is a string (split on ``\\n``) or an iterable of strings, one
    tree each (a file object works). Returns ``(child_ptr, child_idx,
    tree_ptr, attrs, vocab, texts)``; ``texts`` holds each leaf's original
    word (None for internal nodes), for :func:`format_ptb`.
    """
    if isinstance(lines, str):
        lines = lines.split("\n")
    build = vocab is None
    if build:
        vocab = {}
        unk = 0
    else:
        unk = vocab.get("<unk>", 0)
    labels, words, texts, child_idx = [], [], [], []
    child_ptr, tree_ptr = [0], [0]
    findall = _TOKEN_RE.findall
    tree = 0
    for lineno, line in enumerate(lines, 1):
        if not isinstance(line, str):
            raise TypeError(f"from_ptb expects strings, line {lineno} is {type(line).__name__}")
        toks = findall(line)
        if not toks:
            continue
        failure = _parse_tokens(toks, labels, words, texts, child_idx, child_ptr,
                                vocab, build, unk, lowercase)
        if failure is not None:
            raise _error(tree, lineno, line, *failure)
        tree_ptr.append(len(labels))
        tree += 1

    n = len(labels)
    text_arr = np.empty(n, dtype=object)
    text_arr[:] = texts
    attrs = {"label": np.array(labels, dtype=np.int64),
             "word": np.array(words, dtype=np.int64)}
    return (np.array(child_ptr, dtype=np.int64), np.array(child_idx, dtype=np.int64),
            np.array(tree_ptr, dtype=np.int64), attrs, vocab, text_arr)


def format_ptb(child_ptr, child_idx, tree_ptr, labels, texts, trees):
    """Bracket strings of the given trees: single spaces, labels as integers.

    Builds each node's string from its children's; node ids are post-order,
    so one pass over a tree's id range sees children before parents.
    """
    out = []
    for t in trees:
        a, b = int(tree_ptr[t]), int(tree_ptr[t + 1])
        ptr = child_ptr[a:b + 1].tolist()
        kids = child_idx[ptr[0]:ptr[-1]].tolist()
        labs = labels[a:b].tolist()
        base = ptr[0]
        s = [None] * (b - a)
        for j in range(b - a):
            lo, hi = ptr[j] - base, ptr[j + 1] - base
            if lo == hi:
                if texts[a + j] is None:
                    raise ForestError(f"tree {t}: leaf node {a + j} has no word to print")
                s[j] = f"({labs[j]} {texts[a + j]})"
            else:
                s[j] = f"({labs[j]} " + " ".join([s[c - a] for c in kids[lo:hi]]) + ")"
        out.append(s[-1])
    return out
