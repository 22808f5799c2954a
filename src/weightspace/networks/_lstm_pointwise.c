/* A whole LSTM layer of a population of K networks, all T steps in one call (float32, CPU); below
 * the LSTM's, the same for the tanh RNN layers of paper 002 (nn.RNN's cell, rnn_forward_layer, and
 * the mean-field leaky RNN, leaky_forward_layer).
 *
 * Compiled and loaded with ctypes by fused_cpu.py; the formulas are those of LSTMRecurrence in
 * lstm_kernel.py (gate order i, f, g, o). lstm_forward_layer runs a layer forward from its input
 * sequence, lstm_backward_layer back from the gradients of its outputs, to the gradients of the
 * input, both weights, the bias and the initial state. Each network's whole sequence is worked by
 * one thread (networks handed out one at a time, so a thread that another process slows down
 * simply takes fewer), with its weights, and in the backward its weight gradients, in cache for
 * all T steps: the input projection, the recurrent product and the weight gradients are per-step
 * register-blocked products on data just computed, instead of passes over (K, B, T, 4H) tensors.
 * A network's numbers do not depend on the thread count, on K or on which thread works it.
 * Tensors with a (K, B, T) stride triple may be strided views (unit stride in the last dim); the
 * others are contiguous. At the end of the file: the readout and the sequence cross-entropy of a
 * population, fused the same way (networks/readout.py).
 *
 * exp is a branch-free polynomial (Cephes expf, about 1 ulp) so that the row loop vectorises:
 * glibc's expf is only vectorised (libmvec) under -ffast-math, and scalar it is slower than the
 * unfused torch ops. tanh(x) = 2 sigmoid(2x) - 1, as in the pure-PyTorch path.
 *
 * The library is compiled once per instruction set (fused_cpu.py passes -march=x86-64-v4, -v3 or the
 * x86-64 baseline) and the vector width and the register tiles of the small products follow it:
 * 16 floats and 4x4 tiles with AVX-512's 32 registers, 8 floats and 6x2 tiles with AVX2's 16,
 * 4 floats and 6x2 tiles with SSE2's 16. One tile shape for all (the AVX-512 one) made the AVX2
 * and SSE2 builds 16-19x slower: 16 accumulators of 16 floats cannot live in 16 registers.
 * weightspace_cpu_supports_build() says whether the running CPU can execute this build.
 */

#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef __GNUC__
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

#include <stdlib.h>

