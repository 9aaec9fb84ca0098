#!/usr/bin/env python3
"""Tests of scripts/check-links.py on small repositories written to a temporary folder: every kind
of broken link is reported with its file and line (exit 1), and what GitHub resolves passes."""

import importlib.util
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts",
                      "check-links.py")
spec = importlib.util.spec_from_file_location("check_links", SCRIPT)
check_links = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_links)


def write_tree(root, files):
    for name, text in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text))


def run(files, *extra):
    """Writes `files` into a fresh repository and runs the checker: (exit status, stdout)."""
    with tempfile.TemporaryDirectory() as root:
        write_tree(root, files)
        p = subprocess.run([sys.executable, SCRIPT, "--root", root, *extra],
                           capture_output=True, text=True, check=False)
        return p.returncode, p.stdout


GOOD = {
    "README.md": """\
        # Project

        See [the guide](docs/guide.md), [its options](docs/guide.md#options-of-embed),
        [the second Notes](docs/guide.md#notes-1), [here](#project), [src](src/) and
        [a line](src/x.cc#L2). Not followed: [web](https://example.com/x#y), `[code](gone.md)`.

        ```sh
        [in a fence](gone.md)
        ```
        """,
    "docs/guide.md": """\
        # Guide

        ## Options of `embed`

        ## Notes

        ## Notes

        ## `serve` — *HTTP* (OpenAI, TEI)

        <a id="rwkv-6-block"></a>
        Back to [the readme](../README.md#project), [serve](#serve--http-openai-tei) and
        [the block](#rwkv-6-block).

        Setext heading
        --------------

        [ref]: guide.md#setext-heading
        """,
    "src/x.cc": "// Equations: docs/guide.md#notes, README.md#project.\nint x;\n",
}


class SlugTest(unittest.TestCase):
    def test_github_rules(self):
        cases = {
            "RWKV-6 block": "rwkv-6-block",
            "Clusters (MPI)": "clusters-mpi",
            "`embed` — sentence embeddings from any layers": "embed--sentence-embeddings-from-any-layers",
            "EmbeddingRWKV: tokens": "embeddingrwkv-tokens",
            "Layer analysis (`analyze`, `reproduce --beyond`)":
                "layer-analysis-analyze-reproduce---beyond",
            "**Bold** and _em_ [link](x.md)": "bold-and-em-link",
            "snake_case_name": "snake_case_name",
            "Accounting (`OUT.npy.run.json`)": "accounting-outnpyrunjson",
        }
        for heading, anchor in cases.items():
            self.assertEqual(check_links.slug(heading), anchor, heading)


class CheckerTest(unittest.TestCase):
    def test_good_tree_passes(self):
        status, out = run(GOOD)
        self.assertEqual(out, "")
        self.assertEqual(status, 0)

    def test_each_broken_link_is_reported_with_its_line(self):
        # (extra file, text, what the report must say); each case alone breaks the good tree.
        cases = [
            ("docs/extra.md", "# Extra\n\nSee [gone](gone.md).\n",
             "docs/extra.md:3: 'gone.md': no such file docs/gone.md"),
            ("docs/extra.md", "# Extra\n\n[x](guide.md#options)\n",
             "docs/extra.md:3: 'guide.md#options': no anchor #options in docs/guide.md"),
            ("docs/extra.md", "# Extra\n\n[x](guide.md#notes-2)\n",  # only two Notes
             "'guide.md#notes-2': no anchor #notes-2"),
            ("docs/extra.md", "# Extra\n\n## Two\n\n[x](#three)\n",
             "docs/extra.md:5: '#three': no anchor #three in docs/extra.md"),
            ("docs/extra.md", "# Extra\n\n[data](../../shared/data)\n",
             "docs/extra.md:3: '../../shared/data' leaves the repository"),
            ("docs/extra.md", "# Extra\n\n[x](../src/x.cc#main)\n",
             "not a heading of a Markdown file or a line anchor"),
            ("docs/extra.md", "# Extra\n\n[r]: nowhere.md\n", "docs/extra.md:3: 'nowhere.md'"),
            ("docs/extra.md", "# Extra\n\n<img src=\"no.svg\">\n", "docs/extra.md:3: 'no.svg'"),
            ("src/y.h", "// See docs/guide.md#rwkv-7-block.\n",
             "src/y.h:1: 'docs/guide.md#rwkv-7-block': no anchor"),
            ("tests/z_test.cc", "// The names " + "DESIGN" + ".md §9 lists.\n",
             "tests/z_test.cc:1: cites DESIGN.md"),
            ("docs/extra.md", "# Extra\n\nAs " + "DESIGN" + ".md says.\n",
             "docs/extra.md:3: cites DESIGN.md"),
        ]
        for name, text, expected in cases:
            with self.subTest(expected=expected):
                status, out = run(dict(GOOD, **{name: text}))
                self.assertEqual(status, 1)
                self.assertIn(expected, out)
                self.assertEqual(len(out.splitlines()), 1, out)  # the one broken link, only

    def test_explicit_files_check_only_those(self):
        files = dict(GOOD, **{"docs/extra.md": "# Extra\n\n[x](gone.md)\n"})
        with tempfile.TemporaryDirectory() as root:
            write_tree(root, files)
            p = subprocess.run([sys.executable, SCRIPT, "--root", root,
                                os.path.join(root, "README.md")],
                               capture_output=True, text=True, check=False)
        self.assertEqual((p.returncode, p.stdout), (0, ""))


if __name__ == "__main__":
    unittest.main()
