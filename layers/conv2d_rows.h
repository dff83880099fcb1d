#pragma once
// Convolutions that read the padded input rows in place instead of lowering them with im2col.
//   x (N, C, H, W)   w (K, C, R, S)   dy, y (N, K, OH, OW)   groups 1, any stride, padding, dilation
// Row j = (c, r, s) of the lowered matrix, restricted to output row oh, is a run of OW input values
// stride.w apart. Split into "phase planes", one per (channel c, column phase q < stride.w), each
// holding the padded input's columns q, q + stride.w, ... (zeros over the padding) for the padded
// rows the outputs read, that run becomes OW consecutive floats:
//   row j at output row oh = plane(c, (s * dil_w) % stride_w) + (oh * stride_h + r * dil_h) * Wq
//                            + (s * dil_w) / stride_w
// So a table of C*R*S row starts (for oh = 0) plus an offset per output row lets a kernel read the
// lowered matrix without writing it: C*R*S floats per output pixel (147 for a 7x7 RGB stem) that
// im2col would write and read back, against a phase copy of the input (stride_w floats per input
// value). Users: the panel kernel's forward (layers/conv2d_panels.h) and the weight gradient below.
#include <cstdint>

#include "framework/im2col.h"

namespace inq {

struct PhasePlanes {
  int64_t rows = 0;   // padded input rows any output reads: (OH - 1) * stride_h + (R - 1) * dil_h + 1
  int64_t width = 0;  // Wq, columns of one plane: OW + ((S - 1) * dil_w) / stride_w
  int64_t count = 0;  // planes per image: C * stride_w

  static PhasePlanes of(const Conv2dGeometry& g);
  int64_t plane_floats() const { return rows * width; }
  int64_t image_floats() const { return count * rows * width; }
};

// Rows [i0, i1) of one image's planes (row i: plane i / rows, padded row i % rows) from `image`
// (C, H, W) into `planes` (image_floats() floats, the same layout for every call).
void build_phase_rows(float* planes, const float* image, const Conv2dGeometry& g, const PhasePlanes& layout,
                      int64_t i0, int64_t i1);
// table[j] for j = (c * R + r) * S + s: where row j of output row 0 starts in `planes`.
void phase_row_table(const float** table, const float* planes, const Conv2dGeometry& g, const PhasePlanes& layout);
// The same table in the calling thread's own buffer (reused from call to call, valid until its next
// call): pass the returned pointer into a parallel region, where a thread_local would name each
// thread's own.
const float* const* thread_phase_row_table(const float* planes, const Conv2dGeometry& g, const PhasePlanes& layout);

// Where the weight gradient reads the rows in place: an AVX-512 build, one group, and the shapes
// where in place pays (conv2d_panels_in_place: small C*R*S, wide output rows; the stems).
bool conv2d_weight_grad_rows_pays(const Conv2dGeometry& g);
// dw (K, C, R, S) from x and dy; added into dw when accumulate, else written over it. Each
// dw[k][j] is one sum in a fixed order (16 lanes over images, output rows and columns, then the
// lanes in order), whatever the thread count: threads split blocks of (k, j), never a sum. Needs
// AVX-512 (throws otherwise); any geometry with one group.
void conv2d_backward_weight_rows(float* dw, const float* x, const float* dy, const Conv2dGeometry& g,
                                 bool accumulate);

}  // namespace inq