INLINE float exp_poly(float x)
{
    x = x < -87.0f ? -87.0f : x; /* keeps 2^n a normal float; NaN passes through */
    x = x > 88.0f ? 88.0f : x;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float n = (x * 1.44269504088896341f + shifter) - shifter;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

INLINE float sigmoid(float x) { return 1.0f / (1.0f + exp_poly(-x)); }

struct forward_args {
    long K, B, T, I, H;
    const float *x;                   /* (K, B, T, I), strides x_sk, x_sb, x_st */
    long x_sk, x_sb, x_st;
    const float *w_ih, *w_hh;         /* (K, 4H, I), (K, 4H, H) */
    const float *bias;                /* (K, 4H): b_ih + b_hh */
    const float *h0;                  /* (K, B, H) */
    const float *c0;                  /* (K, B, H), strides c_sk, c_sb */
    long c_sk, c_sb;
    float *h;                         /* (K, B, T, H) out, strides h_sk, h_sb, h_st */
    long h_sk, h_sb, h_st;
    float *c_last;                    /* (K, B, H) out */
    float *factors;                   /* (K, T, B, 4, H) out: saved for the backward */
    float *cell_from_hidden, *forget; /* (K, T, B, H) out */
};

struct backward_args {
    long K, B, T, I, H;
    const float *x;                   /* the forward's input, strides x_sk, x_sb, x_st */
    long x_sk, x_sb, x_st;
    const float *w_ih, *w_hh, *h0;
    const float *h;                   /* the forward's output, strides h_sk, h_sb, h_st */
    long h_sk, h_sb, h_st;
    const float *factors, *cell_from_hidden, *forget;
    const float *grad_h;              /* (K, B, T, H), strides g_sk, g_sb, g_st; may be NULL */
    long g_sk, g_sb, g_st;
    float *dh;                        /* (K, B, H): zero in, gradient of h0 out */
    float *dc;                        /* (K, B, H): gradient of c_T in, of c0 out */
    float *dx;                        /* (K, B, T, I) out, strides dx_sk, dx_sb, dx_st; or NULL */
    long dx_sk, dx_sb, dx_st;
    float *dw_ih, *dw_hh, *dbias;     /* (K, 4H, I), (K, 4H, H), (K, 4H) out */
};

/* Gates from the pre-activations x (4H); the new cell state, h and the saved factors. */
INLINE void forward_row(long H, const float *restrict x, const float *restrict c_prev,
                        float *restrict c_new, float *restrict h, float *restrict fac,
                        float *restrict cfh, float *restrict fgt)
{
    for (long j = 0; j < H; ++j) {
        const float i = sigmoid(x[j]);
        const float f = sigmoid(x[H + j]);
        const float g = 2.0f * sigmoid(2.0f * x[2 * H + j]) - 1.0f;
        const float o = sigmoid(x[3 * H + j]);
        const float c_old = c_prev[j];
        const float input_times_cell = i * g;
        fac[j] = g * (i - i * i);
        fac[H + j] = c_old * (f - f * f);
        fac[2 * H + j] = i - input_times_cell * g;
        fgt[j] = f;
        const float c = input_times_cell + f * c_old;
        const float tanh_c = 2.0f * sigmoid(2.0f * c) - 1.0f;
        const float hj = o * tanh_c;
        c_new[j] = c;
        h[j] = hj;
        fac[3 * H + j] = tanh_c * (o - o * o);
        cfh[j] = o - hj * tanh_c;
    }
}

/* dh += grad_h (if given); dc += dh cell_from_hidden; gate gradients; dc *= forget. */
INLINE void backward_row(long H, const float *restrict dh, const float *restrict grad_h,
                         float *restrict dc, const float *restrict fac, const float *restrict cfh,
                         const float *restrict fgt, float *restrict gp)
{
    for (long j = 0; j < H; ++j) {
        const float d_h = grad_h ? dh[j] + grad_h[j] : dh[j];
        const float d_c = dc[j] + d_h * cfh[j];
        gp[j] = fac[j] * d_c;
        gp[H + j] = fac[H + j] * d_c;
        gp[2 * H + j] = fac[2 * H + j] * d_c;
        gp[3 * H + j] = fac[3 * H + j] * d_h;
        dc[j] = d_c * fgt[j];
    }
}

/* Small matrix products out = init + a m (rows x ncols, inner dimension n; a's element (r, j) at
 * a[r lda + j ja], so a may be read transposed; ldi = 0 repeats one init row, init = NULL starts
 * from zero; init may be out). Every element is summed in the order
 * j = 0, 1, ..., n - 1 from its init whatever tile computes it, so tile shapes never change a
 * number. A tile holds RB x NV vectors of VL floats in registers; columns are taken in stripes
 * (the outer loop, so a stripe of m stays in cache across all rows), rows in tiles, and what
 * the tiles leave is summed one element at a time. */
#if defined(__AVX512F__)
#define VL 16
#define ISA_LEVEL 4
#elif defined(__AVX2__) && defined(__FMA__)
#define VL 8
#define ISA_LEVEL 3
#else /* SSE2, NEON, or plain C */
#define VL 4
#define ISA_LEVEL 1
#endif
typedef float vfloat __attribute__((vector_size(VL * 4), aligned(4)));

/* Whether the running CPU can execute the instructions this build was compiled for, asked by
 * features both GCC and Clang know (x86-64-v3 CPUs with AVX2, FMA and BMI2 also have its other
 * features); the check itself is compiled for the baseline so that it runs on any x86-64 CPU. */
#if defined(__x86_64__) && defined(__GNUC__)
#if ISA_LEVEL >= 4
#define CPU_RUNS_BUILD (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && \
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
#elif ISA_LEVEL >= 3
#define CPU_RUNS_BUILD (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && \
                        __builtin_cpu_supports("bmi2"))
#else
#define CPU_RUNS_BUILD 1
#endif
__attribute__((target("arch=x86-64"))) int weightspace_cpu_supports_build(void)
{
    __builtin_cpu_init();
    return CPU_RUNS_BUILD ? 1 : 0;
}
#else
int weightspace_cpu_supports_build(void) { return 1; }
#endif

/* The vector width this build computes with, in floats (reported by fused_cpu.kernel_path()). */
int weightspace_vector_floats(void) { return VL; }

struct product {
    long n;
    const float *a; long lda, ja;
    const float *m; long ldm;
    const float *init; long ldi;
    float *out; long ldo;
};

#define DEFINE_TILE(RB, NV)                                                                     \
    INLINE void tile_##RB##x##NV(const struct product *p, long row, long col)                   \
    {                                                                                           \
        vfloat acc[RB][NV];                                                                     \
        _Pragma("GCC unroll 16") for (int r = 0; r < RB; ++r)                                   \
            _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v) acc[r][v] = p->init           \
                ? *(const vfloat *)(p->init + (row + r) * p->ldi + col + v * VL) : (vfloat){0}; \
        for (long j = 0; j < p->n; ++j) {                                                       \
            vfloat w[NV];                                                                       \
            _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v)                               \
                w[v] = *(const vfloat *)(p->m + j * p->ldm + col + v * VL);                     \
            _Pragma("GCC unroll 16") for (int r = 0; r < RB; ++r) {                             \
                const float s = p->a[(row + r) * p->lda + j * p->ja];                           \
                _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v) acc[r][v] += s * w[v];    \
            }                                                                                   \
        }                                                                                       \
        _Pragma("GCC unroll 16") for (int r = 0; r < RB; ++r)                                   \
            _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v)                               \
                *(vfloat *)(p->out + (row + r) * p->ldo + col + v * VL) = acc[r][v];            \
    }

