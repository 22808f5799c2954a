/* Fused pointwise work of one LSTM time step for a population of K networks (float32, CPU).
 *
 * Compiled and loaded with ctypes by fused_cpu.py; the formulas are those of LSTMRecurrence in
 * lstm_kernel.py (gate order i, f, g, o). Tensors are viewed as K x B rows of H (or 4H) floats;
 * an argument with a (K, B) stride pair may be a strided view, the others are contiguous.
 *
 * exp is a branch-free polynomial (Cephes expf, about 1 ulp) so that the row loop vectorises:
 * glibc's expf is only vectorised (libmvec) under -ffast-math, and scalar it is slower than the
 * unfused torch ops. tanh(x) = 2 sigmoid(2x) - 1, as in the pure-PyTorch path.
 *
 * Rows of the strided views (a time step of a (K, B, T, n) tensor) lie a page or more apart, so
 * the hardware prefetcher does not follow them; the row loops prefetch them PREFETCH_ROWS rows
 * ahead (measured 135 -> 117 us for a forward step reading the strided input projection).
 *
 * The caller describes a whole sequence once (forward_args, backward_args: base pointers and
 * time strides) and then calls lstm_*_step(args, t) per step.
 *
 * On x86-64 the row kernels are cloned for AVX-512, AVX2+FMA and baseline SSE2 and picked at
 * load time, so the library runs on any x86-64 machine without -march=native.
 */

#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#endif
#endif
#ifndef CLONES
#define CLONES
#endif
#ifdef __GNUC__
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

/* Below this many elements per step the OpenMP fork/join costs more than it saves. */
#define PARALLEL_MIN_ELEMENTS 16384
#ifndef PREFETCH_ROWS
#define PREFETCH_ROWS 4
#endif

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

/* One time step: what the row kernels read. */
struct forward_step {
    long B, H;
    const float *act;    /* (K, B, 4H) recurrent part of the pre-activations, contiguous */
    const float *proj;   /* (K, B, 4H) input part, strides p_sk, p_sb; added to act */
    long p_sk, p_sb;
    const float *c_prev; /* (K, B, H), strides c_sk, c_sb; must not overlap c_new */
    long c_sk, c_sb;
    float *c_new;        /* (K, B, H) contiguous */
    float *h;            /* (K, B, H), strides h_sk, h_sb */
    long h_sk, h_sb;
    float *factors;      /* (K, B, 4, H) contiguous */
    float *cell_from_hidden, *forget; /* (K, B, H) contiguous */
};

struct backward_step {
    long B, H;
    const float *dh;     /* (K, B, H) contiguous */
    const float *grad_h; /* (K, B, H), strides g_sk, g_sb, added to dh; may be NULL */
    long g_sk, g_sb;
    float *dc;           /* (K, B, H) contiguous, updated in place to dc_prev */
    const float *factors, *cell_from_hidden, *forget;
    float *grad_gates;   /* (K, B, 4H), strides gp_sk, gp_sb */
    long gp_sk, gp_sb;
};

/* A whole sequence of T steps, set up once by the caller; lstm_forward_step(args, t) runs step
 * t. Per-step tensors are (K, B, ...) with a time stride (*_st) or time-major and contiguous. */
struct forward_args {
    long K, B, H;
    const float *act;                 /* (K, B, 4H) contiguous, the current step's bmm result */
    const float *proj;                /* (K, B, T, 4H), strides p_sk, p_sb, p_st */
    long p_sk, p_sb, p_st;
    const float *c0;                  /* (K, B, H), strides c_sk, c_sb: c_prev of step 0 */
    long c_sk, c_sb;
    float *cells[2];                  /* (K, B, H) contiguous: step t writes cells[t % 2] */
    float *h;                         /* (K, B, T, H), strides h_sk, h_sb, h_st */
    long h_sk, h_sb, h_st;
    float *factors;                   /* (T, K, B, 4, H) contiguous */
    float *cell_from_hidden, *forget; /* (T, K, B, H) contiguous */
};

struct backward_args {
    long K, B, H;
    const float *dh;                  /* (K, B, H) contiguous */
    const float *grad_h;              /* (K, B, T, H), strides g_sk, g_sb, g_st; may be NULL */
    long g_sk, g_sb, g_st;
    float *dc;                        /* (K, B, H) contiguous */
    const float *factors, *cell_from_hidden, *forget; /* time-major, as in forward_args */
    float *grad_gates;                /* (K, B, T, 4H), strides gp_sk, gp_sb, gp_st */
    long gp_sk, gp_sb, gp_st;
};

