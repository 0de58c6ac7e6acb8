// The optional native addon (N-API, no dependencies): fused attention and the linear-layer GEMM for the tensorflow
// backend, whose TensorFlow 2.21 CPU kernels are slower than PyTorch's on these shapes (see the two headers).
// Built by scripts/build-native.mjs → build/native/cogvideox_native.node; loaded by src/nn/native.ts.
//
//   attention(q, k, v, BH, Sq, Sk, d, scale, out, threads)    Float32Arrays [BH, S, d]; fills out [BH, Sq, d]
//   linear(x, M, K, w, ldw, N, bias | null, out, threads, gelu = false)
//                                                             out[M, N] = x[M, K] · w[N, K (row stride ldw)]ᵀ + bias,
//                                                             then GELU (tanh form) if asked; avx2/avx512 only
//   adaLayerNorm(x, B, R, D, eps, w | null, b | null, scale, shift, out, outRows, outOffset, threads)
//                                                             modulated LayerNorm of x [B, R, D] into rows
//                                                             outOffset… of out [B, outRows, D]; avx2/avx512 only
//   splitHeads(src, B, S, H, hd, norm, w | null, b | null, eps, Lt, cos | null, sin | null, dst, threads)
//                                                             [B·S, H·hd] rows → [B, H, S, hd], per-head LayerNorm
//                                                             if norm, rotary on rows ≥ Lt if cos (heads.h)
//   mergeHeads(src, B, S, H, hd, dst, threads)                [B, H, S, hd] → [B·S, H·hd] rows
//   simd                                                      the ISA in use: "avx512" | "avx2" | "portable"
//   isas                                                      what this CPU can execute, best first
//   cpuFeatures                                               e.g. "avx512f avx2 fma" (what the stamp records)
//   setIsa(name)                                              use that ISA's kernels (RangeError if the CPU lacks it)
//   info()                                                    { isa, cpuFeatures, kernels: { attention: isa, … } }
//
// One build runs on any x86-64 (cpu.h): the ISA is chosen at load, the best this CPU has.
#include <node_api.h>

#include <string>
#include <utility>

#include "cpu.h"
#include "flash_attention.h"
#include "gemm.h"
#include "heads.h"
#include "norm.h"

