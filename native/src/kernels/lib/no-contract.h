// The wasm kernels never fuse a multiply and an add unless they say so (madd in lib/simd.h, which
// the relaxed-SIMD build runs as an FMA): neither may the compiler here, or AdamW and RoPE would
// no longer match their references bit for bit. Include first, before any other header, so that
// inlined library functions are compiled with the same options as the kernels calling them.
#pragma once

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
