// The Python module `rwkv_embed`: a thin front end over RwkvEmbedder. Options are parsed by the
// library's own parsers (layers, pooling, normalization, precision, tokenizer), results are what
// `rwkv-embed embed` writes (same float32 bits), and the library's exceptions become the module's
// exception classes, which mirror core/error.h and carry the library's message.
#include <omp.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "model/layer_spec.h"
#include "model/rwkv_embedder.h"
#include "pooling/pooling.h"

namespace py = pybind11;

namespace rwkv_embed {
namespace {

// The module's exception classes (strong references held for the life of the process: the
// translator may run until interpreter shutdown).
struct ExceptionClasses {
  PyObject* error = nullptr;
  PyObject* io = nullptr;
  PyObject* format = nullptr;
  PyObject* shape = nullptr;
  PyObject* data = nullptr;
  PyObject* numeric = nullptr;
  PyObject* usage = nullptr;
};
ExceptionClasses g_exceptions;

PyObject* AddException(py::module_& m, const char* name, const char* doc, py::tuple bases) {
  const std::string qualified = std::string("rwkv_embed.") + name;
  PyObject* cls = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases.ptr(), nullptr);
  if (cls == nullptr) throw py::error_already_set();
  m.add_object(name, py::handle(cls));
  return cls;
}

void RegisterExceptions(py::module_& m) {
  auto& x = g_exceptions;
  const py::handle exception(PyExc_Exception);
  x.error = AddException(m, "Error", "Base class of every error the rwkv_embed library reports.",
                         py::make_tuple(exception));
  const py::handle error(x.error);
  x.io = AddException(m, "IoError", "A file could not be opened, read, mapped or written.",
                      py::make_tuple(error, py::handle(PyExc_OSError)));
  x.format = AddException(m, "FormatError",
                          "A file's content is malformed (checkpoint header, config.json, "
                          "vocabulary line, UTF-8).",
                          py::make_tuple(error, py::handle(PyExc_ValueError)));
  x.shape = AddException(m, "ShapeError",
                         "A tensor is missing, of the wrong dtype, or of the wrong shape.",
                         py::make_tuple(error, py::handle(PyExc_ValueError)));
  x.data = AddException(m, "DataError", "An input is well-formed but unusable (an empty text).",
                        py::make_tuple(error, py::handle(PyExc_ValueError)));
  x.numeric = AddException(m, "NumericError", "NaN or Inf where finite numbers are required.",
                           py::make_tuple(error, py::handle(PyExc_ArithmeticError)));
  x.usage = AddException(m, "UsageError",
                         "An invalid option or argument (layer spec, pooling name, precision).",
                         py::make_tuple(error, py::handle(PyExc_ValueError)));
  // pybind11's translator type takes the pointer by value.
  // NOLINTNEXTLINE(performance-unnecessary-value-param)
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const IoError& e) {
      PyErr_SetString(g_exceptions.io, e.what());
    } catch (const FormatError& e) {
      PyErr_SetString(g_exceptions.format, e.what());
    } catch (const ShapeError& e) {
      PyErr_SetString(g_exceptions.shape, e.what());
    } catch (const DataError& e) {
      PyErr_SetString(g_exceptions.data, e.what());
    } catch (const NumericError& e) {
      PyErr_SetString(g_exceptions.numeric, e.what());
    } catch (const UsageError& e) {
      PyErr_SetString(g_exceptions.usage, e.what());
    } catch (const Error& e) {
      PyErr_SetString(g_exceptions.error, e.what());
    }
  });
}

// texts: one str, or an iterable of str (TypeError naming the first item that is not a str).
std::vector<std::string> TextsFrom(const py::handle& texts) {
  if (py::isinstance<py::str>(texts)) return {texts.cast<std::string>()};
  if (py::isinstance<py::bytes>(texts) || !py::isinstance<py::iterable>(texts)) {
    throw py::type_error("texts must be a str or an iterable of str, not " +
                         std::string(py::str(texts.get_type().attr("__name__"))));
  }
  std::vector<std::string> out;
  for (const py::handle item : texts) {
    const std::string where = "texts[" + std::to_string(out.size()) + "]";
    if (!py::isinstance<py::str>(item)) {
      throw py::type_error(where + " is " + std::string(py::str(item.get_type().attr("__name__"))) +
                           ", expected str");
    }
    Py_ssize_t size = 0;
    const char* utf8 = PyUnicode_AsUTF8AndSize(item.ptr(), &size);
    if (utf8 == nullptr) {  // a lone surrogate has no UTF-8 form
      PyErr_Clear();
      throw FormatError(where + " cannot be encoded as UTF-8 (a lone surrogate)");
    }
    out.emplace_back(utf8, static_cast<size_t>(size));
  }
  return out;
}