namespace {

#define CHECK(call)                                                \
  do {                                                             \
    if ((call) != napi_ok) {                                       \
      napi_throw_error(env, nullptr, "native: N-API call failed"); \
      return nullptr;                                              \
    }                                                              \
  } while (0)

// The Float32Array `value` with at least (or, when exact, exactly) `need` elements, else a thrown TypeError.
float* f32(napi_env env, napi_value value, size_t need, const char* fn, const char* name, bool exact = true) {
  bool is_ta = false;
  napi_is_typedarray(env, value, &is_ta);
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (!is_ta || napi_get_typedarray_info(env, value, &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_float32_array || (exact ? length != need : length < need)) {
    std::string msg = std::string(fn) + ": " + name + " must be a Float32Array of " + (exact ? "" : "at least ") +
                      std::to_string(need) + " elements, got " + (is_ta ? std::to_string(length) : "something else");
    napi_throw_type_error(env, nullptr, msg.c_str());
    return nullptr;
  }
  return static_cast<float*>(data);
}

napi_value Attention(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 10) {
    napi_throw_type_error(env, nullptr, "attention: expected (q, k, v, BH, Sq, Sk, d, scale, out, threads)");
    return nullptr;
  }
  int64_t BH, Sq, Sk;
  int32_t d, threads;
  double scale;
  CHECK(napi_get_value_int64(env, argv[3], &BH));
  CHECK(napi_get_value_int64(env, argv[4], &Sq));
  CHECK(napi_get_value_int64(env, argv[5], &Sk));
  CHECK(napi_get_value_int32(env, argv[6], &d));
  CHECK(napi_get_value_double(env, argv[7], &scale));
  CHECK(napi_get_value_int32(env, argv[9], &threads));
  if (BH <= 0 || Sq <= 0 || Sk <= 0 || d <= 0 || d > 1024 || threads <= 0 || threads > 1024) {
    napi_throw_range_error(env, nullptr, "attention: sizes out of range");
    return nullptr;
  }
  const float* q = f32(env, argv[0], (size_t)(BH * Sq * d), "attention", "q");
  if (!q) return nullptr;
  const float* k = f32(env, argv[1], (size_t)(BH * Sk * d), "attention", "k");
  if (!k) return nullptr;
  const float* v = f32(env, argv[2], (size_t)(BH * Sk * d), "attention", "v");
  if (!v) return nullptr;
  float* out = f32(env, argv[8], (size_t)(BH * Sq * d), "attention", "out");
  if (!out) return nullptr;
  flash_attention(q, k, v, out, BH, Sq, Sk, d, (float)scale, threads);
  return nullptr;
}

// A Float32Array argument that may be null/undefined (→ nullptr, ok) or must have exactly `need` elements.
bool optional_f32(napi_env env, napi_value value, size_t need, const char* fn, const char* name, const float** out) {
  napi_valuetype t;
  if (napi_typeof(env, value, &t) != napi_ok) return false;
  if (t == napi_null || t == napi_undefined) {
    *out = nullptr;
    return true;
  }
  *out = f32(env, value, need, fn, name);
  return *out != nullptr;
}

napi_value SplitHeads(napi_env env, napi_callback_info info) {
  size_t argc = 14;
  napi_value argv[14];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 14) {
    napi_throw_type_error(env, nullptr, "splitHeads: expected (src, B, S, H, hd, norm, w, b, eps, Lt, cos, sin, dst, threads)");
    return nullptr;
  }
  int64_t B, S, Lt;
  int32_t H, hd, threads;
  bool norm;
  double eps;
  CHECK(napi_get_value_int64(env, argv[1], &B));
  CHECK(napi_get_value_int64(env, argv[2], &S));
  CHECK(napi_get_value_int32(env, argv[3], &H));
  CHECK(napi_get_value_int32(env, argv[4], &hd));
  CHECK(napi_get_value_bool(env, argv[5], &norm));
  CHECK(napi_get_value_double(env, argv[8], &eps));
  CHECK(napi_get_value_int64(env, argv[9], &Lt));
  CHECK(napi_get_value_int32(env, argv[13], &threads));
  if (B <= 0 || S <= 0 || H <= 0 || hd <= 0 || hd % 2 != 0 || Lt < 0 || Lt > S || threads <= 0 || threads > 1024) {
    napi_throw_range_error(env, nullptr, "splitHeads: sizes out of range (need B, S, H > 0, even hd, 0 ≤ Lt ≤ S)");
    return nullptr;
  }
  const size_t n = (size_t)(B * S * H * hd);
  const float* src = f32(env, argv[0], n, "splitHeads", "src");
  if (!src) return nullptr;
  const float *w, *b, *cos, *sin;
  if (!optional_f32(env, argv[6], (size_t)hd, "splitHeads", "w", &w)) return nullptr;
  if (!optional_f32(env, argv[7], (size_t)hd, "splitHeads", "b", &b)) return nullptr;
  if (!optional_f32(env, argv[10], (size_t)((S - Lt) * hd), "splitHeads", "cos", &cos)) return nullptr;
  if (!optional_f32(env, argv[11], (size_t)((S - Lt) * hd), "splitHeads", "sin", &sin)) return nullptr;
  if (!cos != !sin) {
    napi_throw_type_error(env, nullptr, "splitHeads: cos and sin go together");
    return nullptr;
  }
  float* dst = f32(env, argv[12], n, "splitHeads", "dst");
  if (!dst) return nullptr;
  split_heads(src, B, S, H, hd, norm, w, b, (float)eps, Lt, cos, sin, dst, threads);
  return nullptr;
}

napi_value MergeHeads(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 7) {
    napi_throw_type_error(env, nullptr, "mergeHeads: expected (src, B, S, H, hd, dst, threads)");
    return nullptr;
  }
  int64_t B, S;
  int32_t H, hd, threads;
  CHECK(napi_get_value_int64(env, argv[1], &B));
  CHECK(napi_get_value_int64(env, argv[2], &S));
  CHECK(napi_get_value_int32(env, argv[3], &H));
  CHECK(napi_get_value_int32(env, argv[4], &hd));
  CHECK(napi_get_value_int32(env, argv[6], &threads));
  if (B <= 0 || S <= 0 || H <= 0 || hd <= 0 || threads <= 0 || threads > 1024) {
    napi_throw_range_error(env, nullptr, "mergeHeads: sizes out of range");
    return nullptr;
  }
  const size_t n = (size_t)(B * S * H * hd);
  const float* src = f32(env, argv[0], n, "mergeHeads", "src");
  if (!src) return nullptr;
  float* dst = f32(env, argv[5], n, "mergeHeads", "dst");
  if (!dst) return nullptr;
  merge_heads(src, B, S, H, hd, dst, threads);
  return nullptr;
}

