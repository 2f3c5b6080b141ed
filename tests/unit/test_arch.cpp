// lib/arch: site planning, branch encoding and display on hand-written instruction bytes.
// Every byte sequence names its instructions; the ARM64 words were checked against GNU as.
#include "arch/arch.hpp"
#include "arch/arch_impl.hpp"
#include "common/bytes.hpp"
#include "doc/error.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <initializer_list>
#include <string>
#include <string_view>

using namespace hp;
using namespace hp::arch;

namespace {

constexpr std::uint64_t kFunc = 0x401000;

// ARM64 words, stored little-endian.
Bytes words(std::initializer_list<std::uint32_t> ws) {
    Bytes out;
    for (std::uint32_t w : ws)
        append_le32(out, w);
    return out;
}

Bytes cat(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

bool has_note(const SitePlan& plan, std::string_view needle) {
    return std::any_of(plan.notes.begin(), plan.notes.end(),
                       [&](const std::string& n) { return n.find(needle) != std::string::npos; });
}

// The message of the Unsupported error plan_site must throw.
std::string refusal(Arch a, const Bytes& code, std::uint64_t func_size,
                    std::uint64_t addr = kFunc) {
    try {
        const SitePlan plan = plan_site(a, code, func_size, addr);
        FAIL("plan_site accepted: near_length " << plan.near_length);
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::Unsupported);
        return e.what();
    }
    return {};
}

bool contains(const std::string& s, std::string_view needle) {
    return s.find(needle) != std::string::npos;
}

} // namespace

// ---------------------------------------------------------------------------------------
// Names

TEST_CASE("arch_names_round_trip") {
    CHECK(name(Arch::X86_64) == "x86_64");
    CHECK(name(Arch::AArch64) == "aarch64");
    CHECK(from_name("x86_64") == Arch::X86_64);
    CHECK(from_name("aarch64") == Arch::AArch64);
    CHECK_FALSE(from_name("arm64").has_value());
    CHECK_FALSE(from_name("").has_value());
    CHECK(from_elf_machine(62) == Arch::X86_64);   // EM_X86_64
    CHECK(from_elf_machine(183) == Arch::AArch64); // EM_AARCH64
    CHECK_FALSE(from_elf_machine(3).has_value());  // EM_386
    CHECK(from_name(name(host())) == host());
    CHECK(near_branch_size(Arch::X86_64) == 5);
    CHECK(far_branch_size(Arch::X86_64) == 14);
    CHECK(near_branch_size(Arch::AArch64) == 4);
    CHECK(far_branch_size(Arch::AArch64) == 16);
}

// ---------------------------------------------------------------------------------------
// x86-64 site planning

TEST_CASE("x86_endbr64_is_kept_and_site_follows_it") {
    const Bytes code{
        0xf3, 0x0f, 0x1e, 0xfa, // endbr64
        0x55,                   // push rbp
        0x48, 0x89, 0xe5,       // mov rbp, rsp
        0x89, 0x7d, 0xfc,       // mov [rbp-4], edi
        0x8b, 0x45, 0xfc,       // mov eax, [rbp-4]
        0x0f, 0xaf, 0xc0,       // imul eax, eax
        0x5d,                   // pop rbp
        0xc3,                   // ret
    };
    const SitePlan plan = plan_site(Arch::X86_64, code, code.size(), kFunc);
    CHECK(plan.offset == 4);
    CHECK_FALSE(plan.landing_pad);
    CHECK(plan.near_length == 7); // push + mov + mov: whole instructions >= 5
    CHECK(plan.far_length == 14); // ... + mov + imul + pop: exactly 14
    CHECK(has_note(plan, "kept endbr64"));
}

TEST_CASE("x86_site_covers_whole_instructions") {
    const Bytes code{
        0x55,             // push rbp
        0x48, 0x89, 0xe5, // mov rbp, rsp
        0x89, 0x7d, 0xfc, // mov [rbp-4], edi
        0x8b, 0x45, 0xfc, // mov eax, [rbp-4]
        0x5d,             // pop rbp
        0xc3,             // ret
    };
    const SitePlan plan = plan_site(Arch::X86_64, code, code.size(), kFunc);
    CHECK(plan.offset == 0);
    CHECK(plan.near_length == 7); // 1 + 3 + 3: the 5-byte jmp would split the second mov
    CHECK(plan.far_length == 0);  // 12 bytes, no padding
    CHECK(plan.notes.empty());
}