// An int-like layer number (int, numpy integer; not bool) as text, or nullopt.
std::optional<std::string> LayerNumberText(const py::handle& item) {
  if (py::isinstance<py::bool_>(item) || PyIndex_Check(item.ptr()) == 0) return std::nullopt;
  return std::string(py::str(py::int_(py::reinterpret_borrow<py::object>(item))));
}

// layers: an int, a spec str ("final", "all", "1,3", "0-4") or a sequence of ints, as the
// library's layer-spec text (ParseLayerSpec is the one parser).
std::string LayerSpecFrom(const py::handle& layers) {
  if (py::isinstance<py::str>(layers)) return layers.cast<std::string>();
  if (py::isinstance<py::sequence>(layers)) {  // before ints: a numpy array has __index__
    std::string spec;
    for (const py::handle item : layers) {
      auto number = LayerNumberText(item);
      if (!number) {
        throw py::type_error("layers: list items must be int, got " +
                             std::string(py::str(item.get_type().attr("__name__"))));
      }
      spec += (spec.empty() ? "" : ",") + *number;
    }
    return spec;
  }
  if (auto number = LayerNumberText(layers)) return *number;
  throw py::type_error("layers must be an int, a str or a list of int, not " +
                       std::string(py::str(layers.get_type().attr("__name__"))));
}

class Model {
 public:
  Model(const std::filesystem::path& path, std::optional<int> threads, const std::string& precision,
        int64_t batch_tokens, const std::optional<std::filesystem::path>& vocab,
        const std::string& tokenizer, bool check_weights)
      : path_(path.string()), threads_(threads.value_or(0)) {
    if (threads && *threads < 1) {
      throw UsageError("threads must be >= 1 (None: all cores), got " + std::to_string(*threads));
    }
    RwkvEmbedderOptions options;
    options.batch_tokens = batch_tokens;
    options.precision = kernels::ParseMatMulPrecision(precision);
    tokenizer_ = ParseTokenizerKind(tokenizer);
    if (tokenizer_ == TokenizerKind::kBytes && vocab) {
      throw UsageError("vocab is for the World tokenizer; tokenizer='bytes' needs none");
    }
    LoadOptions load;
    load.check_finite = check_weights;
    py::gil_scoped_release release;
    ApplyThreads();
    embedder_ = RwkvEmbedder::Load(path, vocab.value_or(""), options, load, tokenizer_);
  }

  py::array Encode(const py::object& texts, const py::object& layers, const std::string& pooling,
                   const std::string& normalize, bool hf_index) {
    const std::vector<std::string> sentences = TextsFrom(texts);
    EmbedRequest request;
    request.layers = ParseLayerSpec(LayerSpecFrom(layers), embedder_->layer_numbering(), hf_index);
    request.pooling = ParsePooling(pooling);
    request.normalization = ParseNormalization(normalize);
    for (size_t i = 0; i < sentences.size(); ++i) {
      if (sentences[i].empty()) ThrowEmpty(i);
    }
    EmbedResult result;
    {
      py::gil_scoped_release release;
      const std::lock_guard lock(mutex_);  // after releasing the GIL: no lock-order inversion
      ApplyThreads();
      try {
        result = embedder_->Embed(sentences, request);
      } catch (const NonFiniteEmbeddingError& e) {
        throw e.Renamed(e.sentence(), "texts[" + std::to_string(e.sentence()) + "]");
      }
    }
    for (size_t i = 0; i < result.empty.size(); ++i) {
      if (result.empty[i]) ThrowEmpty(i);
    }
    // One layer asked as an int or a spec naming one layer: [N, C]; otherwise [layers, N, C].
    const bool squeeze = py::isinstance<py::str>(layers) || !py::isinstance<py::sequence>(layers);
    const auto n_layers = static_cast<py::ssize_t>(request.layers.size());
    const auto n = static_cast<py::ssize_t>(sentences.size());
    const auto dim = static_cast<py::ssize_t>(embedder_->Dim());
    py::array_t<float> out = squeeze && n_layers == 1 ? py::array_t<float>({n, dim})
                                                      : py::array_t<float>({n_layers, n, dim});
    float* dst = out.mutable_data();
    for (size_t l = 0; l < result.embeddings.size(); ++l) {  // none for an empty list
      const auto flat = result.embeddings[l].Flat();
      if (!flat.empty())
        std::memcpy(dst + static_cast<py::ssize_t>(l) * n * dim, flat.data(), flat.size_bytes());
    }
    return out;
  }

  std::vector<std::vector<int32_t>> Tokenize(const py::object& texts) const {
    const std::vector<std::string> sentences = TextsFrom(texts);
    py::gil_scoped_release release;
    return embedder_->Tokenize(sentences);
  }

