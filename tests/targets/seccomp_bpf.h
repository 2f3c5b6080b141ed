/* Hand-written classic BPF for seccomp filters in the test targets: the architecture
 * the filter expects, and instruction macros that cast their operands (quiet under conversion
 * warnings). */
#pragma once
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp_bpf.h: unsupported architecture"
#endif

#define STMT(code, k) BPF_STMT((unsigned short)(code), (unsigned)(k))
#define JUMP(code, k, jt, jf) BPF_JUMP((unsigned short)(code), (unsigned)(k), jt, jf)
