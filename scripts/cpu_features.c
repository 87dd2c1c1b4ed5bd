/* Print the llama.cpp (GGML_*) x86-64 features this CPU has AND the OS lets a process use, on one line.
 *
 * CPUID says what the CPU implements; XCR0 (read with xgetbv) says which register states the OS saves,
 * i.e. which instructions a process may execute without faulting: AVX needs the SSE+YMM states, AVX-512
 * the opmask and both ZMM states. AMX is never printed: ponder's llama.cpp build never enables it, because
 * a virtual machine can advertise it (CPUID, XCR0, /proc/cpuinfo) and still fault at the first `ldtilecfg`.
 * Used by scripts/llamacpp_build.py; compiled with the same C compiler that builds llama.cpp.
 */
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>

static uint64_t xcr0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

#define BIT(reg, n) (((reg) >> (n)) & 1u)

int main(void) {
    unsigned a, b, c, d;
    unsigned c1 = 0, b7 = 0, c7 = 0, a71 = 0, max7 = 0;
    if (__get_cpuid(1, &a, &b, &c, &d)) c1 = c;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) { b7 = b; c7 = c; max7 = a; }
    if (max7 >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) a71 = a;

    uint64_t xcr = BIT(c1, 27) ? xcr0() : 0;             /* OSXSAVE: the OS manages XSAVE state */
    int avx_os = (xcr & 0x6) == 0x6;                      /* SSE + YMM */
    int avx512_os = avx_os && (xcr & 0xe0) == 0xe0;       /* opmask + ZMM_Hi256 + Hi16_ZMM */
    int avx512 = avx512_os && BIT(b7, 16) && BIT(b7, 28) && BIT(b7, 31) && BIT(b7, 17) && BIT(b7, 30);

    if (BIT(c1, 20)) printf("SSE42 ");
    if (avx_os && BIT(c1, 28)) printf("AVX ");
    if (avx_os && BIT(c1, 29)) printf("F16C ");
    if (avx_os && BIT(c1, 12)) printf("FMA ");
    if (avx_os && BIT(b7, 5)) printf("AVX2 ");
    if (BIT(b7, 8)) printf("BMI2 ");
    if (avx_os && BIT(a71, 4)) printf("AVX_VNNI ");
    if (avx512) printf("AVX512 ");
    if (avx512 && BIT(c7, 1)) printf("AVX512_VBMI ");
    if (avx512 && BIT(c7, 11)) printf("AVX512_VNNI ");
    if (avx512 && BIT(a71, 5)) printf("AVX512_BF16 ");
    printf("\n");
    return 0;
}
