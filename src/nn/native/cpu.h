// Which instruction set the kernels use, chosen at load time (one compiled addon runs on any x86-64; the AVX2 and
// AVX-512 kernels are compiled with per-function target attributes, never with -march, so a copy built on another
// machine cannot execute an instruction this CPU lacks).
//   portable: plain C++ (the compiler's baseline: SSE2 on x86-64, NEON on arm64); fused attention only
//   avx2:     AVX2 + FMA kernels (GEMM 6×16, attention, modulated LayerNorm)
//   avx512:   AVX-512F kernels (GEMM 6×64, attention, modulated LayerNorm)
#pragma once

#include <string>

namespace {

enum class Isa { portable = 0, avx2 = 1, avx512 = 2 };

inline const char* isa_name(Isa isa) {
  return isa == Isa::avx512 ? "avx512" : isa == Isa::avx2 ? "avx2" : "portable";
}

// COGVIDEOX_NO_X86_KERNELS builds what other architectures get (portable only), to check it compiles.
#if (defined(__x86_64__) || defined(_M_X64) || defined(__i386__)) && !defined(COGVIDEOX_NO_X86_KERNELS)
#define COGVIDEOX_X86 1
#endif

// What this CPU (and the OS: libgcc's check includes the XSAVE state) can execute.
inline bool cpu_has(Isa isa) {
#ifdef COGVIDEOX_X86
  __builtin_cpu_init();
  if (isa == Isa::avx512) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == Isa::avx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return isa == Isa::portable;
}

// The CPU features that matter here, for error messages and the build stamp: "avx512f avx2 fma", "avx2 fma", "".
inline std::string cpu_features() {
  std::string s;
#ifdef COGVIDEOX_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) s += "avx512f ";
  if (__builtin_cpu_supports("avx2")) s += "avx2 ";
  if (__builtin_cpu_supports("fma")) s += "fma ";
#endif
  if (!s.empty()) s.pop_back();
  return s;
}

inline Isa best_isa() {
  return cpu_has(Isa::avx512) ? Isa::avx512 : cpu_has(Isa::avx2) ? Isa::avx2 : Isa::portable;
}

// The ISA every kernel call uses (set at load, changeable by setIsa for tests and COGVIDEOX_NATIVE_ISA).
Isa g_isa = Isa::portable;

}  // namespace

// Regions of kernels compiled for one ISA: every function defined between BEGIN and END (lambdas included) may use
// that ISA's instructions; they run only when cpu_has() says so.
#if defined(__clang__)
#define COGVIDEOX_TARGET_AVX512 \
  _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx2,fma\"))), apply_to = function)")
#define COGVIDEOX_TARGET_AVX2 _Pragma("clang attribute push(__attribute__((target(\"avx2,fma\"))), apply_to = function)")
#define COGVIDEOX_TARGET_END _Pragma("clang attribute pop")
#else
#define COGVIDEOX_TARGET_AVX512 _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx2,fma\")")
#define COGVIDEOX_TARGET_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")")
#define COGVIDEOX_TARGET_END _Pragma("GCC pop_options")
#endif