TEST_CASE("x86_short_function_grows_into_int3_padding") {
    Bytes code{
        0x31, 0xc0, // xor eax, eax
        0xc3,       // ret
    };
    code.resize(16, 0xcc); // int3 x 13: alignment padding up to the next function
    const SitePlan plan = plan_site(Arch::X86_64, code, 3, kFunc);
    CHECK(plan.near_length == 5);
    CHECK(plan.far_length == 14);
    CHECK(has_note(plan, "site extends into 2 bytes of int3 padding"));
    CHECK(has_note(plan, "far site extends into 11 bytes of int3 padding"));
}

TEST_CASE("x86_short_function_grows_into_nop_padding") {
    const Bytes code{
        0x31, 0xc0,             // xor eax, eax
        0xc3,                   // ret
        0x0f, 0x1f, 0x40, 0x00, // nop dword ptr [rax+0]
        0x66, 0x90,             // xchg ax, ax (2-byte nop)
        0x90,                   // nop
    };
    const SitePlan plan = plan_site(Arch::X86_64, code, 3, kFunc);
    CHECK(plan.near_length == 7); // the 4-byte nop is taken whole
    CHECK(plan.far_length == 0);  // 10 bytes in all
    CHECK(has_note(plan, "site extends into 4 bytes of nop padding"));
}

TEST_CASE("x86_short_function_without_padding_is_refused") {
    const Bytes code{
        0x31, 0xc0,       // xor eax, eax
        0xc3,             // ret
        0x55,             // push rbp          (the next function)
        0x48, 0x89, 0xe5, // mov rbp, rsp
    };
    const std::string msg = refusal(Arch::X86_64, code, 3);
    CHECK(contains(msg, "needs 5 bytes"));
    CHECK(contains(msg, "0x401000"));
}

TEST_CASE("x86_loop_back_into_site_is_refused") {
    const Bytes code{
        0x31, 0xc0,       // +0  xor eax, eax
        0x83, 0xc0, 0x01, // +2  add eax, 1        <- loop head, inside the site [0, 5)
        0x83, 0xf8, 0x0a, // +5  cmp eax, 10
        0x75, 0xf8,       // +8  jne +2
        0xc3,             // +10 ret
    };
    const std::string msg = refusal(Arch::X86_64, code, code.size());
    CHECK(contains(msg, "branch at 0x401008"));
    CHECK(contains(msg, "targets 0x401002"));
    CHECK(contains(msg, "inside the site [0x401000, 0x401005)"));
}

TEST_CASE("x86_loop_back_to_entry_is_accepted") {
    const Bytes code{
        0x83, 0xc0, 0x01, // +0 add eax, 1        <- loop head: the site start itself
        0x83, 0xf8, 0x0a, // +3 cmp eax, 10
        0x75, 0xf8,       // +6 jne +0
        0xc3,             // +8 ret
    };
    const SitePlan plan = plan_site(Arch::X86_64, code, code.size(), kFunc);
    CHECK(plan.near_length == 6);
    CHECK(plan.far_length == 0);
}

TEST_CASE("x86_branch_into_far_range_drops_far_site") {
    Bytes code{
        0x31, 0xc0,       // +0  xor eax, eax
        0x31, 0xc9,       // +2  xor ecx, ecx
        0x31, 0xd2,       // +4  xor edx, edx      (near site ends at 6)
        0x01, 0xc8,       // +6  add eax, ecx      <- loop head, inside the far site
        0xff, 0xc1,       // +8  inc ecx
        0x83, 0xf9, 0x0a, // +10 cmp ecx, 10
        0x75, 0xf7,       // +13 jne +6
        0xc3,             // +15 ret
    };
    const std::uint64_t size = code.size();
    code.resize(32, 0xcc); // int3 padding
    const SitePlan plan = plan_site(Arch::X86_64, code, size, kFunc);
    CHECK(plan.near_length == 6);
    CHECK(plan.far_length == 0);
    CHECK(has_note(plan, "targets 0x401006"));
}

TEST_CASE("x86_rip_relative_first_instruction_is_noted") {
    const Bytes code{
        0x48, 0x8b, 0x05, 0x00, 0x20, 0x00, 0x00, // mov rax, [rip+0x2000]
        0xc3,                                     // ret
    };
    const SitePlan plan = plan_site(Arch::X86_64, code, code.size(), kFunc);
    CHECK(plan.near_length == 7);
    CHECK(has_note(plan, "rip-relative instruction at 0x401000 in site"));
}

