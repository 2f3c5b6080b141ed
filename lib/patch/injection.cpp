#include "patch/injection.hpp"

#include "arch/syscalls.hpp"

#include <sys/mman.h>

namespace hp::patch {

std::vector<ptrace::InjectedCall> injected_calls(arch::Arch a, const InjectionLayout& l) {
    constexpr std::uint64_t kFd = 3;
    const auto& nr = arch::syscalls(a);
    const std::uint64_t fixed_noreplace = MAP_PRIVATE | kMapFixedNoReplace;
    std::vector<ptrace::InjectedCall> calls = {
        {nr.memfd_create, {0, kMfdCloexec, 0, 0, 0, 0}, "memfd_create"},
        {nr.ftruncate, {kFd, l.total + l.page * l.thunks.size(), 0, 0, 0, 0}, "ftruncate"},
        {nr.mmap, {l.base, l.total, PROT_READ, fixed_noreplace, kFd, 0}, "mmap"}};
    for (const auto& p : l.pieces) {
        if (!l.needs_mmap(p)) continue;
        std::uint64_t prot = PROT_READ | (p.exec ? PROT_EXEC : 0) | (p.write ? PROT_WRITE : 0);
        calls.push_back({nr.mmap,
                         {p.addr, p.size, prot, MAP_PRIVATE | MAP_FIXED, kFd,
                          l.payload_offset + (p.addr - l.payload_base)},
                         "mmap"});
    }
    for (const auto& th : l.thunks)
        calls.push_back(
            {nr.mmap,
             {th.addr, l.page, PROT_READ | PROT_EXEC, fixed_noreplace, kFd, th.file_offset},
             "mmap"});
    calls.push_back({nr.close, {kFd, 0, 0, 0, 0, 0}, "close"});
    // The undo path: the mapping, then each thunk page.
    calls.push_back({nr.munmap, {l.base, l.total, 0, 0, 0, 0}, "munmap"});
    for (const auto& th : l.thunks)
        calls.push_back({nr.munmap, {th.addr, l.page, 0, 0, 0, 0}, "munmap"});
    return calls;
}

InjectionLayout typical_layout(std::uint64_t page) {
    InjectionLayout l;
    l.page = page;
    l.total = 16 * page;
    l.payload_offset = 2 * page; // the record's reservation
    l.payload_base = l.base + l.payload_offset;
    l.pieces = {{l.payload_base, 4 * page, true, false},
                {l.payload_base + 4 * page, 2 * page, false, true}};
    l.thunks = {{0, l.total}};
    return l;
}

} // namespace hp::patch