/* The main tile: TILE_ROWS x TILE_VECTORS accumulators plus TILE_VECTORS loaded vectors of m must
 * fit in the vector registers, or every step spills (tests compare weightspace_tile_registers()
 * with weightspace_vector_registers() for every build). */
#if defined(__AVX512F__) || defined(__aarch64__)
#define VECTOR_REGISTERS 32
#else
#define VECTOR_REGISTERS 16
#endif
#if VL == 16 /* 16 + 4 of 32 registers */
#define TILE_ROWS 4
#define TILE_VECTORS 4
DEFINE_TILE(4, 4)
DEFINE_TILE(8, 2)
DEFINE_TILE(1, 4)
#else /* 12 + 2 of 16 registers */
#define TILE_ROWS 6
#define TILE_VECTORS 2
DEFINE_TILE(6, 2)
#endif
DEFINE_TILE(8, 1)
DEFINE_TILE(1, 2)
DEFINE_TILE(1, 1)

int weightspace_tile_registers(void) { return TILE_ROWS * TILE_VECTORS + TILE_VECTORS; }
int weightspace_vector_registers(void) { return VECTOR_REGISTERS; }

#define STRIPE(RB, NV, TILE, TILE1)                                                             \
    for (; col + NV * VL <= ncols; col += NV * VL) {                                            \
        long row = 0;                                                                           \
        for (; row + RB <= rows; row += RB)                                                     \
            TILE(p, row, col);                                                                  \
        for (; row < rows; ++row)                                                               \
            TILE1(p, row, col);                                                                 \
    }

INLINE void product(const struct product *p, long rows, long ncols)
{
    long col = 0;
#if VL == 16
    STRIPE(4, 4, tile_4x4, tile_1x4)
    STRIPE(8, 2, tile_8x2, tile_1x2)
#else
    STRIPE(6, 2, tile_6x2, tile_1x2)
#endif
    STRIPE(8, 1, tile_8x1, tile_1x1)
    for (; col < ncols; ++col)
        for (long row = 0; row < rows; ++row) {
            float s = p->init ? p->init[row * p->ldi + col] : 0.0f;
            for (long j = 0; j < p->n; ++j)
                s += p->a[row * p->lda + j * p->ja] * p->m[j * p->ldm + col];
            p->out[row * p->ldo + col] = s;
        }
}

/* A network's two weight matrices side by side, W_ih (G x I) and W_hh (G x H) times hh_scale:
 * stacked_transposed writes [W_ih, s W_hh]^T, (I + H) x G, the forward's right-hand side;
 * stacked writes [W_ih, s W_hh], G x (I + H), the backward's; unstack_transposed turns the
 * accumulated (I + H) x G gradient back into dW_ih and s dW_hh. A scale of 1 changes no bit. */
static void stacked_transposed(float *wt, const float *w_ih, const float *w_hh, long G, long I, long H,
                               float hh_scale)
{
    for (long g = 0; g < G; ++g) {
        for (long j = 0; j < I; ++j)
            wt[j * G + g] = w_ih[g * I + j];
        for (long j = 0; j < H; ++j)
            wt[(I + j) * G + g] = w_hh[g * H + j] * hh_scale;
    }
}

static void stacked(float *m, const float *w_ih, const float *w_hh, long G, long I, long H, float hh_scale)
{
    for (long g = 0; g < G; ++g) {
        memcpy(m + g * (I + H), w_ih + g * I, I * sizeof(float));
        for (long j = 0; j < H; ++j)
            m[g * (I + H) + I + j] = w_hh[g * H + j] * hh_scale;
    }
}

static void unstack_transposed(float *dw_ih, float *dw_hh, const float *dwt, long G, long I, long H,
                               float hh_scale)
{
    for (long g = 0; g < G; ++g) {
        for (long j = 0; j < I; ++j)
            dw_ih[g * I + j] = dwt[j * G + g];
        for (long j = 0; j < H; ++j)
            dw_hh[g * H + j] = dwt[(I + j) * G + g] * hh_scale;
    }
}

/* Floats of scratch memory one thread needs for a network of the given sizes. */
static long forward_scratch(long B, long I, long H) { return (I + H) * 4 * H + B * 4 * H + 2 * B * H; }
static long backward_scratch(long B, long I, long H) { return 2 * (I + H) * 4 * H + 4 * H + B * 4 * H; }