TEST_CASE("x86_read_of_the_site_bytes_is_refused") {
    const Bytes code{
        0x8b, 0x05, 0xfa, 0xff, 0xff, 0xff, // mov eax, [rip-6]: reads its own first 4 bytes
        0xc3,                               // ret
    };
    const std::string msg = refusal(Arch::X86_64, code, code.size());
    CHECK(contains(msg, "overlapping the site"));
}

TEST_CASE("x86_address_of_site_start_is_accepted") {
    const Bytes code{
        0x48, 0x8d, 0x05, 0xf9, 0xff, 0xff, 0xff, // lea rax, [rip-7]: the function's own address
        0xc3,                                     // ret
    };
    const SitePlan plan = plan_site(Arch::X86_64, code, code.size(), kFunc);
    CHECK(plan.near_length == 7);
}

TEST_CASE("x86_undecodable_site_is_refused_but_later_data_only_noted") {
    const Bytes bad_start{
        0x06,       // (push es: invalid in 64-bit mode)
        0x31, 0xc0, // xor eax, eax
        0x31, 0xc9, // xor ecx, ecx
        0xc3,       // ret
    };
    CHECK(contains(refusal(Arch::X86_64, bad_start, bad_start.size()), "cannot decode"));

    const Bytes data_after{
        0x31, 0xc0, // xor eax, eax
        0x31, 0xc9, // xor ecx, ecx
        0x31, 0xd2, // xor edx, edx
        0xc3,       // ret
        0x06, 0x06, // data in code (invalid as instructions)
    };
    const SitePlan plan = plan_site(Arch::X86_64, data_after, data_after.size(), kFunc);
    CHECK(plan.near_length == 6);
    CHECK(has_note(plan, "branch analysis stopped at 0x401007"));
}

TEST_CASE("x86_instruction_running_past_function_end_is_refused") {
    const Bytes code{
        0x31, 0xc0,                   // xor eax, eax
        0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1    (the symbol claims only 4 bytes)
    };
    CHECK(contains(refusal(Arch::X86_64, code, 4), "runs past the end of the function"));
}

// ---------------------------------------------------------------------------------------
// x86-64 encoding

TEST_CASE("x86_encode_site_near_pads_with_int3") {
    SitePlan plan;
    plan.offset = 4;
    plan.near_length = 7;
    plan.far_length = 14;
    const Bytes out = encode_site(Arch::X86_64, plan, kFunc + 4, 0x402000);
    // jmp 0x402000 from 0x401004: rel32 = 0x402000 - 0x401009 = 0xff7
    CHECK(out == Bytes{0xe9, 0xf7, 0x0f, 0x00, 0x00, 0xcc, 0xcc});
}

TEST_CASE("x86_encode_site_far_when_out_of_reach") {
    SitePlan plan;
    plan.near_length = 7;
    plan.far_length = 15;
    const Bytes out = encode_site(Arch::X86_64, plan, kFunc, 0x7f0012345678);
    CHECK(out == Bytes{
                     0xff, 0x25, 0x00, 0x00, 0x00, 0x00,             // jmp [rip+0]
                     0x78, 0x56, 0x34, 0x12, 0x00, 0x7f, 0x00, 0x00, // .quad 0x7f0012345678
                     0xcc,                                           // int3
                 });
    CHECK(encode_far_jump(Arch::X86_64, 0x7f0012345678) == Bytes(out.begin(), out.end() - 1));
}

TEST_CASE("x86_encode_site_refuses_when_neither_fits") {
    SitePlan plan;
    plan.near_length = 6;
    plan.far_length = 0;
    try {
        (void)encode_site(Arch::X86_64, plan, kFunc, 0x7f0012345678);
        FAIL("encode_site accepted an unreachable destination");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::Unsupported);
        CHECK(contains(e.what(), "0x7f0012345678"));
    }
}

TEST_CASE("x86_near_reach_is_rel32_from_the_next_instruction") {
    const std::uint64_t from = 0x100000000;
    const std::uint64_t next = from + 5;
    CHECK(near_reachable(Arch::X86_64, from, next + 0x7fffffff));
    CHECK_FALSE(near_reachable(Arch::X86_64, from, next + 0x80000000));
    CHECK(near_reachable(Arch::X86_64, from, next - 0x80000000));
    CHECK_FALSE(near_reachable(Arch::X86_64, from, next - 0x80000001));
    CHECK_FALSE(near_reachable(Arch::X86_64, ~std::uint64_t{0} - 2, 0)); // no wrap-around

    SitePlan plan;
    plan.near_length = 5;
    CHECK(encode_site(Arch::X86_64, plan, from, next + 0x7fffffff) ==
          Bytes{0xe9, 0xff, 0xff, 0xff, 0x7f}); // jmp rel32 +2 GiB - 1
    CHECK(encode_site(Arch::X86_64, plan, from, next - 0x80000000) ==
          Bytes{0xe9, 0x00, 0x00, 0x00, 0x80}); // jmp rel32 -2 GiB
}

