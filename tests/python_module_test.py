#!/usr/bin/env python3
"""Tests of the Python module rwkv_embed (python/rwkv_embed_module.cc), run by ctest as
python_module_test with Debian's python3, PYTHONPATH at the built module and RWKV_EMBED_CLI at the
rwkv-embed binary: encode is bit-identical to `rwkv-embed embed` (.npy), tokenize equals
`rwkv-embed tokenize`, the GIL is released during the forward pass, and library errors arrive as
the module's exceptions with the library's message.

Exit code 77 (ctest: skipped) only when the module was not built; missing shared data skips the
tests that need it, naming the file.
"""

import glob
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import unittest

# Both processes (this one and the CLI it runs) use one GEMM path: autotuning measures each path
# per process, and different paths round differently. Read at the library's first product.
os.environ.setdefault("RWKV_EMBED_GEMM_PATH", "portable")
os.environ.setdefault("RWKV_EMBED_CACHE_DIR", "off")


def _module_built():
    for folder in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if folder and glob.glob(os.path.join(folder, "rwkv_embed*.so")):
            return True
    return False


if not _module_built():
    print("python_module_test skipped: no rwkv_embed*.so on PYTHONPATH=%r (build the target "
          "rwkv_embed_python)" % os.environ.get("PYTHONPATH", ""))
    sys.exit(77)

import numpy as np  # noqa: E402
import rwkv_embed  # noqa: E402  (a module that is built but fails to import is a failure)

SHARED = os.environ.get("RWKV_EMBED_SHARED") or os.environ.get("RWKV_EMBED_SHARED_DEFAULT",
                                                                 "../shared")
CLI = os.environ.get("RWKV_EMBED_CLI", "rwkv-embed")
THREADS = 2

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Amrozi accused his brother , whom he called \" the witness \" , of deliberately distorting "
    "his evidence .",
    "héllo wörld — ünïcödé 你好 🙂",
    "a",
    "   leading and trailing spaces   ",
    "Revenue in the first quarter of the year dropped 15 percent from the same period a year "
    "earlier, the company said on Tuesday, citing weaker demand in Europe and Asia.",
]


def model_dir(name):
    return os.path.join(SHARED, "models", name)


def need(test, path):
    if not os.path.exists(path):
        test.skipTest("missing shared file " + path)
    return path


def run_cli(args, stdin=None):
    proc = subprocess.run([CLI] + args, input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        raise AssertionError("rwkv-embed %s failed (%d): %s" %
                             (" ".join(args), proc.returncode, proc.stderr.decode()))
    return proc.stdout


class TempDirTest(unittest.TestCase):

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def cli_embed(self, model, texts, layers, pooling, normalize, extra=()):
        """What `rwkv-embed embed` writes to .npy: float32 [layers, N, C]."""
        inp = os.path.join(self.tmp, "in.txt")
        out = os.path.join(self.tmp, "out.npy")
        with open(inp, "w", encoding="utf-8") as f:
            f.write("\n".join(texts) + "\n")
        run_cli(["embed", "--model", model, "--input", inp, "--output", out, "--layers", layers,
                 "--pooling", pooling, "--normalize", normalize, "--threads", str(THREADS)] +
                list(extra))
        return np.load(out)


def assert_bit_identical(test, got, want, what):
    test.assertEqual(got.dtype, np.float32, what)
    test.assertEqual(want.dtype, np.float32, what)
    test.assertEqual(got.shape, want.shape, what)
    test.assertTrue(np.all(np.isfinite(got)), what)
    # Bits, not values: -0.0 vs 0.0 or a last-ulp difference would fail.
    same = np.array_equal(got.view(np.uint32), want.view(np.uint32))
    if not same:
        diff = np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))
        test.fail("%s: differs from rwkv-embed embed (max abs diff %g)" % (what, diff))