/* Step t's rows of x (B x I) and of h_{t-1} (B x H; h0 at t = 0) of network k, and their row
 * strides: contiguous blocks when the tensors are time-major. */
#define X_ROWS(a, k, t) ((a)->x + (k) * (a)->x_sk + (t) * (a)->x_st)
#define H_PREV_ROWS(a, k, t) \
    ((t) == 0 ? (a)->h0 + (k) * (a)->B * (a)->H : (a)->h + (k) * (a)->h_sk + ((t) - 1) * (a)->h_st)
#define H_PREV_STRIDE(a, t) ((t) == 0 ? (a)->H : (a)->h_sb)

/* One network's forward sequence: per step the pre-activations bias + x_t W_ih^T + h_{t-1} W_hh^T
 * (B x 4H; two products summed in one order, read straight from the rows of x and h), then the
 * pointwise work row by row. */
static void forward_network(const struct forward_args *a, long k, float *work)
{
    const long B = a->B, T = a->T, I = a->I, H = a->H, G = 4 * H;
    float *wt = work, *pre = wt + (I + H) * G, *cells[2] = {pre + B * G, pre + B * G + B * H};
    const float *w_ih = a->w_ih + k * G * I, *w_hh = a->w_hh + k * G * H;
    stacked_transposed(wt, w_ih, w_hh, G, I, H, 1.0f);
    for (long t = 0; t < T; ++t) {
        const struct product input = {I, X_ROWS(a, k, t), a->x_sb, 1, wt, G, a->bias + k * G, 0, pre, G};
        const struct product recurrent = {H, H_PREV_ROWS(a, k, t), H_PREV_STRIDE(a, t), 1, wt + I * G, G,
                                          pre, G, pre, G};
        product(&input, B, G);
        product(&recurrent, B, G);
        float *c_new = cells[t % 2];
        const float *c_prev = cells[(t + 1) % 2];
        const long step = k * T + t;
        for (long b = 0; b < B; ++b)
            forward_row(H, pre + b * G, t == 0 ? a->c0 + k * a->c_sk + b * a->c_sb : c_prev + b * H,
                        c_new + b * H, a->h + k * a->h_sk + b * a->h_sb + t * a->h_st,
                        a->factors + (step * B + b) * G, a->cell_from_hidden + (step * B + b) * H,
                        a->forget + (step * B + b) * H);
    }
    if (T > 0)
        memcpy(a->c_last + k * B * H, cells[(T - 1) % 2], B * H * sizeof(float));
}

/* The products of backward step t from its pre-activation gradients gp (B x G), for the LSTM
 * (G = 4H) and the tanh RNN (G = H): dx_t = gp W_ih and the dh of step t - 1 = gp W_hh (m is
 * [W_ih, W_hh]); dW_ih^T += x_t^T gp and dW_hh^T += h_{t-1}^T gp (x and h read transposed in
 * place, into dwt); the bias gradient db += the column sums of gp. */
static void step_gradients(const struct backward_args *a, long k, long t, long G, const float *gp,
                           const float *m, float *dwt, float *db, float *dh)
{
    const long B = a->B, I = a->I, H = a->H;
    const float *x = X_ROWS(a, k, t), *h_prev = H_PREV_ROWS(a, k, t);
    if (a->dx) {
        const struct product input_grad = {G, gp, G, 1, m, I + H, 0, 0, a->dx + k * a->dx_sk + t * a->dx_st, a->dx_sb};
        product(&input_grad, B, I);
    }
    const struct product hidden_grad = {G, gp, G, 1, m + I, I + H, 0, 0, dh, H};
    const struct product input_weight_grad = {B, x, 1, a->x_sb, gp, G, dwt, G, dwt, G};
    const struct product hidden_weight_grad = {B, h_prev, 1, H_PREV_STRIDE(a, t), gp, G, dwt + I * G, G, dwt + I * G, G};
    product(&hidden_grad, B, H);
    product(&input_weight_grad, I, G);
    product(&hidden_weight_grad, H, G);
    for (long b = 0; b < B; ++b)
        for (long g = 0; g < G; ++g)
            db[g] += gp[b * G + g];
}

/* One network's backward sequence. Per step t (last to first): the gate gradients gp (B x 4H)
 * row by row; dx_t = gp W_ih and the dh of step t - 1 = gp W_hh; the weight gradients
 * dW_ih^T += x_t^T gp and dW_hh^T += h_{t-1}^T gp (x and h read transposed in place); the bias
 * gradient += the column sums of gp. */