TEST_CASE("x86_disassemble_intel_syntax") {
    const Bytes code{
        0x55,                         // push rbp
        0x48, 0x89, 0xe5,             // mov rbp, rsp
        0xe9, 0xf7, 0x0f, 0x00, 0x00, // jmp 0x402000 (from 0x401004)
        0x06,                         // (invalid)
        0x90,                         // nop (not reached: stops at the bad byte)
    };
    const auto insns = disassemble(Arch::X86_64, code, kFunc);
    REQUIRE(insns.size() == 4);
    CHECK(insns[0].text == "push rbp");
    CHECK(insns[1].text == "mov rbp, rsp");
    CHECK(insns[1].addr == kFunc + 1);
    CHECK(insns[1].bytes == Bytes{0x48, 0x89, 0xe5});
    CHECK(insns[2].text == "jmp 0x402000");
    CHECK(insns[3].text == "(bad)");
    CHECK(insns[3].bytes == Bytes{0x06});
    CHECK(disassemble(Arch::X86_64, code, kFunc, 2).size() == 2);
}

// ---------------------------------------------------------------------------------------
// ARM64 decoder

TEST_CASE("a64_decoder_classifies_branches_and_pc_relative_references") {
    using detail::aarch64::Class;
    using detail::aarch64::decode;
    struct Case {
        std::uint32_t word;
        std::uint64_t pc;
        Class cls;
        std::uint64_t target;
        std::uint32_t size;
        const char* text;
    };
    // Words and targets as GNU as/objdump give them.
    const Case cases[] = {
        {0x14000040, 0x1000, Class::Branch, 0x1100, 0, "b #0x1100"},
        {0x97fffff0, 0x40, Class::Branch, 0x0, 0, "bl #0x0"},
        {0x54000001, 0x50, Class::Branch, 0x50, 0, "b.ne #0x50"},
        {0x54000050, 0x1000, Class::Branch, 0x1008, 0, "bc.eq #0x1008"},
        {0xb4ffffe0, 0x54, Class::Branch, 0x50, 0, "cbz x0, #0x50"},
        {0x35ffffc0, 0x58, Class::Branch, 0x50, 0, "cbnz w0, #0x50"},
        {0x362fffa3, 0x5c, Class::Branch, 0x50, 0, "tbz w3, #5, #0x50"},
        {0xb747ff83, 0x60, Class::Branch, 0x50, 0, "tbnz x3, #40, #0x50"},
        {0x10ffff60, 0x64, Class::Adr, 0x50, 0, "adr x0, #0x50"},
        {0x90000000, 0x1068, Class::Adrp, 0x1000, 0, "adrp x0, #0x1000"},
        {0x18ffff21, 0x6c, Class::LoadLiteral, 0x50, 4, "ldr w1, #0x50"},
        {0x58ffff01, 0x70, Class::LoadLiteral, 0x50, 8, "ldr x1, #0x50"},
        {0x98fffee1, 0x74, Class::LoadLiteral, 0x50, 4, "ldrsw x1, #0x50"},
        {0x1cfffec1, 0x78, Class::LoadLiteral, 0x50, 4, "ldr s1, #0x50"},
        {0x5cfffea1, 0x7c, Class::LoadLiteral, 0x50, 8, "ldr d1, #0x50"},
        {0x9cfffe81, 0x80, Class::LoadLiteral, 0x50, 16, "ldr q1, #0x50"},
        {0xd8fffe60, 0x84, Class::LoadLiteral, 0x50, 0, "prfm #0, #0x50"},
        {0xd65f03c0, 0, Class::Indirect, 0, 0, "ret"},
        {0xd61f0200, 0, Class::Indirect, 0, 0, "br x16"},
        {0xd65f0bff, 0, Class::Indirect, 0, 0, "retaa"},
        {0xd65f0fff, 0, Class::Indirect, 0, 0, "retab"},
        {0xd61f087f, 0, Class::Indirect, 0, 0, "braaz x3"},
        {0xd63f087f, 0, Class::Indirect, 0, 0, "blraaz x3"},
        {0xd71f0864, 0, Class::Indirect, 0, 0, "braa x3, x4"},
        {0xd73f0c7f, 0, Class::Indirect, 0, 0, "blrab x3, sp"},
        {0xd69f0bff, 0, Class::Indirect, 0, 0, "eretaa"},
        {0xd503245f, 0, Class::Hint, 0, 0, "bti c"},
        {0xd503249f, 0, Class::Hint, 0, 0, "bti j"},
        {0xd50324df, 0, Class::Hint, 0, 0, "bti jc"},
        {0xd503233f, 0, Class::Hint, 0, 0, "paciasp"},
        {0xd503237f, 0, Class::Hint, 0, 0, "pacibsp"},
        {0xd50323bf, 0, Class::Hint, 0, 0, "autiasp"},
        {0xd50323ff, 0, Class::Hint, 0, 0, "autibsp"},
        {0xd503201f, 0, Class::Hint, 0, 0, "nop"},
        {0xd503261f, 0, Class::Hint, 0, 0, "hint #0x30"}, // unallocated hint: executes as nop
        {0xd4000001, 0, Class::Other, 0, 0, "svc #0"},
        {0xd4207d00, 0, Class::Other, 0, 0, "brk #0x3e8"},
        {0x00000000, 0, Class::Other, 0, 0, "udf #0"},
        {0x88e0fc41, 0, Class::Other, 0, 0, "casal w0, w1, [x2]"},
        {0x08a0fc41, 0, Class::Other, 0, 0, "caslb w0, w1, [x2]"},
        {0x48207c82, 0, Class::Other, 0, 0, "casp x0, x1, x2, x3, [x4]"},
        {0xf8e10040, 0, Class::Other, 0, 0, "ldaddal x1, x0, [x2]"},
        {0x78204041, 0, Class::Other, 0, 0, "ldsmaxh w0, w1, [x2]"},
        {0xb820003f, 0, Class::Other, 0, 0, "stadd w0, [x1]"},
        {0xf8e08041, 0, Class::Other, 0, 0, "swpal x0, x1, [x2]"},
        {0xb8bfc020, 0, Class::Other, 0, 0, "ldapr w0, [x1]"},
        {0xd5033bbf, 0, Class::Other, 0, 0, ""}, // dmb ish (display is Capstone's)
        {0xd51bd040, 0, Class::Other, 0, 0, ""}, // msr tpidr_el0, x0
        {0xd50b7b20, 0, Class::Other, 0, 0, ""}, // dc cvau, x0
        {0x04a00000, 0, Class::Other, 0, 0, ""}, // add z0.s, z0.s, z0.s (SVE group)
        {0xa9bf7bfd, 0, Class::Other, 0, 0, ""}, // stp x29, x30, [sp, #-16]!
        // Branch/exception/system group, not recognised: could be a branch.
        // bits 31:24 = f4 and 55: unallocated in ARMv8.0, where later versions add branches
        {0xf4010000, 0, Class::Unknown, 0, 0, ""},
        {0x5500001f, 0, Class::Unknown, 0, 0, ""},
        {0xd5233060, 0, Class::Unknown, 0, 0, ""}, // system space with op0 = 00, L = 1 (tstart)
        {0xd4000002 | 1u << 2, 0, Class::Unknown, 0, 0, ""}, // exception space, op2 != 0
        {0xd6ff03e0, 0, Class::Unknown, 0, 0, ""},           // branch (register), opc = 0111
    };
    for (const Case& c : cases) {
        CAPTURE(c.word);
        const auto d = decode(c.word, c.pc);
        CHECK(d.cls == c.cls);
        CHECK(d.text == c.text);
        if (c.cls == Class::Branch || c.cls == Class::Adr || c.cls == Class::Adrp ||
            c.cls == Class::LoadLiteral) {
            CHECK(d.target == c.target);
            CHECK(d.size == c.size);
        }
    }
}