class EncodeMatchesCliTest(TempDirTest):
    # (layers, pooling, normalize): every pooling, both normalizations, single and several layers.
    CASES = [
        ("all", "mean", "none"),
        ("final", "max", "l2"),
        ("0-2", "last", "none"),
        ("blocks", "weighted-mean", "l2"),
        ("1", "first", "none"),
        ("3,0", "mean-sqrt-len", "l2"),
        ("all", "cls", "none"),
    ]

    def check_model(self, name, cases, batch_tokens=2048, **model_kwargs):
        path = need(self, model_dir(name))
        model = rwkv_embed.Model(path, threads=THREADS, batch_tokens=batch_tokens, **model_kwargs)
        extra = ["--batch-tokens", str(batch_tokens)]
        if "tokenizer" in model_kwargs:
            extra += ["--tokenizer", model_kwargs["tokenizer"]]
        if "precision" in model_kwargs:
            extra += ["--precision", model_kwargs["precision"]]
        for layers, pooling, normalize in cases:
            what = "%s layers=%s pooling=%s normalize=%s" % (name, layers, pooling, normalize)
            with self.subTest(what):
                want = self.cli_embed(path, TEXTS, layers, pooling, normalize, extra)
                got = model.encode(TEXTS, layers=layers, pooling=pooling, normalize=normalize)
                if want.shape[0] == 1:  # a spec naming one layer gives [N, C]
                    self.assertEqual(got.ndim, 2, what)
                    want = want[0]
                assert_bit_identical(self, got, want, what)
        return model

    def test_rwkv6_f32_layers_and_poolings(self):
        self.check_model("tiny-rwkv6-f32", self.CASES)

    def test_rwkv6_small_batches_carry_state(self):
        # 5 tokens a batch: most texts span several forward passes.
        self.check_model("tiny-rwkv6-f32", [("all", "mean", "none"), ("final", "last", "l2")],
                         batch_tokens=5)

    def test_rwkv6_bf16_precision(self):
        self.check_model("tiny-rwkv6-bf16", [("all", "mean", "l2")], precision="bf16")

    def test_rwkv7_f32(self):
        self.check_model("tiny-rwkv7-f32", self.CASES)

    def test_rwkv7_byte_tokenizer(self):
        self.check_model("rwkv.cpp-tiny-rwkv7", [("all", "mean", "none"), ("6", "max", "l2")],
                         tokenizer="bytes")

    def test_layer_forms(self):
        path = need(self, model_dir("tiny-rwkv6-f32"))
        model = rwkv_embed.Model(path, threads=THREADS)
        want = self.cli_embed(path, TEXTS, "3,1", "mean", "none")
        # A list always gives [n_layers, N, C], even of one layer; an int gives [N, C].
        assert_bit_identical(self, model.encode(TEXTS, layers=[3, 1]), want, "layers=[3, 1]")
        assert_bit_identical(self, model.encode(TEXTS, layers=np.array([3, 1])), want,
                             "layers=np.array([3, 1])")
        assert_bit_identical(self, model.encode(TEXTS, layers=[3]), want[:1], "layers=[3]")
        assert_bit_identical(self, model.encode(TEXTS, layers=1), want[1], "layers=1")
        assert_bit_identical(self, model.encode(TEXTS, layers=np.int64(1)), want[1],
                             "layers=np.int64(1)")
        # Defaults are embed's: final layer, mean pooling, no normalization.
        final = self.cli_embed(path, TEXTS, "final", "mean", "none")
        assert_bit_identical(self, model.encode(TEXTS), final[0], "defaults")
        # HF indices as --hf-index reads them (RWKV-6: HF i = our i + 1).
        hf = self.cli_embed(path, TEXTS, "0,2", "mean", "none", ["--hf-index"])
        assert_bit_identical(self, model.encode(TEXTS, layers=[0, 2], hf_index=True), hf,
                             "hf_index")
        assert_bit_identical(self, model.encode(TEXTS, layers=[1, 3]), hf, "hf_index as ours")

    def test_single_str_and_empty_list(self):
        path = need(self, model_dir("tiny-rwkv6-f32"))
        model = rwkv_embed.Model(path, threads=THREADS)
        one = model.encode(TEXTS[0])
        self.assertEqual(one.shape, (1, 64))
        assert_bit_identical(self, one, model.encode(TEXTS)[:1], "a str is one text")
        self.assertEqual(model.encode([]).shape, (0, 64))
        self.assertEqual(model.encode([], layers="all").shape, (4, 0, 64))
        self.assertEqual(model.encode(iter(TEXTS[:2]), layers="all").shape, (4, 2, 64))


class TokenizeTest(unittest.TestCase):

    def test_equals_cli_tokenize(self):
        path = need(self, model_dir("tiny-rwkv6-f32"))
        model = rwkv_embed.Model(path)
        texts = TEXTS + ["line one\nline two", "\t tabs \r\n", "", "\x00nul", "🙂" * 7]
        lines = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
        want = [json.loads(line)["ids"]
                for line in run_cli(["tokenize", "--model", path, "--jsonl"], lines).splitlines()]
        got = model.tokenize(texts)
        self.assertEqual(len(want), len(texts))
        self.assertEqual(got, want)
        self.assertTrue(all(isinstance(i, int) for ids in got for i in ids))
        self.assertEqual(model.tokenize("a"), [want[3]])

    def test_byte_tokenizer(self):
        path = need(self, model_dir("rwkv.cpp-tiny-rwkv7"))
        model = rwkv_embed.Model(path, tokenizer="bytes")
        self.assertEqual(model.tokenize(["\"in", "é"]), [[34, 105, 110], [0xC3, 0xA9]])