static void backward_network(const struct backward_args *a, long k, float *work)
{
    const long B = a->B, T = a->T, I = a->I, H = a->H, G = 4 * H;
    float *m = work, *dwt = m + G * (I + H), *db = dwt + (I + H) * G, *gp = db + G;
    const float *w_ih = a->w_ih + k * G * I, *w_hh = a->w_hh + k * G * H;
    stacked(m, w_ih, w_hh, G, I, H, 1.0f);
    memset(dwt, 0, ((I + H) * G + G) * sizeof(float)); /* and db */
    float *dh = a->dh + k * B * H, *dc = a->dc + k * B * H;
    for (long t = T - 1; t >= 0; --t) {
        const long step = k * T + t;
        for (long b = 0; b < B; ++b) {
            const float *grad_h = a->grad_h ? a->grad_h + k * a->g_sk + b * a->g_sb + t * a->g_st : 0;
            backward_row(H, dh + b * H, grad_h, dc + b * H, a->factors + (step * B + b) * G,
                         a->cell_from_hidden + (step * B + b) * H, a->forget + (step * B + b) * H,
                         gp + b * G);
        }
        step_gradients(a, k, t, G, gp, m, dwt, db, dh);
    }
    unstack_transposed(a->dw_ih + k * G * I, a->dw_hh + k * G * H, dwt, G, I, H, 1.0f);
    memcpy(a->dbias + k * G, db, G * sizeof(float));
}

/* Runs network(args, k, scratch) for k = 0..K-1 on up to nthreads threads, each taking the next
 * network when it is done with one: a thread that another process slows down takes fewer
 * networks. The threads are torch's own OpenMP pool (this library's libgomp is the one torch
 * loaded), so they are awake when the call comes right after a torch op: POSIX threads started
 * per call instead ran next to torch's spinning ones, 86 against 68 ms per demo training step.
 * Returns 0, or -1 when no thread could allocate its scratch memory. */
static int for_each_network(void (*network)(const void *, long, float *), const void *args, long K,
                            long scratch_floats, int nthreads)
{
    long done = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads < K ? nthreads : (int)(K > 0 ? K : 1)) reduction(+ : done)
#endif
    {
        float *work = malloc(scratch_floats * sizeof(float));
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (long k = 0; k < K; ++k)
            if (work) { /* a thread without scratch memory leaves its networks undone */
                network(args, k, work);
                ++done;
            }
        free(work);
    }
    (void)nthreads;
    return done < K ? -1 : 0;
}

static void forward_one(const void *args, long k, float *work) { forward_network(args, k, work); }
static void backward_one(const void *args, long k, float *work) { backward_network(args, k, work); }

int lstm_forward_layer(const struct forward_args *a, int nthreads)
{
    return for_each_network(forward_one, a, a->K, forward_scratch(a->B, a->I, a->H), nthreads);
}

int lstm_backward_layer(const struct backward_args *a, int nthreads)
{
    return for_each_network(backward_one, a, a->K, backward_scratch(a->B, a->I, a->H), nthreads);
}

/* nn.RNN's tanh layer, h_t = tanh(bias + x_t W_ih^T + h_{t-1} W_hh^T), the same way: each network
 * on one thread with its weights (and in the backward its weight gradients) in cache for all T
 * steps. It takes the LSTM's argument structs with one gate (G = H); their cell-state fields (c0,
 * c_last, dc, cell_from_hidden, forget) are unused, and factors (K, T, B, H) holds 1 - h_t^2. */
static long rnn_forward_scratch(long B, long I, long H) { return (I + H) * H + B * H; }
static long rnn_backward_scratch(long B, long I, long H) { return 2 * (I + H) * H + H + B * H; }

static void rnn_forward_network(const struct forward_args *a, long k, float *work)
{
    const long B = a->B, T = a->T, I = a->I, H = a->H;
    float *wt = work, *pre = wt + (I + H) * H;
    const float *w_ih = a->w_ih + k * H * I, *w_hh = a->w_hh + k * H * H;
    stacked_transposed(wt, w_ih, w_hh, H, I, H, 1.0f);
    for (long t = 0; t < T; ++t) {
        const struct product input = {I, X_ROWS(a, k, t), a->x_sb, 1, wt, H, a->bias + k * H, 0, pre, H};
        const struct product recurrent = {H, H_PREV_ROWS(a, k, t), H_PREV_STRIDE(a, t), 1, wt + I * H, H,
                                          pre, H, pre, H};
        product(&input, B, H);
        product(&recurrent, B, H);
        for (long b = 0; b < B; ++b) {
            float *h = a->h + k * a->h_sk + b * a->h_sb + t * a->h_st;
            float *slope = a->factors + ((k * T + t) * B + b) * H;
            const float *x = pre + b * H;
            for (long j = 0; j < H; ++j) {
                const float hj = 2.0f * sigmoid(2.0f * x[j]) - 1.0f;
                h[j] = hj;
                slope[j] = 1.0f - hj * hj;
            }
        }
    }
}