// ---------------------------------------------------------------------------------------
// ARM64 site planning

TEST_CASE("a64_bti_c_is_kept_and_site_follows_it") {
    const Bytes code = words({
        0xd503245f, // bti c
        0xa9bf7bfd, // stp x29, x30, [sp, #-16]!
        0x910003fd, // mov x29, sp
        0xa8c17bfd, // ldp x29, x30, [sp], #16
        0xd2800000, // mov x0, #0
        0xd65f03c0, // ret
    });
    const SitePlan plan = plan_site(Arch::AArch64, code, code.size(), kFunc);
    CHECK(plan.offset == 4);
    CHECK_FALSE(plan.landing_pad);
    CHECK(plan.near_length == 4);
    CHECK(plan.far_length == 16);
    CHECK(has_note(plan, "kept bti c"));
}

TEST_CASE("a64_paciasp_is_replaced_by_bti_c") {
    const Bytes code = words({
        0xd503233f, // paciasp
        0xa9bf7bfd, // stp x29, x30, [sp, #-16]!
        0x910003fd, // mov x29, sp
        0xa8c17bfd, // ldp x29, x30, [sp], #16
        0xd50323bf, // autiasp
        0xd65f03c0, // ret
    });
    const SitePlan plan = plan_site(Arch::AArch64, code, code.size(), kFunc);
    CHECK(plan.offset == 0);
    CHECK(plan.landing_pad);
    CHECK(plan.near_length == 8); // bti c; b
    CHECK(plan.far_length == 20); // bti c; ldr x16, #8; br x16; .quad
    CHECK(has_note(plan, "paciasp at entry not kept"));

    // b from 0x401004 (behind the bti c) to 0x401100: imm26 = 0xfc / 4 = 0x3f
    CHECK(encode_site(Arch::AArch64, plan, kFunc, 0x401100) == words({
                                                                   0xd503245f, // bti c
                                                                   0x1400003f, // b 0x401100
                                                               }));
    CHECK(encode_site(Arch::AArch64, plan, kFunc, 0x7f0012345678) ==
          words({
              0xd503245f,             // bti c
              0x58000050,             // ldr x16, #8
              0xd61f0200,             // br x16
              0x12345678, 0x00007f00, // .quad 0x7f0012345678
          }));
}