class GilTest(unittest.TestCase):

    def test_encode_releases_the_gil(self):
        """With a switch interval of 1000 s the interpreter never takes the GIL from a running
        thread, so a background thread can run while the main thread is inside a call only if
        that call releases the GIL itself. The counter is read right before and right after the
        call; the control (pure Python work) shows the counter cannot move otherwise."""
        path = need(self, model_dir("tiny-rwkv6-bf16"))
        model = rwkv_embed.Model(path, threads=1)
        texts = [TEXTS[i % len(TEXTS)] + " %d" % i for i in range(100)]
        counter = [0]
        stop = threading.Event()

        def spin():
            while not stop.is_set():
                counter[0] += 1
                stop.wait(0.0002)  # releases the GIL, so the main thread gets it back

        old_interval = sys.getswitchinterval()
        sys.setswitchinterval(1000.0)
        worker = threading.Thread(target=spin)
        worker.start()
        try:
            before = counter[0]
            sum(i * i for i in range(300000))  # holds the GIL: the worker cannot run
            control = counter[0] - before
            moved = 0
            for _ in range(10):  # the worker needs a CPU while encode runs: retry if it had none
                before = counter[0]
                model.encode(texts, layers="all")
                moved = counter[0] - before
                if moved > 0:
                    break
        finally:
            stop.set()
            worker.join()
            sys.setswitchinterval(old_interval)
        self.assertEqual(control, 0, "the control must hold the GIL throughout")
        self.assertGreater(moved, 0, "no Python thread ran during encode: the GIL was held")

    def test_threads_share_a_model(self):
        path = need(self, model_dir("tiny-rwkv6-f32"))
        model = rwkv_embed.Model(path, threads=1)
        want = model.encode(TEXTS, layers="all")
        results = [None] * 4

        def work(i):
            results[i] = model.encode(TEXTS, layers="all")

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in results:
            assert_bit_identical(self, r, want, "concurrent encode")


class InfoTest(unittest.TestCase):

    def test_rwkv6_info(self):
        path = need(self, model_dir("tiny-rwkv6-f32"))
        # Paths may be os.PathLike.
        vocab = pathlib.Path(path) / "rwkv_vocab_v20230424.txt"
        model = rwkv_embed.Model(pathlib.Path(path), precision="bf16", batch_tokens=64,
                                 threads=1, vocab=vocab)
        info = model.info
        self.assertEqual(info["path"], path)
        self.assertEqual(info["architecture"], "rwkv6")
        self.assertEqual(info["hidden_size"], 64)
        self.assertEqual(info["num_blocks"], 2)
        self.assertEqual(info["intermediate_size"], 200)
        self.assertEqual(info["dtype"], "F32")
        self.assertEqual(info["precision"], "bf16")
        self.assertEqual(info["batch_tokens"], 64)
        self.assertEqual(info["threads"], 1)
        self.assertEqual(info["tokenizer"], "world")
        self.assertIn("64", info["description"])
        self.assertEqual([l["layer"] for l in info["layers"]], [0, 1, 2, 3])
        # RWKV-6: HF hidden_states[i] is our layer i + 1; layer 0 is not in HF's tuple.
        self.assertEqual([l["hf_index"] for l in info["layers"]], [None, 0, 1, 2])
        self.assertTrue(info["layers"][0]["no_hf_reason"])
        self.assertEqual(info["layers"][1]["label"], "block 1")
        self.assertEqual(info["layers"][3]["label"], "after ln_out")
        text = repr(model)
        self.assertIn(repr(path), text)
        self.assertIn("rwkv6", text)
        self.assertIn("hidden_size=64", text)

    def test_rwkv7_info(self):
        path = need(self, model_dir("tiny-rwkv7-f32"))
        info = rwkv_embed.Model(path).info
        self.assertEqual(info["architecture"], "rwkv7")
        self.assertIsNone(info["threads"])
        # RWKV-7: our layers 0 and L are not in HF's tuple; HF [L] is our L + 1.
        self.assertEqual([l["hf_index"] for l in info["layers"]], [None, 1, None, 2])