/* Per step t (last to first): the pre-activation gradients gp = (dh + grad_h_t) (1 - h_t^2)
 * (B x H); dx_t = gp W_ih and the dh of step t - 1 = gp W_hh; dW_ih^T += x_t^T gp,
 * dW_hh^T += h_{t-1}^T gp, and the bias gradient += the column sums of gp. */
static void rnn_backward_network(const struct backward_args *a, long k, float *work)
{
    const long B = a->B, T = a->T, I = a->I, H = a->H;
    float *m = work, *dwt = m + H * (I + H), *db = dwt + (I + H) * H, *gp = db + H;
    const float *w_ih = a->w_ih + k * H * I, *w_hh = a->w_hh + k * H * H;
    stacked(m, w_ih, w_hh, H, I, H, 1.0f);
    memset(dwt, 0, ((I + H) * H + H) * sizeof(float)); /* and db */
    float *dh = a->dh + k * B * H;
    for (long t = T - 1; t >= 0; --t) {
        for (long b = 0; b < B; ++b) {
            const float *grad_h = a->grad_h ? a->grad_h + k * a->g_sk + b * a->g_sb + t * a->g_st : 0;
            const float *slope = a->factors + ((k * T + t) * B + b) * H;
            const float *d = dh + b * H;
            float *out = gp + b * H;
            for (long j = 0; j < H; ++j)
                out[j] = (grad_h ? d[j] + grad_h[j] : d[j]) * slope[j];
        }
        step_gradients(a, k, t, H, gp, m, dwt, db, dh);
    }
    unstack_transposed(a->dw_ih + k * H * I, a->dw_hh + k * H * H, dwt, H, I, H, 1.0f);
    memcpy(a->dbias + k * H, db, H * sizeof(float));
}

static void rnn_forward_one(const void *args, long k, float *work) { rnn_forward_network(args, k, work); }
static void rnn_backward_one(const void *args, long k, float *work) { rnn_backward_network(args, k, work); }

int rnn_forward_layer(const struct forward_args *a, int nthreads)
{
    return for_each_network(rnn_forward_one, a, a->K, rnn_forward_scratch(a->B, a->I, a->H), nthreads);
}

int rnn_backward_layer(const struct backward_args *a, int nthreads)
{
    return for_each_network(rnn_backward_one, a, a->K, rnn_backward_scratch(a->B, a->I, a->H), nthreads);
}

/* The mean-field leaky RNN (networks/mean_field.py), the same way:
 *     h_t = (1 - tau) h_{t-1} + tau (x_t U^T + tanh(h_{t-1}) (J / N)^T),
 * no biases. The forward saves r_t = tanh(h_t) (K, T, B, N) for the backward pass. */
struct leaky_args {
    long K, B, T, I, H;
    float tau, scale;                 /* scale: 1 / N */
    const float *x;                   /* (K, B, T, I), strides x_sk, x_sb, x_st */
    long x_sk, x_sb, x_st;
    const float *w_ih, *w_hh;         /* U (K, H, I), J (K, H, H) */
    const float *h0;                  /* (K, B, H) */
    float *h;                         /* (K, B, T, H) out (forward) or in, strides h_sk, h_sb, h_st */
    long h_sk, h_sb, h_st;
    float *rates;                     /* (K, T, B, H): tanh(h_t), out (forward) or in */
    const float *grad_h;              /* (K, B, T, H), strides g_sk, g_sb, g_st; may be NULL */
    long g_sk, g_sb, g_st;
    float *dh;                        /* (K, B, H): zero in, gradient of h0 out */
    float *dx;                        /* (K, B, T, I) out, strides dx_sk, dx_sb, dx_st; or NULL */
    long dx_sk, dx_sb, dx_st;
    float *dw_ih, *dw_hh;             /* (K, H, I), (K, H, H) out */
};

INLINE float tanh_poly(float x) { return 2.0f * sigmoid(2.0f * x) - 1.0f; }

static long leaky_forward_scratch(long B, long I, long H) { return (I + H) * H + 2 * B * H; }
static long leaky_backward_scratch(long B, long I, long H) { return 2 * (I + H) * H + 3 * B * H; }

#define LEAKY_X_ROWS(a, k, t) ((a)->x + (k) * (a)->x_sk + (t) * (a)->x_st)
#define LEAKY_H_ROW(a, k, b, t) ((a)->h + (k) * (a)->h_sk + (b) * (a)->h_sb + (t) * (a)->h_st)

