#pragma once
// Direct convolution for narrow layers: stride 1, dilation 1, groups 1, few input values per output
// (C * R * S small), such as LeNet-5's 1->6 and 6->16 5x5 layers and ResNet-20's 1->16 stem. There
// im2col + sgemm spends its time copying (im2col writes R*S copies of the input) and in GEMMs too
// thin for OpenBLAS's blocking; a direct kernel reads the input where it lies. Legend:
//   x  (N, C, H, W)   w (K, C, R, S)   b (K) or null   y (N, K, OH, OW)
//   OH = H + 2*pad_h - R + 1, OW = W + 2*pad_w - S + 1
// Forward: for each image, block of 8 output channels and output row, 16 output columns per vector
// (two vectors when OW > 16); every tap (c, r, s) is one masked load of input row oh + r - pad_h
// at columns ow + s - pad_w (lanes outside the input read as 0: the padding), multiplied into the
// 8 channels' accumulators. Input gradient: the forward on dy with w'[c][k][r][s] =
// w[k][c][R-1-r][S-1-s] and padding R-1-pad (needs pad <= R-1). Weight gradient: for each (c, r,
// block of 4 output channels) the S * 4 sums over images, rows and columns in vector lanes, reduced
// at the end. Threads split images and channel blocks (forward) or (c, r, block) (weight gradient),
// never a sum: results are bit-identical across runs and thread counts.
#include "framework/im2col.h"

namespace inq {

// Stride 1, dilation 1, groups 1, padding at most R-1 / S-1 (the input gradient's padding must not
// be negative). The kernels run on any such geometry; choose_conv2d_algorithm decides when they pay.
bool direct_conv2d_supported(const Conv2dGeometry& g);
// True when this build has the AVX-512 kernels (otherwise the functions below run the naive
// references of layers/conv2d_winograd.h, correct but slow, and the dispatcher never picks them).
bool direct_conv2d_vectorized();

// y = conv(x, w) + b (b may be null); accumulate: added into y.
void direct_conv2d_forward(float* y, const float* x, const float* w, const float* b, const Conv2dGeometry& g,
                           bool accumulate = false);
// dx (N, C, H, W) from dy (N, K, OH, OW); added into dx when accumulate, else written over it.
void direct_conv2d_backward_data(float* dx, const float* dy, const float* w, const Conv2dGeometry& g,
                                 bool accumulate);
// dw (K, C, R, S) from x and dy; added into dw when accumulate, else written over it.
void direct_conv2d_backward_weight(float* dw, const float* x, const float* dy, const Conv2dGeometry& g,
                                   bool accumulate);

}  // namespace inq