  py::dict Info() const {
    const SequenceModel& model = embedder_->model();
    py::list layers;
    for (const LayerInfo& l : embedder_->DescribeLayers()) {
      py::dict d;
      d["layer"] = l.layer;
      d["label"] = l.label;
      d["hf_index"] = l.hf_index ? py::object(py::int_(*l.hf_index)) : py::object(py::none());
      if (!l.hf_index) d["no_hf_reason"] = l.no_hf_reason;
      layers.append(d);
    }
    py::dict info;
    info["path"] = path_;
    info["architecture"] = std::string(model.Architecture());
    info["hidden_size"] = model.hidden_size();
    info["num_blocks"] = model.num_blocks();
    info["intermediate_size"] = model.intermediate_size();
    info["vocab_size"] = model.vocab_size();
    info["dtype"] = std::string(DTypeName(model.weight_dtype()));
    info["random_weights"] = model.random_weights();
    info["layers"] = layers;
    info["tokenizer"] = std::string(TokenizerKindName(tokenizer_));
    info["precision"] = std::string(kernels::MatMulPrecisionName(embedder_->options().precision));
    info["batch_tokens"] = embedder_->options().batch_tokens;
    info["threads"] = threads_ > 0 ? py::object(py::int_(threads_)) : py::object(py::none());
    info["description"] = embedder_->Description();
    return info;
  }

  std::string Repr() const {
    const SequenceModel& model = embedder_->model();
    return "rwkv_embed.Model(" + std::string(py::repr(py::str(path_))) + ", architecture='" +
           std::string(model.Architecture()) +
           "', hidden_size=" + std::to_string(model.hidden_size()) +
           ", blocks=" + std::to_string(model.num_blocks()) + ", dtype='" +
           std::string(DTypeName(model.weight_dtype())) + "', precision='" +
           std::string(kernels::MatMulPrecisionName(embedder_->options().precision)) +
           "', tokenizer='" + std::string(TokenizerKindName(tokenizer_)) + "')";
  }

 private:
  // OpenMP's thread count is per calling thread: set it in whichever Python thread runs the work.
  void ApplyThreads() const {
    if (threads_ > 0) omp_set_num_threads(threads_);
  }
  [[noreturn]] static void ThrowEmpty(size_t i) {
    throw DataError("texts[" + std::to_string(i) + "] is empty: nothing to embed");
  }

  std::string path_;
  int threads_;
  TokenizerKind tokenizer_ = TokenizerKind::kWorld;
  std::unique_ptr<RwkvEmbedder> embedder_;
  std::mutex mutex_;  // one forward pass at a time per model (its scratch buffers are shared)
};

}  // namespace
}  // namespace rwkv_embed

PYBIND11_MODULE(rwkv_embed, m) {
  using rwkv_embed::Model;
  using namespace pybind11::literals;
  m.doc() =
      "Sentence embeddings from any layer of RWKV-6 / RWKV-7 models (the rwkv-embed library).";
  m.attr("__version__") = RWKV_EMBED_VERSION;
  m.attr("POOLINGS") = rwkv_embed::PoolingNames();
  rwkv_embed::RegisterExceptions(m);
  py::class_<Model>(m, "Model",
                    "A loaded RWKV model (folder or checkpoint file, as `rwkv-embed embed "
                    "--model`). Weights are memory-mapped; one encode runs at a time per model.")
      .def(py::init<const std::filesystem::path&, std::optional<int>, const std::string&, int64_t,
                    const std::optional<std::filesystem::path>&, const std::string&, bool>(),
           "path"_a, "threads"_a = py::none(), "precision"_a = "f32", "batch_tokens"_a = 2048,
           "vocab"_a = py::none(), "tokenizer"_a = "world", "check_weights"_a = false,
           "threads: OpenMP threads (None: all cores); precision: 'f32' | 'bf16'; batch_tokens: "
           "tokens per forward pass; vocab: World vocabulary file (None: beside the model, then "
           "$RWKV_EMBED_VOCAB); tokenizer: 'world' | 'bytes'; check_weights: scan every weight "
           "for NaN/Inf first.")
      .def("encode", &Model::Encode, "texts"_a, py::kw_only(), "layers"_a = "final",
           "pooling"_a = "mean", "normalize"_a = "none", "hf_index"_a = false,
           "Embeds texts (a str or an iterable of str) -> float32 numpy array. layers: an int or "
           "a spec naming one layer ('final', '3') gives [N, C]; a list of int, or a spec naming "
           "several ('all', 'blocks', '1,3', '0-4'), gives [n_layers, N, C] in the order asked "
           "(what `rwkv-embed embed` writes to .npy). pooling: mean | max | first | last | "
           "weighted-mean | mean-sqrt-len; normalize: 'none' | 'l2'; hf_index: layers are "
           "Hugging Face hidden_states indices. Releases the GIL during the forward pass.")
      .def("tokenize", &Model::Tokenize, "texts"_a,
           "Token ids the model is fed for each text (no BOS/EOS) -> list[list[int]].")
      .def_property_readonly("info", &Model::Info,
                             "dict: architecture, hidden_size, num_blocks, dtype, layers (layer, "
                             "label, hf_index), tokenizer, precision, description, ...")
      .def("__repr__", &Model::Repr);
}