static void leaky_forward_network(const struct leaky_args *a, long k, float *work)
{
    const long B = a->B, T = a->T, I = a->I, H = a->H;
    const float tau = a->tau;
    float *wt = work, *pre = wt + (I + H) * H, *r0 = pre + B * H;
    const float *u = a->w_ih + k * H * I, *j = a->w_hh + k * H * H;
    stacked_transposed(wt, u, j, H, I, H, a->scale); /* [U, J / N]^T */
    const float *h0 = a->h0 + k * B * H;
    for (long i = 0; i < B * H; ++i)
        r0[i] = tanh_poly(h0[i]);
    for (long t = 0; t < T; ++t) {
        const float *r_prev = t == 0 ? r0 : a->rates + ((k * T + t - 1) * B) * H;
        const struct product input = {I, LEAKY_X_ROWS(a, k, t), a->x_sb, 1, wt, H, 0, 0, pre, H};
        const struct product recurrent = {H, r_prev, H, 1, wt + I * H, H, pre, H, pre, H};
        product(&input, B, H);
        product(&recurrent, B, H);
        for (long b = 0; b < B; ++b) {
            const float *h_prev = t == 0 ? h0 + b * H : LEAKY_H_ROW(a, k, b, t - 1);
            float *h = LEAKY_H_ROW(a, k, b, t), *r = a->rates + ((k * T + t) * B + b) * H;
            const float *p = pre + b * H;
            for (long i = 0; i < H; ++i) {
                const float hi = (1.0f - tau) * h_prev[i] + tau * p[i];
                h[i] = hi;
                r[i] = tanh_poly(hi);
            }
        }
    }
}

/* Per step t (last to first), with G = dh + grad_h_t: gd = tau G is the gradient of the step's
 * pre-activation; dx_t = gd U, dU^T += x_t^T gd, d(J / N)^T += r_{t-1}^T gd, and the dh of step
 * t - 1 = (1 - tau) G + (gd (J / N)) (1 - r_{t-1}^2). */
static void leaky_backward_network(const struct leaky_args *a, long k, float *work)
{
    const long B = a->B, T = a->T, I = a->I, H = a->H;
    const float tau = a->tau;
    float *m = work, *dwt = m + H * (I + H), *gd = dwt + (I + H) * H, *back = gd + B * H, *r0 = back + B * H;
    const float *u = a->w_ih + k * H * I, *j = a->w_hh + k * H * H;
    stacked(m, u, j, H, I, H, a->scale); /* [U, J / N] */
    memset(dwt, 0, (I + H) * H * sizeof(float));
    const float *h0 = a->h0 + k * B * H;
    for (long i = 0; i < B * H; ++i)
        r0[i] = tanh_poly(h0[i]);
    float *dh = a->dh + k * B * H;
    for (long t = T - 1; t >= 0; --t) {
        for (long b = 0; b < B; ++b) {
            const float *grad_h = a->grad_h ? a->grad_h + k * a->g_sk + b * a->g_sb + t * a->g_st : 0;
            float *d = dh + b * H, *out = gd + b * H;
            for (long i = 0; i < H; ++i) {
                const float total = grad_h ? d[i] + grad_h[i] : d[i];
                d[i] = total; /* G, kept for the direct path below */
                out[i] = tau * total;
            }
        }
        const float *x = LEAKY_X_ROWS(a, k, t);
        const float *r_prev = t == 0 ? r0 : a->rates + ((k * T + t - 1) * B) * H;
        if (a->dx) {
            const struct product input_grad = {H, gd, H, 1, m, I + H, 0, 0,
                                               a->dx + k * a->dx_sk + t * a->dx_st, a->dx_sb};
            product(&input_grad, B, I);
        }
        const struct product through = {H, gd, H, 1, m + I, I + H, 0, 0, back, H};
        const struct product input_weight_grad = {B, x, 1, a->x_sb, gd, H, dwt, H, dwt, H};
        const struct product hidden_weight_grad = {B, r_prev, 1, H, gd, H, dwt + I * H, H, dwt + I * H, H};
        product(&through, B, H);
        product(&input_weight_grad, I, H);
        product(&hidden_weight_grad, H, H);
        for (long i = 0; i < B * H; ++i)
            dh[i] = (1.0f - tau) * dh[i] + back[i] * (1.0f - r_prev[i] * r_prev[i]);
    }
    unstack_transposed(a->dw_ih + k * H * I, a->dw_hh + k * H * H, dwt, H, I, H, a->scale);
}

static void leaky_forward_one(const void *args, long k, float *work) { leaky_forward_network(args, k, work); }
static void leaky_backward_one(const void *args, long k, float *work) { leaky_backward_network(args, k, work); }

int leaky_forward_layer(const struct leaky_args *a, int nthreads)
{
    return for_each_network(leaky_forward_one, a, a->K, leaky_forward_scratch(a->B, a->I, a->H), nthreads);
}

int leaky_backward_layer(const struct leaky_args *a, int nthreads)
{
    return for_each_network(leaky_backward_one, a, a->K, leaky_backward_scratch(a->B, a->I, a->H), nthreads);
}

