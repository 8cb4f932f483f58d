#!/usr/bin/env bash
# Prepares build/gpu/ for a GPU machine whose image has CUDA but not this project's C libraries (HDF5,
# OpenBLAS, cJSON, PCRE2, utf8proc): builds the engine, the CUDA module, the GPU test program and the
# lens benchmark here, and packs them with every shared library they load beyond glibc and CUDA
# (libs.tar.xz). Carry build/gpu to the GPU machine and run tools/gpu/device-check.sh there.
set -euo pipefail
cd "$(dirname "$0")/../.."
make --no-print-directory all build/tests/gpu/test_backend_ops build/tests/gpu/cuda_probe build/bench/gpu/bench_lens
G=build/gpu
rm -rf "$G"
mkdir -p "$G/lib"
cp build/logitlens build/liblogitlens_cuda.so build/tests/gpu/test_backend_ops build/tests/gpu/cuda_probe \
   build/bench/gpu/bench_lens "$G/"
for b in "$G/logitlens" "$G/test_backend_ops"; do ldd "$b" | awk '/=> \//{print $3}'; done | sort -u |
  grep -vE '/(libc|libm|libdl|libpthread|librt|libresolv|ld-linux[^/]*|libcuda|libcublas[^/]*|libcudart|libgcc_s|libstdc\+\+)\.so' |
  while read -r lib; do cp -L "$lib" "$G/lib/"; done
tar -C "$G" -cJf "$G/libs.tar.xz" lib
rm -rf "$G/lib"
du -sh "$G"
