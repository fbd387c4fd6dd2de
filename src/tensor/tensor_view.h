// TensorView: a non-owning view of contiguous row-major memory on one device. Ops take views; memory
// is owned by Buffers (backend/buffer.h) or by mapped files.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "common/check.h"
#include "tensor/dtype.h"

namespace tandem {

struct TensorView {
  static constexpr int kMaxDims = 4;

  void* data = nullptr;
  DType dtype = DType::kF32;
  Device device = Device::kCpu;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};
  // Elements between the starts of consecutive rows; 0 = contiguous (row_elems()). Only column slices
  // made by cols() set it (e.g. q, k and v inside the fused qkv projection output); ops accept strided
  // views only where backend/backend.h says so.
  int64_t row_stride = 0;

  TensorView() = default;
  TensorView(void* d, DType t, Device dev, std::initializer_list<int64_t> dims) : data(d), dtype(t), device(dev) {
    TANDEM_CHECK(dims.size() <= kMaxDims);
    for (int64_t s : dims) shape[ndim++] = s;
  }

  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  // Elements in one row (product of all dims but the first).
  int64_t row_elems() const { return ndim == 0 ? 1 : numel() / shape[0]; }
  // Elements from one row's start to the next's.
  int64_t stride0() const { return row_stride ? row_stride : row_elems(); }
  bool is_contiguous() const { return row_stride == 0 || row_stride == row_elems(); }

  template <typename T>
  T* as() const { return static_cast<T*>(data); }

  // Rows [begin, begin+count) along the first dimension.
  TensorView rows(int64_t begin, int64_t count) const {
    TANDEM_CHECK(ndim >= 1 && begin >= 0 && begin + count <= shape[0], "rows({}, {}) of {}", begin, count, shape[0]);
    TensorView v = *this;
    v.data = static_cast<char*>(data) + static_cast<size_t>(begin * stride0()) * dtype_size(dtype);
    v.shape[0] = count;
    return v;
  }
  // Columns [begin, begin+count) of a 2-D view: same rows, row_stride kept from this view.
  TensorView cols(int64_t begin, int64_t count) const {
    TANDEM_CHECK(ndim == 2 && begin >= 0 && begin + count <= shape[1], "cols({}, {}) of {}", begin, count, shape_string());
    TensorView v = *this;
    v.row_stride = stride0();
    v.data = static_cast<char*>(data) + static_cast<size_t>(begin) * dtype_size(dtype);
    v.shape[1] = count;
    return v;
  }
  // Same memory, new shape (numel must match).
  TensorView reshape(std::initializer_list<int64_t> dims) const {
    TANDEM_CHECK(is_contiguous(), "reshape of a row-strided view");
    TensorView v(data, dtype, device, dims);
    TANDEM_CHECK(v.numel() == numel(), "reshape to {} elements from {}", v.numel(), numel());
    return v;
  }
  std::string shape_string() const;
};

}  // namespace tandem
