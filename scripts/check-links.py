#!/usr/bin/env python3
"""Fails on any relative link in README.md or docs/ that does not resolve.

Usage: scripts/check-links.py [--root DIR] [FILE.md ...]

Checks, in the Markdown files (default: README.md and every docs/**/*.md under --root):
  - every relative link target (inline links and images, reference definitions, HTML href/src)
    names a file or folder that exists inside the repository;
  - every #anchor names a heading (GitHub's anchor rules, below) or an explicit
    <a id="..."> / <a name="..."> of the target Markdown file; a link to a source file may only
    carry a GitHub line anchor (#L10, #L10-L20).
and, in the repository's source files (src/, apps/, python/, tests/, bench/, fuzz/, scripts/,
CMake files, .ci/), every citation of a page, `docs/NAME.md#anchor` or `README.md#anchor`, the
same way; no source file may cite DESIGN.md (a document outside the repository: the project's
own is docs/design.md).

Links with a scheme (https:, mailto:) are not followed. Fenced code blocks and inline code spans
are skipped. Exit status: 0 when everything resolves, 1 otherwise (one line per broken link:
FILE:LINE: what), 2 for bad usage.

GitHub's anchor of a heading: its text as rendered (links reduced to their text, inline code to
its content, emphasis markers and HTML tags dropped), lower-cased, every character that is not a
letter, digit, underscore, hyphen or space removed, each space replaced by a hyphen; a repeated
anchor gets -1, -2, ... in document order.
"""

import argparse
import os
import re
import sys
import urllib.parse

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_ATTR = re.compile(r"<[a-zA-Z][^>]*?\b(?:href|src)\s*=\s*\"([^\"]*)\"")
HTML_ID = re.compile(r"<[a-zA-Z][^>]*?\b(?:id|name)\s*=\s*\"([^\"]+)\"")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
LINE_ANCHOR = re.compile(r"^L\d+(?:-L\d+)?$")
# A page cited from source: docs/NAME.md or README.md, optionally with #anchor.
CITATION = re.compile(r"(?<![\w./-])((?:docs/[\w./-]+?\.md|README\.md)(?:#[\w-]+)?)")
OUTSIDE_DOC = re.compile(r"(?<![\w/])DESIGN\.md")
SOURCE_DIRS = ("src", "apps", "python", "tests", "bench", "fuzz", "scripts", "cmake", ".ci")
SOURCE_EXTS = (".cc", ".h", ".py", ".sh", ".cmake", ".txt", ".lua", ".json")
# The checker and its test name broken links and DESIGN.md on purpose.
SELF = ("scripts/check-links.py", "tests/check_links_test.py")


def without_code_spans(text):
    return CODE_SPAN.sub(lambda m: " " * len(m.group(0)), text)


def heading_text(raw):
    """The rendered text of a heading's Markdown source (what GitHub slugs)."""
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), raw)
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", text)  # links -> text
    text = re.sub(r"<[^>]+>", "", text)  # HTML tags
    text = re.sub(r"(\*{1,3})(\S(?:.*?\S)?)\1", r"\2", text)  # emphasis (not snake_case)
    text = re.sub(r"(?<!\w)(_{1,3})(\S(?:.*?\S)?)\1(?!\w)", r"\2", text)
    return text.strip()