// linear / adaLayerNorm need the AVX2 or AVX-512 kernels; with the portable ISA they refuse (TensorFlow ops instead).
bool need_linear(napi_env env, const char* fn) {
  if (has_linear(g_isa)) return true;
  napi_throw_error(env, nullptr, (std::string(fn) + ": no portable kernel (the ISA in use is portable); use TensorFlow's ops").c_str());
  return false;
}

napi_value Linear(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 9 && argc != 10) {
    napi_throw_type_error(env, nullptr, "linear: expected (x, M, K, w, ldw, N, bias | null, out, threads, gelu?)");
    return nullptr;
  }
  if (!need_linear(env, "linear")) return nullptr;
  bool gelu = false;
  if (argc == 10) CHECK(napi_get_value_bool(env, argv[9], &gelu));
  int64_t M, K, ldw, N;
  int32_t threads;
  CHECK(napi_get_value_int64(env, argv[1], &M));
  CHECK(napi_get_value_int64(env, argv[2], &K));
  CHECK(napi_get_value_int64(env, argv[4], &ldw));
  CHECK(napi_get_value_int64(env, argv[5], &N));
  CHECK(napi_get_value_int32(env, argv[8], &threads));
  // int32 row/column indices inside the kernel: M, N < 2³¹.
  if (M <= 0 || K <= 0 || N <= 0 || ldw < K || M >= (1LL << 31) || N >= (1LL << 31) || threads <= 0 || threads > 1024) {
    napi_throw_range_error(env, nullptr, "linear: sizes out of range (need M, K, N > 0, ldw ≥ K)");
    return nullptr;
  }
  const float* x = f32(env, argv[0], (size_t)(M * K), "linear", "x");
  if (!x) return nullptr;
  const float* w = f32(env, argv[3], (size_t)((N - 1) * ldw + K), "linear", "w", false);
  if (!w) return nullptr;
  napi_valuetype bt;
  CHECK(napi_typeof(env, argv[6], &bt));
  const float* bias = nullptr;
  if (bt != napi_null && bt != napi_undefined) {
    bias = f32(env, argv[6], (size_t)N, "linear", "bias");
    if (!bias) return nullptr;
  }
  float* out = f32(env, argv[7], (size_t)(M * N), "linear", "out");
  if (!out) return nullptr;
  linear_forward(x, M, K, w, ldw, N, bias, out, threads, gelu);
  return nullptr;
}

napi_value AdaLayerNorm(napi_env env, napi_callback_info info) {
  size_t argc = 13;
  napi_value argv[13];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 13) {
    napi_throw_type_error(env, nullptr,
                          "adaLayerNorm: expected (x, B, R, D, eps, w, b, scale, shift, out, outRows, outOffset, threads)");
    return nullptr;
  }
  if (!need_linear(env, "adaLayerNorm")) return nullptr;
  int64_t B, R, outRows, outOffset;
  int32_t D, threads;
  double eps;
  CHECK(napi_get_value_int64(env, argv[1], &B));
  CHECK(napi_get_value_int64(env, argv[2], &R));
  CHECK(napi_get_value_int32(env, argv[3], &D));
  CHECK(napi_get_value_double(env, argv[4], &eps));
  CHECK(napi_get_value_int64(env, argv[10], &outRows));
  CHECK(napi_get_value_int64(env, argv[11], &outOffset));
  CHECK(napi_get_value_int32(env, argv[12], &threads));
  if (B <= 0 || R <= 0 || D <= 0 || outOffset < 0 || outOffset + R > outRows || threads <= 0 || threads > 1024) {
    napi_throw_range_error(env, nullptr, "adaLayerNorm: sizes out of range (need B, R, D > 0, outOffset + R ≤ outRows)");
    return nullptr;
  }
  const float* x = f32(env, argv[0], (size_t)(B * R * D), "adaLayerNorm", "x");
  if (!x) return nullptr;
  const float *w, *b;
  if (!optional_f32(env, argv[5], (size_t)D, "adaLayerNorm", "w", &w)) return nullptr;
  if (!optional_f32(env, argv[6], (size_t)D, "adaLayerNorm", "b", &b)) return nullptr;
  const float* scale = f32(env, argv[7], (size_t)(B * D), "adaLayerNorm", "scale");
  if (!scale) return nullptr;
  const float* shift = f32(env, argv[8], (size_t)(B * D), "adaLayerNorm", "shift");
  if (!shift) return nullptr;
  float* out = f32(env, argv[9], (size_t)(B * outRows * D), "adaLayerNorm", "out");
  if (!out) return nullptr;
  ada_layer_norm(x, B, R, D, (float)eps, w, b, scale, shift, out, outRows, outOffset, threads);
  return nullptr;
}

