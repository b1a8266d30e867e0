#!/usr/bin/env python3
"""Doxygen's INPUT_FILTER for reservoir's headers (see docs/Doxyfile.in).

The headers document themselves in plain // comments. Doxygen reads only its
own comment forms, so this filter, run on each header as doxygen reads it,
turns the comments that document something into doxygen's, and leaves the
headers as they are:

  * the comment at the top of a file          -> /// after a @file line
  * a comment block right before a declaration -> ///  (at namespace or class
    scope only: comments inside function bodies stay plain)
  * a comment after a member or enumerator    -> ///< (and its continuation
    lines, aligned under it)

Text in a converted comment is escaped so that doxygen shows it as written
(\\, @, <, >, &, #, $, % outside `code spans`): the comments are prose, not
doxygen markup. The output has exactly as many lines as the input, so
doxygen's line numbers are the header's.

    tools/apidocs/filter.py HEADER   # writes the filtered header to stdout
"""

import re
import sys

DECL_HEAD = re.compile(r"\b(namespace|class|struct|union|enum)\b")
ACCESS = re.compile(r"^(public|private|protected)\s*:")
SPECIAL = re.compile(r"([\\@<>&#$%])")


def escape_prose(text: str) -> str:
    text = SPECIAL.sub(r"\\\1", text)
    # `>::name`, or a `::name` that starts a word, is an explicit link request
    # to doxygen; in prose it is only text.
    text = re.sub(r"(?<![\w:])::", r"\\::", text)
    # The first sentence is the summary (JAVADOC_AUTOBRIEF): "e.g. " ends none.
    return re.sub(r"\b(e\.g|i\.e|etc|vs)\. ", r"\1.\\ ", text)


def escape(text: str) -> str:
    """Escapes doxygen's special characters outside `code spans`."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unmatched backtick: no code span on this line
        return escape_prose(text)
    return "`".join(escape_prose(p) if i % 2 == 0 else p for i, p in enumerate(parts))


def code_and_comment(line: str):
    """Splits a line into its code and its // comment (None when it has none),
    skipping string and character literals and /* */ comments on that line."""
    i, n = 0, len(line)
    quote = None
    while i < n:
        c = line[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'":
            # A digit separator (1'000) is not a character literal.
            if c == "'" and i > 0 and line[i - 1].isalnum() and i + 1 < n and line[i + 1].isalnum():
                pass
            else:
                quote = c
        elif line.startswith("//", i):
            return line[:i], line[i:]
        elif line.startswith("/*", i):
            end = line.find("*/", i + 2)
            if end < 0:
                return line, None
            i = end + 2
            continue
        i += 1
    return line, None


class Scopes:
    """Tracks braces: is the current point at namespace or class scope?"""

    def __init__(self):
        self.stack = []      # True: a namespace, class, struct, union or enum body
        self.statement = ""  # the code since the last ; { or }

    def at_declaration_scope(self) -> bool:
        return all(self.stack)

    def feed(self, code: str) -> None:
        if code.lstrip().startswith("#"):
            return
        for c in code:
            if c == "{":
                # A namespace or type body when its head's last such keyword
                # is followed by a name and bases only (no `(`: a function of
                # a template with a `class` parameter; no `=`: an initializer).
                heads = list(DECL_HEAD.finditer(self.statement))
                rest = self.statement[heads[-1].end():] if heads else "("
                self.stack.append("(" not in rest and "=" not in rest)
                self.statement = ""
            elif c == "}":
                if self.stack:
                    self.stack.pop()
                self.statement = ""
            elif c == ";":
                self.statement = ""
            else:
                self.statement += c
        self.statement += " "


def has_trailing_comment(line: str) -> bool:
    """A one-line comment above a member that has its own trailing comment is
    a heading for a group of members (`// Sizing`), not that member's doc."""
    code, comment = code_and_comment(line)
    return comment is not None and bool(code.strip())


def convert(comment: str, marker: str) -> str:
    body = comment[2:]
    return marker + escape(body)


def indented(comment: str) -> bool:
    """An example or a preformatted list: indented past the prose (`//   code`)."""
    return comment.startswith("//   ")


def convert_block(lines, start, end, out, first_marker="///"):
    """Converts the comment lines [start, end) into out; indented runs become
    @verbatim (examples and aligned lists keep their layout, unescaped)."""
    k = start
    while k < end:
        c = lines[k].index("//")
        comment = lines[k][c:]
        if not indented(comment):
            out[k] = lines[k][:c] + convert(comment, first_marker)
            k += 1
            continue
        last = k  # the run's last indented line (blank // lines may sit inside it)
        m = k + 1
        while m < end:
            text = lines[m].strip()
            if indented(text):
                last = m
            elif text != "//":
                break
            m += 1
        # The markers go on the blank comment lines around the run when there
        # are some: doxygen does not always close a verbatim ended mid-line.
        open_alone = k > start and lines[k - 1].strip() == "//"
        close_alone = last + 1 < end and lines[last + 1].strip() == "//"
        if open_alone:
            out[k - 1] = lines[k - 1][:lines[k - 1].index("//")] + first_marker + " @verbatim"
        if close_alone:
            out[last + 1] = lines[last + 1][:lines[last + 1].index("//")] + first_marker + " @endverbatim"
        for r in range(k, last + 1):
            cr = lines[r].index("//")
            body = lines[r][cr + 2:]
            if r == k and not open_alone:
                body = " @verbatim" + body
            if r == last and not close_alone:
                body += " @endverbatim"
            out[r] = lines[r][:cr] + first_marker + body
        k = last + 2 if close_alone else last + 1


def filter_lines(lines):
    out = list(lines)
    scopes = Scopes()
    n = len(lines)
    file_comment_done = False
    trailing_column = None  # the column of the last line's trailing ///< comment
    i = 0
    while i < n:
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("//") and not stripped.startswith("///"):
            # A block of comment lines.
            j = i
            while j < n and lines[j].strip().startswith("//") and not lines[j].strip().startswith("///"):
                j += 1
            column = line.index("//")
            if trailing_column is not None and column == trailing_column and scopes.at_declaration_scope():
                # The continuation of a member's trailing comment.
                while i < j and lines[i].index("//") == trailing_column:
                    out[i] = lines[i][:trailing_column] + convert(lines[i][trailing_column:], "///<")
                    i += 1
                trailing_column = None
                continue
            trailing_column = None
            following = lines[j].strip() if j < n else ""
            if not file_comment_done and not scopes.stack and i <= 2 and i > 0 and \
                    lines[i - 1].strip() == "#pragma once":
                # The file's own description: replace `#pragma once` (nothing to
                # doxygen) by @file, keeping the line count.
                out[i - 1] = "/// @file"
                convert_block(lines, i, j, out)
                file_comment_done = True
            elif scopes.at_declaration_scope() and following and not following.startswith(("#", "}", "//")) \
                    and not ACCESS.match(following) and not (j - i == 1 and has_trailing_comment(lines[j])):
                convert_block(lines, i, j, out)
            i = j
            continue
        file_comment_done = file_comment_done or (stripped != "" and stripped != "#pragma once")
        code, comment = code_and_comment(line)
        trailing_column = None
        if comment is not None and not comment.startswith("///") and code.strip() and \
                scopes.at_declaration_scope() and not code.lstrip().startswith("#") and \
                code.rstrip().endswith((";", ",")):
            out[i] = code + convert(comment, "///<")
            trailing_column = len(code)
        scopes.feed(code)
        i += 1
    return out


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} HEADER", file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        lines = f.read().split("\n")
    sys.stdout.write("\n".join(filter_lines(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