TEST_CASE("a64_bti_c_then_paciasp_keeps_bti_and_overwrites_paciasp") {
    const Bytes code = words({
        0xd503245f, // bti c
        0xd503233f, // paciasp
        0xa9bf7bfd, // stp x29, x30, [sp, #-16]!
        0x910003fd, // mov x29, sp
        0xa8c17bfd, // ldp x29, x30, [sp], #16
        0xd50323bf, // autiasp
        0xd65f03c0, // ret
    });
    const SitePlan plan = plan_site(Arch::AArch64, code, code.size(), kFunc);
    CHECK(plan.offset == 4);
    CHECK_FALSE(plan.landing_pad); // the kept bti c is the landing pad
    CHECK(plan.near_length == 4);  // covers the paciasp
    CHECK(plan.far_length == 16);
    CHECK(encode_site(Arch::AArch64, plan, kFunc + 4, kFunc + 0x104) ==
          words({0x14000040})); // b +0x100
}

TEST_CASE("a64_armv81_atomics_in_site_are_accepted") {
    const Bytes code = words({
        0x88e0fc41, // casal w0, w1, [x2]     (Capstone 4 cannot decode these)
        0xf8e10040, // ldaddal x1, x0, [x2]
        0xb8bfc020, // ldapr w0, [x1]
        0xd65f03c0, // ret
    });
    const SitePlan plan = plan_site(Arch::AArch64, code, code.size(), kFunc);
    CHECK(plan.near_length == 4);
    CHECK(plan.far_length == 16);
}

TEST_CASE("a64_unknown_branch_group_encoding_is_refused") {
    const std::string in_site = refusal(Arch::AArch64,
                                        words({
                                            0xf4010000, // (branch group, unknown to us)
                                            0xd65f03c0, // ret
                                        }),
                                        8);
    CHECK(contains(in_site, "0x401000"));
    CHECK(contains(in_site, ".inst 0xf4010000"));
    CHECK(contains(in_site, "could be a branch"));

    // Anywhere in the function, not only in the site: it could jump into the site.
    const std::string later = refusal(Arch::AArch64,
                                      words({
                                          0xd2800000, // mov x0, #0
                                          0xd503201f, // nop
                                          0x5500001f, // (branch group, unknown to us)
                                          0xd65f03c0, // ret
                                      }),
                                      16);
    CHECK(contains(later, "0x401008"));

    // The same kind of novelty outside the branch group is a non-branch.
    const Bytes sve = words({
        0x04a00000, // add z0.s, z0.s, z0.s (SVE)
        0xd65f03c0, // ret
    });
    CHECK(plan_site(Arch::AArch64, sve, sve.size(), kFunc).near_length == 4);
}