napi_value Str(napi_env env, const std::string& v) {
  napi_value out;
  napi_create_string_utf8(env, v.c_str(), NAPI_AUTO_LENGTH, &out);
  return out;
}

napi_value GetSimd(napi_env env, napi_callback_info) { return Str(env, isa_name(g_isa)); }

napi_value SetIsa(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  char name[32] = {0};
  size_t len = 0;
  if (argc != 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, nullptr, "setIsa: expected one of \"avx512\", \"avx2\", \"portable\"");
    return nullptr;
  }
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::portable}) {
    if (std::string(name) != isa_name(isa)) continue;
    if (!cpu_has(isa)) {
      const std::string f = cpu_features();
      const std::string msg = std::string("setIsa: this CPU cannot execute the ") + name + " kernels (its features: " +
                              (f.empty() ? "none of avx512f, avx2, fma" : f) + ")";
      napi_throw_range_error(env, nullptr, msg.c_str());
      return nullptr;
    }
    g_isa = isa;
    return nullptr;
  }
  napi_throw_range_error(env, nullptr, (std::string("setIsa: unknown ISA \"") + name + "\" (expected avx512, avx2 or portable)").c_str());
  return nullptr;
}

napi_value Info(napi_env env, napi_callback_info) {
  napi_value out, kernels;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_object(env, &kernels));
  const char* isa = isa_name(g_isa);
  napi_set_named_property(env, kernels, "attention", Str(env, isa));
  napi_set_named_property(env, kernels, "linear", Str(env, has_linear(g_isa) ? isa : "none"));
  napi_set_named_property(env, kernels, "adaLayerNorm", Str(env, has_linear(g_isa) ? isa : "none"));
  napi_set_named_property(env, kernels, "splitHeads", Str(env, "portable"));
  napi_set_named_property(env, kernels, "mergeHeads", Str(env, "portable"));
  napi_set_named_property(env, out, "isa", Str(env, isa));
  napi_set_named_property(env, out, "cpuFeatures", Str(env, cpu_features()));
  napi_set_named_property(env, out, "kernels", kernels);
  return out;
}

napi_value Init(napi_env env, napi_value exports) {
#if defined(__AVX2__) || defined(__FMA__) || defined(__AVX512F__)
  // Built with -march / -mavx2 by hand (scripts/build-native.mjs refuses those flags): all of it may need them.
#ifdef __AVX512F__
  const bool ok = cpu_has(Isa::avx512);
#else
  const bool ok = cpu_has(Isa::avx2);
#endif
  if (!ok) {
    napi_throw_error(env, nullptr, ("compiled for AVX2/AVX-512 (-march?) but this CPU has: " + cpu_features()).c_str());
    return nullptr;
  }
#endif
  g_isa = best_isa();
  const std::pair<const char*, napi_callback> fns[] = {
      {"attention", Attention}, {"splitHeads", SplitHeads}, {"mergeHeads", MergeHeads}, {"linear", Linear},
      {"adaLayerNorm", AdaLayerNorm}, {"setIsa", SetIsa}, {"info", Info}};
  napi_value fn, isas;
  for (const auto& [name, cb] : fns) {
    napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &fn);
    napi_set_named_property(env, exports, name, fn);
  }
  napi_property_descriptor simd = {"simd", nullptr, nullptr, GetSimd, nullptr, nullptr, napi_enumerable, nullptr};
  napi_define_properties(env, exports, 1, &simd);
  napi_create_array(env, &isas);
  uint32_t n = 0;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::portable})
    if (cpu_has(isa)) napi_set_element(env, isas, n++, Str(env, isa_name(isa)));
  napi_set_named_property(env, exports, "isas", isas);
  napi_set_named_property(env, exports, "cpuFeatures", Str(env, cpu_features()));
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