/* The readout and the sequence cross-entropy of a population, fused: per network k, logits
 * b + h W^T for every (t, b) row, the loss mean over rows of logsumexp(logits) - logits[target],
 * and the softmax saved for the backward pass; backward, from the gradient of each network's
 * loss, the gradients of h, W and b. The rows of h are read once each way while in cache,
 * instead of three batched matmuls and a dozen passes of torch ops over (K, B, T, O) tensors. */
struct readout_args {
    long K, B, T, H, O;
    const float *h;                   /* (K, B, T, H), strides h_sk, h_sb, h_st */
    long h_sk, h_sb, h_st;
    const float *w, *bias;            /* (K, O, H), (K, O) */
    const long *targets;              /* (K, B, T) */
    float *loss;                      /* (K) out */
    float *probs;                     /* (K, T, B, O) out: the softmax, saved for the backward */
    const float *grad_loss;           /* (K) in (backward) */
    float *dh;                        /* (K, B, T, H) out, strides dh_sk, dh_sb, dh_st */
    long dh_sk, dh_sb, dh_st;
    float *dw, *dbias;                /* (K, O, H), (K, O) out */
};

/* The readout's classes padded to whole vectors (VL floats), so that the logits are a vector tile. */
static long padded(long O) { return (O + VL - 1) / VL * VL; }

/* Per step, logits (B x O) = bias + h_t W^T as a product with W^T padded by zero columns; then
 * each row's logsumexp, loss and softmax. */
static void readout_forward_network(const void *args, long k, float *work)
{
    const struct readout_args *a = args;
    const long B = a->B, T = a->T, H = a->H, O = a->O, P = padded(O);
    const float *w = a->w + k * O * H, *bias = a->bias + k * O;
    float *wt = work, *bias_p = wt + H * P, *logits = bias_p + P;
    memset(wt, 0, (H * P + P) * sizeof(float));
    for (long o = 0; o < O; ++o) {
        bias_p[o] = bias[o];
        for (long j = 0; j < H; ++j)
            wt[j * P + o] = w[o * H + j];
    }
    double total = 0.0;
    for (long t = 0; t < T; ++t) {
        const struct product logit = {H, a->h + k * a->h_sk + t * a->h_st, a->h_sb, 1, wt, P, bias_p, 0, logits, P};
        product(&logit, B, P);
        for (long b = 0; b < B; ++b) {
            const float *l = logits + b * P;
            float top = -INFINITY;
            for (long o = 0; o < O; ++o)
                top = l[o] > top ? l[o] : top;
            float sum = 0.0f;
            for (long o = 0; o < O; ++o)
                sum += exp_poly(l[o] - top);
            const float lse = top + logf(sum);
            float *p = a->probs + ((k * T + t) * B + b) * O;
            for (long o = 0; o < O; ++o)
                p[o] = exp_poly(l[o] - lse);
            total += lse - l[a->targets[(k * B + b) * T + t]];
        }
    }
    a->loss[k] = (float)(total / (double)(B * T));
}

/* Per step, the logits' gradient G (B x O) = scale (softmax - onehot); dh_t = G W,
 * dW += G^T h_t (G read transposed in place), db += the column sums of G. */
static void readout_backward_network(const void *args, long k, float *g)
{
    const struct readout_args *a = args;
    const long B = a->B, T = a->T, H = a->H, O = a->O;
    const float *w = a->w + k * O * H;
    float *dw = a->dw + k * O * H, *db = a->dbias + k * O;
    const float scale = a->grad_loss[k] / (float)(B * T);
    memset(dw, 0, O * H * sizeof(float));
    memset(db, 0, O * sizeof(float));
    for (long t = 0; t < T; ++t) {
        for (long b = 0; b < B; ++b) {
            const float *p = a->probs + ((k * T + t) * B + b) * O;
            const long target = a->targets[(k * B + b) * T + t];
            for (long o = 0; o < O; ++o) {
                g[b * O + o] = scale * (p[o] - (o == target ? 1.0f : 0.0f));
                db[o] += g[b * O + o];
            }
        }
        const float *h = a->h + k * a->h_sk + t * a->h_st;
        const struct product hidden_grad = {O, g, O, 1, w, H, 0, 0, a->dh + k * a->dh_sk + t * a->dh_st, a->dh_sb};
        const struct product weight_grad = {B, g, 1, O, h, a->h_sb, dw, H, dw, H};
        product(&hidden_grad, B, H);
        product(&weight_grad, O, H);
    }
}

int readout_cross_entropy_forward(const struct readout_args *a, int nthreads)
{
    const long P = padded(a->O);
    return for_each_network(readout_forward_network, a, a->K, a->H * P + P + a->B * P, nthreads);
}

int readout_cross_entropy_backward(const struct readout_args *a, int nthreads)
{
    return for_each_network(readout_backward_network, a, a->K, a->B * a->O, nthreads);
}