TEST_CASE("a64_branch_into_landing_pad_site_is_refused") {
    // The paciasp site is [0, 8). A branch to +4 comes from the middle of the old function
    // and would land on the `b` written after `bti c`: strictly inside the site.
    const std::uint32_t branches[] = {
        0x54ffffc1, // +12: b.ne  +4
        0xb4ffffc0, // +12: cbz x0, +4
        0x362fffc3, // +12: tbz w3, #5, +4
    };
    for (std::uint32_t branch : branches) {
        CAPTURE(branch);
        const Bytes code = words({
            0xd503233f, // +0  paciasp
            0xa9bf7bfd, // +4  stp x29, x30, [sp, #-16]!     <- target
            0x910003fd, // +8  mov x29, sp
            branch,     // +12
            0xa8c17bfd, // +16 ldp x29, x30, [sp], #16
            0xd50323bf, // +20 autiasp
            0xd65f03c0, // +24 ret
        });
        const std::string msg = refusal(Arch::AArch64, code, code.size());
        CHECK(contains(msg, "branch at 0x40100c"));
        CHECK(contains(msg, "targets 0x401004"));
        CHECK(contains(msg, "inside the site [0x401000, 0x401008)"));
    }
}

TEST_CASE("a64_branch_to_site_start_is_accepted") {
    const Bytes code = words({
        0xd503245f, // +0  bti c
        0x91000400, // +4  add x0, x0, #1       <- loop head = site start
        0xf100281f, // +8  cmp x0, #10
        0x54ffffc1, // +12 b.ne +4
        0xd65f03c0, // +16 ret
    });
    const SitePlan plan = plan_site(Arch::AArch64, code, code.size(), kFunc);
    CHECK(plan.offset == 4);
    CHECK(plan.near_length == 4);
    CHECK(plan.far_length == 16); // the target is the far site's start too
}

TEST_CASE("a64_branch_into_far_range_drops_far_site") {
    const Bytes code = words({
        0xd2800000, // +0  mov x0, #0
        0x91000400, // +4  add x0, x0, #1       <- loop head, inside the far site [0, 16)
        0xf100281f, // +8  cmp x0, #10
        0x54ffffc1, // +12 b.ne +4
        0xd65f03c0, // +16 ret
    });
    const SitePlan plan = plan_site(Arch::AArch64, code, code.size(), kFunc);
    CHECK(plan.near_length == 4); // a 4-byte site has no inside to land in
    CHECK(plan.far_length == 0);
    CHECK(has_note(plan, "targets 0x401004"));
}

TEST_CASE("a64_literal_load_of_site_is_refused") {
    const Bytes code = words({
        0xd503201f, // +0 nop
        0x18ffffe1, // +4 ldr w1, +0       (reads the word the branch replaces)
        0xd65f03c0, // +8 ret
    });
    CHECK(contains(refusal(Arch::AArch64, code, code.size()), "overlapping the site"));
}

TEST_CASE("a64_ret_alone_fits_near_and_needs_padding_for_far") {
    const Bytes ret = words({0xd65f03c0}); // ret
    const SitePlan alone = plan_site(Arch::AArch64, ret, ret.size(), kFunc);
    CHECK(alone.near_length == 4);
    CHECK(alone.far_length == 0);
    CHECK(alone.notes.empty());

    const Bytes padded = cat(ret, words({
                                      0xd503201f, // nop
                                      0x00000000, // udf #0
                                      0xd503201f, // nop
                                  }));
    const SitePlan plan = plan_site(Arch::AArch64, padded, 4, kFunc);
    CHECK(plan.near_length == 4);
    CHECK(plan.far_length == 16);
    CHECK(has_note(plan, "far site extends into 12 bytes of nop/udf padding"));
    CHECK(encode_site(Arch::AArch64, plan, kFunc, 0x7f0012345678) ==
          words({
              0x58000050,             // ldr x16, #8
              0xd61f0200,             // br x16
              0x12345678, 0x00007f00, // .quad 0x7f0012345678
          }));

    const Bytes next_function = cat(ret, words({0xd503245f})); // bti c of the next function
    CHECK(plan_site(Arch::AArch64, next_function, 4, kFunc).far_length == 0);
}