class ErrorTest(TempDirTest):

    def setUp(self):
        super().setUp()
        self.path = need(self, model_dir("tiny-rwkv6-f32"))

    def model(self):
        return rwkv_embed.Model(self.path, threads=1)

    def test_hierarchy(self):
        e = rwkv_embed
        for cls in (e.IoError, e.FormatError, e.ShapeError, e.DataError, e.NumericError,
                    e.UsageError):
            self.assertTrue(issubclass(cls, e.Error), cls)
        self.assertTrue(issubclass(e.Error, Exception))
        self.assertTrue(issubclass(e.IoError, OSError))
        self.assertTrue(issubclass(e.UsageError, ValueError))
        self.assertTrue(issubclass(e.FormatError, ValueError))
        self.assertTrue(issubclass(e.NumericError, ArithmeticError))

    def test_missing_folder(self):
        missing = os.path.join(self.tmp, "no-such-model")
        with self.assertRaises(rwkv_embed.IoError) as c:
            rwkv_embed.Model(missing)
        self.assertIn(missing, str(c.exception))
        self.assertIsInstance(c.exception, OSError)

    def test_missing_vocab(self):
        missing = os.path.join(self.tmp, "vocab.txt")
        with self.assertRaises(rwkv_embed.IoError) as c:
            rwkv_embed.Model(self.path, vocab=missing)
        self.assertIn(missing, str(c.exception))

    def test_malformed_checkpoint(self):
        folder = os.path.join(self.tmp, "bad")
        os.mkdir(folder)
        with open(os.path.join(folder, "model.safetensors"), "wb") as f:
            f.write(b"\xff" * 8 + b"{not json")
        with self.assertRaises(rwkv_embed.FormatError) as c:
            rwkv_embed.Model(folder, tokenizer="bytes")
        self.assertIn("model.safetensors", str(c.exception))

    def test_invalid_layer(self):
        model = self.model()
        for layers in ("9", [1, 9], 9):
            with self.subTest(layers=layers):
                with self.assertRaises(rwkv_embed.UsageError) as c:
                    model.encode(TEXTS, layers=layers)
                self.assertIn("9", str(c.exception))
                self.assertIsInstance(c.exception, ValueError)
        with self.assertRaises(rwkv_embed.UsageError) as c:
            model.encode(TEXTS, layers="1,x")
        self.assertIn("x", str(c.exception))
        with self.assertRaises(TypeError) as c:
            model.encode(TEXTS, layers=1.5)
        self.assertIn("float", str(c.exception))

    def test_bad_pooling_and_normalize(self):
        model = self.model()
        with self.assertRaises(rwkv_embed.UsageError) as c:
            model.encode(TEXTS, pooling="average")
        self.assertIn("'average'", str(c.exception))
        self.assertIn("mean", str(c.exception))  # lists the valid names
        with self.assertRaises(rwkv_embed.UsageError) as c:
            model.encode(TEXTS, normalize="l3")
        self.assertIn("'l3'", str(c.exception))

    def test_bad_model_options(self):
        for kwargs, named in (({"precision": "fp16"}, "fp16"), ({"tokenizer": "bpe"}, "bpe"),
                              ({"threads": 0}, "threads"), ({"batch_tokens": 0}, "batch_tokens"),
                              ({"tokenizer": "bytes", "vocab": "v.txt"}, "vocab")):
            with self.subTest(**kwargs):
                with self.assertRaises(rwkv_embed.UsageError) as c:
                    rwkv_embed.Model(self.path, **kwargs)
                self.assertIn(named, str(c.exception))

    def test_non_str_input(self):
        model = self.model()
        with self.assertRaises(TypeError) as c:
            model.encode(["fine", 3])
        self.assertIn("texts[1]", str(c.exception))
        self.assertIn("int", str(c.exception))
        for bad in (b"bytes", 5, None):
            with self.subTest(texts=bad):
                with self.assertRaises(TypeError):
                    model.encode(bad)
        with self.assertRaises(TypeError) as c:
            model.tokenize([None])
        self.assertIn("texts[0]", str(c.exception))

    def test_empty_and_unencodable_text(self):
        model = self.model()
        with self.assertRaises(rwkv_embed.DataError) as c:
            model.encode(["fine", ""])
        self.assertIn("texts[1]", str(c.exception))
        with self.assertRaises(rwkv_embed.FormatError) as c:
            model.encode(["fine", "bad \ud800 surrogate"])
        self.assertIn("texts[1]", str(c.exception))

    def test_model_still_works_after_errors(self):
        model = self.model()
        want = model.encode(TEXTS)
        with self.assertRaises(rwkv_embed.UsageError):
            model.encode(TEXTS, layers="99")
        assert_bit_identical(self, model.encode(TEXTS), want, "after an error")


if __name__ == "__main__":
    unittest.main()