def slug(text):
    text = heading_text(text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


class Page:
    """One Markdown file: its anchors and its links (line number, target), code skipped."""

    def __init__(self, path):
        self.path = path
        self.anchors = set()
        self.links = []
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        counts = {}
        fence = None
        previous = ""  # the previous line of ordinary text (for setext headings)
        for number, line in enumerate(lines, 1):
            m = FENCE.match(line)
            if fence is not None:
                if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                    fence = None
                continue
            if m:
                fence = m.group(1)
                previous = ""
                continue
            heading = None
            atx = ATX.match(line)
            if atx:
                heading = atx.group(2) or ""
            elif SETEXT.match(line) and previous.strip() and not previous.lstrip().startswith("|"):
                heading = previous.strip()
            if heading is not None:
                base = slug(heading)
                n = counts.get(base, 0)
                counts[base] = n + 1
                self.anchors.add(base if n == 0 else f"{base}-{n}")
            for anchor in HTML_ID.findall(line):
                self.anchors.add(anchor)
            text = without_code_spans(line)
            for target in INLINE_LINK.findall(text):
                self.links.append((number, target))
            ref = REF_DEF.match(text)
            if ref:
                self.links.append((number, ref.group(1)))
            for target in HTML_ATTR.findall(text):
                self.links.append((number, target))
            previous = "" if atx else line


class Checker:
    def __init__(self, root):
        self.root = os.path.realpath(root)
        self.pages = {}
        self.errors = []

    def page(self, path):
        path = os.path.realpath(path)
        if path not in self.pages:
            self.pages[path] = Page(path)
        return self.pages[path]

    def rel(self, path):
        return os.path.relpath(path, self.root)

    def resolve(self, where, number, base_dir, target):
        """Checks one link target found at where:number, relative to base_dir."""
        if not target or SCHEME.match(target) or target.startswith("//"):
            return
        path_part, _, anchor = target.partition("#")
        path_part = urllib.parse.unquote(path_part)
        if path_part.startswith("/"):  # GitHub: relative to the repository root
            dest = os.path.join(self.root, path_part.lstrip("/"))
        elif path_part:
            dest = os.path.join(base_dir, path_part)
        else:
            dest = where
        dest = os.path.realpath(dest)
        if dest != self.root and not dest.startswith(self.root + os.sep):
            self.errors.append(f"{self.rel(where)}:{number}: '{target}' leaves the repository")
            return
        if not os.path.exists(dest):
            self.errors.append(f"{self.rel(where)}:{number}: '{target}': no such file "
                               f"{self.rel(dest)}")
            return
        if not anchor:
            return
        if dest.endswith(".md") and os.path.isfile(dest):
            if urllib.parse.unquote(anchor) not in self.page(dest).anchors:
                self.errors.append(f"{self.rel(where)}:{number}: '{target}': no anchor "
                                   f"#{anchor} in {self.rel(dest)}")
        elif not (os.path.isfile(dest) and LINE_ANCHOR.match(anchor)):
            self.errors.append(f"{self.rel(where)}:{number}: '{target}': #{anchor} is not a "
                               f"heading of a Markdown file or a line anchor (#L10)")

    def check_markdown(self, path):
        page = self.page(path)
        for number, target in page.links:
            self.resolve(page.path, number, os.path.dirname(page.path), target)
        self.check_outside_citations(path)

    def check_outside_citations(self, path):
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f.read().split("\n"), 1):
                if OUTSIDE_DOC.search(line):
                    self.errors.append(f"{self.rel(path)}:{number}: cites DESIGN.md, a document "
                                       f"outside the repository (the design doc is "
                                       f"docs/design.md)")

    def check_source(self, path):
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except UnicodeDecodeError:
            return  # not text
        for number, line in enumerate(lines, 1):
            for target in CITATION.findall(line):
                self.resolve(os.path.realpath(path), number, self.root, target)
        self.check_outside_citations(path)


def default_markdown(root):
    files = [os.path.join(root, "README.md")] if os.path.exists(os.path.join(root, "README.md")) else []
    for folder, _, names in os.walk(os.path.join(root, "docs")):
        files += [os.path.join(folder, n) for n in sorted(names) if n.endswith(".md")]
    return files


def source_files(root):
    found = [os.path.join(root, n) for n in sorted(os.listdir(root))
             if n == "CMakeLists.txt" or n.endswith(".cmake")]
    for top in SOURCE_DIRS:
        for folder, dirs, names in os.walk(os.path.join(root, top)):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for n in sorted(names):
                path = os.path.join(folder, n)
                if n.endswith(SOURCE_EXTS) and os.path.relpath(path, root) not in SELF:
                    found.append(path)
    return found


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."),
                        help="repository root (default: this script's parent folder)")
    parser.add_argument("files", nargs="*", help="Markdown files (default: README.md, docs/)")
    args = parser.parse_args(argv)
    checker = Checker(args.root)
    markdown = [os.path.abspath(f) for f in args.files] or default_markdown(checker.root)
    for path in markdown:
        checker.check_markdown(path)
    sources = [] if args.files else source_files(checker.root)
    for path in sources:
        checker.check_source(path)
    for error in checker.errors:
        print(error)
    links = sum(len(checker.page(p).links) for p in markdown)
    print(f"check-links: {len(markdown)} Markdown files ({links} links), {len(sources)} source "
          f"files: {len(checker.errors)} broken", file=sys.stderr)
    return 1 if checker.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