TEST_CASE("a64_paciasp_alone_needs_padding_for_its_branch") {
    const Bytes code = words({
        0xd503233f, // paciasp       (a 4-byte function that only signs: contrived)
        0xd503245f, // bti c         (the next function)
    });
    CHECK(contains(refusal(Arch::AArch64, code, 4), "needs 8 bytes"));
}

TEST_CASE("a64_misaligned_function_is_refused") {
    const Bytes code = words({0xd65f03c0, 0xd503201f}); // ret; nop
    CHECK(contains(refusal(Arch::AArch64, code, 6), "aligned"));
    CHECK(contains(refusal(Arch::AArch64, code, 4, kFunc + 2), "aligned"));
}

// ---------------------------------------------------------------------------------------
// ARM64 encoding

TEST_CASE("a64_near_branch_reach_is_128_mib") {
    const std::uint64_t from = 0x10000000;
    CHECK(near_reachable(Arch::AArch64, from, from + 0x8000000 - 4));
    CHECK_FALSE(near_reachable(Arch::AArch64, from, from + 0x8000000));
    CHECK(near_reachable(Arch::AArch64, from, from - 0x8000000));
    CHECK_FALSE(near_reachable(Arch::AArch64, from, from - 0x8000004));
    CHECK_FALSE(near_reachable(Arch::AArch64, from, from + 2)); // not a whole word away

    SitePlan plan;
    plan.near_length = 4;
    CHECK(encode_site(Arch::AArch64, plan, 0x400000, 0x400100) == words({0x14000040})); // b +0x100
    CHECK(encode_site(Arch::AArch64, plan, 0x400000, 0x3ffffc) == words({0x17ffffff})); // b -4
    CHECK(encode_site(Arch::AArch64, plan, from, from + 0x8000000 - 4) ==
          words({0x15ffffff})); // b +128 MiB - 4
    CHECK(encode_site(Arch::AArch64, plan, from, from - 0x8000000) ==
          words({0x16000000})); // b -128 MiB
    CHECK_THROWS_AS((void)encode_site(Arch::AArch64, plan, from, from + 0x8000000), Error);
}

TEST_CASE("a64_near_site_pads_longer_plans_with_udf") {
    SitePlan plan;
    plan.near_length = 8;
    CHECK(encode_site(Arch::AArch64, plan, 0x400000, 0x400100) == words({
                                                                      0x14000040, // b +0x100
                                                                      0x00000000, // udf #0
                                                                  }));
}

TEST_CASE("a64_far_jump_bytes") {
    CHECK(encode_far_jump(Arch::AArch64, 0x0000123456789abc) ==
          Bytes{
              0x50, 0x00, 0x00, 0x58,                         // ldr x16, #8
              0x00, 0x02, 0x1f, 0xd6,                         // br x16
              0xbc, 0x9a, 0x78, 0x56, 0x34, 0x12, 0x00, 0x00, // .quad 0x123456789abc
          });
}

// ---------------------------------------------------------------------------------------
// ARM64 display

TEST_CASE("a64_disassemble_names_what_capstone_4_cannot") {
    const Bytes code = cat(words({
                               0xd503245f, // bti c         (Capstone: hint #0x22)
                               0xd503233f, // paciasp       (Capstone: hint #0x19)
                               0xa9bf7bfd, // stp x29, x30, [sp, #-16]!
                               0x88e0fc41, // casal w0, w1, [x2]  (Capstone 4: fails)
                               0xd65f0bff, // retaa               (Capstone 4: fails)
                               0xf4010000, // unknown to both
                               0xd65f03c0, // ret
                           }),
                           Bytes{0x1f, 0x20}); // half a word
    const auto insns = disassemble(Arch::AArch64, code, kFunc);
    REQUIRE(insns.size() == 8);
    CHECK(insns[0].text == "bti c");
    CHECK(insns[1].text == "paciasp");
    CHECK(insns[2].text == "stp x29, x30, [sp, #-0x10]!");
    CHECK(insns[3].text == "casal w0, w1, [x2]");
    CHECK(insns[3].addr == kFunc + 12);
    CHECK(insns[3].bytes == Bytes{0x41, 0xfc, 0xe0, 0x88});
    CHECK(insns[4].text == "retaa");
    CHECK(insns[5].text == ".inst 0xf4010000");
    CHECK(insns[6].text == "ret");
    CHECK(insns[7].text == "(bad)");
    CHECK(insns[7].bytes == Bytes{0x1f, 0x20});
    CHECK(disassemble(Arch::AArch64, code, kFunc, 3).size() == 3);
}