/* Gates from the pre-activations x + p (4H); the new cell state, h and the saved factors. */
INLINE void forward_row(long H, const float *restrict x, const float *restrict p,
                        const float *restrict c_prev, float *restrict c_new, float *restrict h,
                        float *restrict fac, float *restrict cfh, float *restrict fgt)
{
    for (long j = 0; j < H; ++j) {
        const float i = sigmoid(x[j] + p[j]);
        const float f = sigmoid(x[H + j] + p[H + j]);
        const float g = 2.0f * sigmoid(2.0f * (x[2 * H + j] + p[2 * H + j])) - 1.0f;
        const float o = sigmoid(x[3 * H + j] + p[3 * H + j]);
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

CLONES static void forward_rows(const void *args, long r0, long r1)
{
    const struct forward_step *a = args;
    const long B = a->B, H = a->H;
    for (long r = r0; r < r1; ++r) {
        const long k = r / B, b = r % B;
        if (r + PREFETCH_ROWS < r1) {
            const long kn = (r + PREFETCH_ROWS) / B, bn = (r + PREFETCH_ROWS) % B;
            const float *next = a->proj + kn * a->p_sk + bn * a->p_sb;
            for (long j = 0; j < 4 * H; j += 16)
                __builtin_prefetch(next + j);
        }
        forward_row(H, a->act + r * 4 * H, a->proj + k * a->p_sk + b * a->p_sb,
                    a->c_prev + k * a->c_sk + b * a->c_sb, a->c_new + r * H,
                    a->h + k * a->h_sk + b * a->h_sb, a->factors + r * 4 * H,
                    a->cell_from_hidden + r * H, a->forget + r * H);
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

CLONES static void backward_rows(const void *args, long r0, long r1)
{
    const struct backward_step *a = args;
    const long B = a->B, H = a->H;
    for (long r = r0; r < r1; ++r) {
        const long k = r / B, b = r % B;
        if (r + PREFETCH_ROWS < r1) {
            const long kn = (r + PREFETCH_ROWS) / B, bn = (r + PREFETCH_ROWS) % B;
            float *next = a->grad_gates + kn * a->gp_sk + bn * a->gp_sb;
            for (long j = 0; j < 4 * H; j += 16)
                __builtin_prefetch(next + j, 1);
            if (a->grad_h)
                for (long j = 0; j < H; j += 16)
                    __builtin_prefetch(a->grad_h + kn * a->g_sk + bn * a->g_sb + j);
        }
        const float *grad_h = a->grad_h ? a->grad_h + k * a->g_sk + b * a->g_sb : 0;
        backward_row(H, a->dh + r * H, grad_h, a->dc + r * H, a->factors + r * 4 * H,
                     a->cell_from_hidden + r * H, a->forget + r * H,
                     a->grad_gates + k * a->gp_sk + b * a->gp_sb);
    }
}

/* Runs kernel over the K*B rows, split into one contiguous range per thread. */
static void run_rows(void (*kernel)(const void *, long, long), const void *args, long rows,
                     long H, int nthreads)
{
#ifdef _OPENMP
    if (nthreads > 1 && rows * H >= PARALLEL_MIN_ELEMENTS) {
#pragma omp parallel num_threads(nthreads)
        {
            const long t = omp_get_thread_num(), n = omp_get_num_threads();
            kernel(args, rows * t / n, rows * (t + 1) / n);
        }
        return;
    }
#endif
    (void)H, (void)nthreads;
    kernel(args, 0, rows);
}

void lstm_forward_step(const struct forward_args *a, long t, int nthreads)
{
    const long rows = a->K * a->B, H = a->H;
    const struct forward_step step = {
        a->B, H, a->act, a->proj + t * a->p_st, a->p_sk, a->p_sb,
        t == 0 ? a->c0 : a->cells[(t - 1) % 2], t == 0 ? a->c_sk : a->B * H, t == 0 ? a->c_sb : H,
        a->cells[t % 2], a->h + t * a->h_st, a->h_sk, a->h_sb, a->factors + t * rows * 4 * H,
        a->cell_from_hidden + t * rows * H, a->forget + t * rows * H};
    run_rows(forward_rows, &step, rows, H, nthreads);
}

void lstm_backward_step(const struct backward_args *a, long t, int nthreads)
{
    const long rows = a->K * a->B, H = a->H;
    const struct backward_step step = {
        a->B, H, a->dh, a->grad_h ? a->grad_h + t * a->g_st : 0, a->g_sk, a->g_sb, a->dc,
        a->factors + t * rows * 4 * H, a->cell_from_hidden + t * rows * H,
        a->forget + t * rows * H, a->grad_gates + t * a->gp_st, a->gp_sk, a->gp_sb};
    run_rows(backward_rows, &step, rows, H, nthreads);
}
