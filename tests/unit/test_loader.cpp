// lib/loader: payload layout and relocation on the real patch fixture, free-range search on
// hand-written maps, and symbol resolution against a real process (the loader victim),
// checked against what the victim's own dynamic loader answers through dlsym/dlvsym.
#include "arch/arch.hpp"
#include "arch/reloc.hpp"
#include "common/bytes.hpp"
#include "common/file.hpp"
#include "doc/error.hpp"
#include "elf/elf_file.hpp"
#include "loader/loader.hpp"
#include "proc/process.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

using namespace hp;
using namespace hp::loader;

namespace {

constexpr std::uint64_t kBase = 0x7f0000000000;

bool contains(const std::string& s, std::string_view needle) {
    return s.find(needle) != std::string::npos;
}

elf::ElfFile patch_fixture() {
    return elf::ElfFile::open(HP_FIXTURE_PATCH);
}

// A resolver that answers every name with a distinct fixed address and records the calls.
struct StubResolver {
    std::map<std::string, std::uint64_t> answers;
    std::vector<package::Undefined> calls;
    std::uint64_t next = 0x10000000;
    std::uint64_t operator()(const package::Undefined& u) {
        calls.push_back(u);
        auto [it, inserted] = answers.try_emplace(u.name, next);
        if (inserted) next += 0x100;
        return it->second;
    }
};

std::uint64_t slot_in(const Image& img, std::uint64_t vaddr) {
    const std::uint64_t addr = img.base + vaddr;
    for (const Piece& p : img.pieces)
        if (addr >= p.addr && addr + 8 <= p.addr + p.bytes.size())
            return load_le64(p.bytes.data() + (addr - p.addr));
    FAIL("no piece holds " << hex_addr(addr));
    return 0;
}

// The file offset of the first entry of a relocation section, to corrupt a copy of it.
std::uint64_t first_rela_offset(const elf::ElfFile& f, std::string_view section) {
    const elf::Section* s = f.section(section);
    REQUIRE(s != nullptr);
    REQUIRE(s->size >= 24);
    return s->offset;
}

} // namespace

// ---------------------------------------------------------------------------------------
// link()

TEST_CASE("link_lays_out_segments_and_applies_every_relocation") {
    const elf::ElfFile f = patch_fixture();
    const arch::Arch a = *f.arch();
    StubResolver stub;
    const Image img = link(f, a, kBase, std::ref(stub));

    CHECK(img.base == kBase);
    const std::uint64_t page = image_page_size(f);
    CHECK(page >= 4096);
    CHECK(img.size == image_size(f));
    CHECK(img.size % page == 0);
    for (const elf::Segment& s : f.segments())
        if (s.type == elf::PT_LOAD) CHECK(s.vaddr + s.memsz <= img.size);

    // Pieces: page aligned, inside the image, disjoint, flags from p_flags.
    int exec = 0, write = 0;
    for (const Piece& p : img.pieces) {
        CHECK(p.addr % page == 0);
        CHECK(p.bytes.size() % page == 0);
        CHECK(p.addr >= kBase);
        CHECK(p.addr + p.bytes.size() <= kBase + img.size);
        CHECK(!(p.exec && p.write));
        exec += p.exec;
        write += p.write;
    }
    CHECK(exec == 1);
    CHECK(write == 1);
    for (std::size_t i = 1; i < img.pieces.size(); ++i)
        CHECK(img.pieces[i - 1].addr + img.pieces[i - 1].bytes.size() <= img.pieces[i].addr);

    // The text segment's bytes are the file's bytes, untouched (no text relocations).
    for (const elf::Segment& s : f.segments()) {
        if (s.type != elf::PT_LOAD || !(s.flags & elf::PF_X)) continue;
        auto piece = std::find_if(img.pieces.begin(), img.pieces.end(),
                                  [](const Piece& p) { return p.exec; });
        REQUIRE(piece != img.pieces.end());
        const std::uint64_t at = kBase + s.vaddr - piece->addr;
        REQUIRE(at + s.filesz <= piece->bytes.size());
        CHECK(std::equal(piece->bytes.begin() + static_cast<std::ptrdiff_t>(at),
                         piece->bytes.begin() + static_cast<std::ptrdiff_t>(at + s.filesz),
                         f.data().begin() + static_cast<std::ptrdiff_t>(s.offset)));
    }

    // Every slot holds what its relocation says.
    int glob_dat = 0, jump_slot = 0, relative = 0;
    for (const elf::Reloc& r : f.relocations()) {
        const std::uint64_t v = slot_in(img, r.offset);
        switch (arch::classify_reloc(a, r.type)) {
        case arch::RelocKind::Relative:
            CHECK(v == kBase + static_cast<std::uint64_t>(r.addend));
            ++relative;
            break;
        case arch::RelocKind::GlobDat:
        case arch::RelocKind::JumpSlot: {
            REQUIRE(r.symbol != nullptr);
            (arch::classify_reloc(a, r.type) == arch::RelocKind::GlobDat ? glob_dat : jump_slot)++;
            const std::uint64_t addend =
                a == arch::Arch::AArch64 ? static_cast<std::uint64_t>(r.addend) : 0;
            if (r.symbol->defined())
                CHECK(v == kBase + r.symbol->value + addend); // payload symbols bind to the payload
            else
                CHECK(v == stub.answers.at(r.symbol->name) + addend);
            break;
        }
        default:
            break;
        }
    }
    CHECK(glob_dat > 0);
    CHECK(jump_slot > 0);
    CHECK(relative > 0);

    // The resolver saw each undefined symbol once, with its version and weakness.
    std::set<std::string> names;
    for (const auto& u : stub.calls) {
        CHECK(names.insert(u.name).second);
        CHECK(u.provider.empty());
    }
    CHECK(names.count("strlen") == 1);
    CHECK(names.count("calls") == 1);
    CHECK(names.count("scale") == 1);
    for (const auto& u : stub.calls) {
        if (u.name == "strlen") CHECK(!u.version.empty()); // GLIBC_2.2.5 / GLIBC_2.17
        if (u.name == "__gmon_start__") CHECK(u.weak);
        if (u.name == "calls") CHECK(!u.weak);
    }
}

TEST_CASE("link_refuses_an_unknown_relocation_type_naming_it") {
    const elf::ElfFile orig = patch_fixture();
    const arch::Arch a = *orig.arch();
    Bytes data = orig.data();
    const std::uint64_t off = first_rela_offset(orig, ".rela.dyn");
    const std::uint64_t r_offset = load_le64(data.data() + off);
    // r_info: keep the symbol, change the type to 250 (unknown on both architectures).
    const std::uint64_t info = load_le64(data.data() + off + 8);
    store_le64(data.data() + off + 8, (info & ~std::uint64_t{0xffffffff}) | 250);
    const elf::ElfFile f = elf::ElfFile::parse(std::move(data), "patched.so");
    try {
        (void)link(f, a, kBase, [](const package::Undefined&) { return std::uint64_t{0x1000}; });
        FAIL("link accepted relocation type 250");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::Unsupported);
        CHECK(contains(e.what(), "type 250"));
        CHECK(contains(e.what(), hex_addr(r_offset)));
    }
}

TEST_CASE("link_refuses_a_relocation_outside_the_segments") {
    const elf::ElfFile orig = patch_fixture();
    Bytes data = orig.data();
    const std::uint64_t off = first_rela_offset(orig, ".rela.dyn");
    store_le64(data.data() + off, 0x40000000); // r_offset far past every segment
    const elf::ElfFile f = elf::ElfFile::parse(std::move(data), "patched.so");
    try {
        (void)link(f, *f.arch(), kBase,
                   [](const package::Undefined&) { return std::uint64_t{0x1000}; });
        FAIL("link accepted a relocation outside the image");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::BadPackage);
        CHECK(contains(e.what(), "0x40000000"));
    }
}

TEST_CASE("image_layout_refuses_shared_pages_and_odd_alignment") {
    const elf::ElfFile orig = patch_fixture();
    // The program header table of the fixture, to edit PT_LOAD entries in a copy.
    const std::uint64_t phoff = load_le64(orig.data().data() + 32);
    auto edited = [&](auto edit) {
        Bytes data = orig.data();
        for (std::size_t i = 0; i < orig.segments().size(); ++i)
            edit(orig.segments()[i], data.data() + phoff + i * 56);
        return elf::ElfFile::parse(std::move(data), "edited.so");
    };
    auto refusal = [](const elf::ElfFile& f) -> std::string {
        try {
            (void)image_size(f);
        } catch (const Error& e) {
            CHECK(e.code() == ErrorCode::BadPackage);
            return e.what();
        }
        FAIL("image_size accepted the layout");
        return {};
    };
    std::uint64_t exec_vaddr = 0;
    for (const elf::Segment& s : orig.segments())
        if (s.type == elf::PT_LOAD && (s.flags & elf::PF_X)) exec_vaddr = s.vaddr;
    // The writable segment moved onto the text page.
    const elf::ElfFile shared = edited([&](const elf::Segment& s, std::uint8_t* ph) {
        if (s.type == elf::PT_LOAD && (s.flags & elf::PF_W)) store_le64(ph + 16, exec_vaddr + 0x10);
    });
    CHECK(contains(refusal(shared), "share a"));
    // A p_align that is not a power of two.
    const elf::ElfFile odd = edited([&](const elf::Segment& s, std::uint8_t* ph) {
        if (s.type == elf::PT_LOAD) store_le64(ph + 48, 0x3000);
    });
    CHECK(contains(refusal(odd), "p_align"));
}

TEST_CASE("link_rejects_a_misaligned_base_and_propagates_resolver_errors") {
    const elf::ElfFile f = patch_fixture();
    auto ok = [](const package::Undefined&) { return std::uint64_t{0x1000}; };
    CHECK_THROWS_AS((void)link(f, *f.arch(), kBase + 0x10, ok), Error);
    auto refuse = [](const package::Undefined& u) -> std::uint64_t {
        throw Error(ErrorCode::NotEligible, "no " + u.name);
    };
    try {
        (void)link(f, *f.arch(), kBase, refuse);
        FAIL("link ignored the resolver's refusal");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::NotEligible);
    }
}

// ---------------------------------------------------------------------------------------
// find_free_near

namespace {

proc::Mapping map(std::uint64_t start, std::uint64_t end, std::string path = "") {
    proc::Mapping m;
    m.start = start;
    m.end = end;
    m.perms = "r--p";
    m.path = std::move(path);
    return m;
}

bool overlaps_any(const std::vector<proc::Mapping>& maps, std::uint64_t lo, std::uint64_t hi) {
    return std::any_of(maps.begin(), maps.end(),
                       [&](const proc::Mapping& m) { return lo < m.end && m.start < hi; });
}

constexpr std::uint64_t kPage = 0x1000;
constexpr std::uint64_t kMod = 0x500000000000; // module [kMod, kMod + 0x10000)
constexpr std::uint64_t kModEnd = kMod + 0x10000;

// Everything mapped except the hole [lo, hi).
std::vector<proc::Mapping> full_except(std::uint64_t lo, std::uint64_t hi, std::uint64_t top) {
    std::vector<proc::Mapping> maps{map(0x10000, lo), map(hi, top)};
    return maps;
}

} // namespace

TEST_CASE("find_free_near_finds_a_reachable_gap_with_guard_pages") {
    const std::vector<proc::Mapping> maps = {
        map(kMod, kModEnd, "/usr/bin/victim"),
        map(kModEnd + 0x2000, kModEnd + 0x100000, "[heap]"),
        map(0x7f0000000000, 0x7f0000100000, "/usr/lib/libc.so.6"),
    };
    const std::uint64_t size = 0x3000;
    const std::uint64_t addr = find_free_near(maps, arch::Arch::X86_64, kMod, kModEnd, size);
    REQUIRE(addr != 0);
    CHECK(addr % kPage == 0);
    CHECK(!overlaps_any(maps, addr - kPage, addr + size + kPage)); // guard page both sides
    for (std::uint64_t from : {kMod, kModEnd - 1})
        for (std::uint64_t to : {addr, addr + size - 1})
            CHECK(arch::near_reachable(arch::Arch::X86_64, from, to));
    // The closest fit: right below the module, one guard page away.
    CHECK(addr == kMod - kPage - size);

    // Everything else taken: a 0x2000 hole above the module cannot hold a page between two
    // guard pages; a 0x3000 one can, and then that is the answer.
    std::vector<proc::Mapping> tight = {
        map(0x10000, kMod - 0x1000),
        map(kMod, kModEnd, "/usr/bin/victim"),
        map(kModEnd + 0x2000, 0x7ffffffff000),
    };
    CHECK(find_free_near(tight, arch::Arch::X86_64, kMod, kModEnd, 0x1000) == 0);
    tight[2].start = kModEnd + 0x3000;
    CHECK(find_free_near(tight, arch::Arch::X86_64, kMod, kModEnd, 0x1000) == kModEnd + 0x1000);
}

TEST_CASE("find_free_near_x86_64_honours_the_exact_rel32_edges") {
    const arch::Arch a = arch::Arch::X86_64;
    const std::uint64_t size = 0x2000, top = 0x7ffffffff000;
    // Lowest start every site reaches: jmp rel32 at kModEnd - 1 reaches back 2 GiB from its
    // end (kModEnd + 4), so the first page at or above kModEnd + 4 - 2^31.
    const std::uint64_t low = kModEnd + kPage - 0x80000000;
    CHECK(arch::near_reachable(a, kModEnd - 1, low));
    CHECK(!arch::near_reachable(a, kModEnd - 1, low - kPage));
    auto hole_at = [&](std::uint64_t at) {
        auto maps = full_except(at - kPage, at + size + kPage, top);
        maps.push_back(map(kMod, kModEnd));
        return maps;
    };
    // Both guards and the exact reach: with hole [low - page, low + size + page), only low fits.
    {
        auto maps = full_except(low - kPage, low + size + kPage, kMod);
        maps.push_back(map(kMod, top));
        CHECK(find_free_near(maps, a, kMod, kModEnd, size) == low);
    }
    {
        // One page lower is out of reach of the module's last byte.
        auto maps = full_except(low - 2 * kPage, low + size, kMod);
        maps.push_back(map(kMod, top));
        CHECK(find_free_near(maps, a, kMod, kModEnd, size) == 0);
    }
    // Highest: the jmp at kMod reaches up to its end (kMod + 5) + 2^31 - 1, so a page-aligned
    // range may end at kMod + 2^31; one more page puts its last byte out of reach.
    const std::uint64_t high = kMod + 0x80000000 - size;
    CHECK(arch::near_reachable(a, kMod, high + size - 1));
    CHECK(!arch::near_reachable(a, kMod, high + size - 1 + kPage));
    {
        auto maps = hole_at(high);
        CHECK(find_free_near(maps, a, kMod, kModEnd, size) == high);
    }
    {
        auto maps = hole_at(high + kPage);
        CHECK(find_free_near(maps, a, kMod, kModEnd, size) == 0);
    }
}

TEST_CASE("find_free_near_arm64_honours_the_exact_128MiB_edges") {
    const arch::Arch a = arch::Arch::AArch64;
    const std::uint64_t size = 0x2000, top = 0xfffffffff000;
    // b imm26 from the last word kModEnd - 4 reaches back exactly 128 MiB.
    const std::uint64_t low = kModEnd - 0x8000000;
    CHECK(arch::near_reachable(a, kModEnd - 4, low));
    CHECK(!arch::near_reachable(a, kModEnd - 4, low - kPage));
    {
        auto maps = full_except(low - kPage, low + size + kPage, kMod);
        maps.push_back(map(kMod, top));
        CHECK(find_free_near(maps, a, kMod, kModEnd, size) == low);
    }
    {
        auto maps = full_except(low - 2 * kPage, low + size, kMod);
        maps.push_back(map(kMod, top));
        CHECK(find_free_near(maps, a, kMod, kModEnd, size) == 0);
    }
    // Forward: from kMod up to kMod + 128 MiB - 4, so the range may end at kMod + 128 MiB.
    const std::uint64_t high = kMod + 0x8000000 - size;
    CHECK(arch::near_reachable(a, kMod, high + size - 4));
    CHECK(!arch::near_reachable(a, kMod, high + size));
    for (auto [at, want] : {std::pair{high, high}, std::pair{high + kPage, std::uint64_t{0}}}) {
        auto maps = full_except(at - kPage, at + size + kPage, top);
        maps.push_back(map(kMod, kModEnd));
        CHECK(find_free_near(maps, a, kMod, kModEnd, size) == want);
    }
}

TEST_CASE("find_free_near_returns_zero_when_everything_is_full") {
    for (arch::Arch a : {arch::Arch::X86_64, arch::Arch::AArch64}) {
        const std::uint64_t top = a == arch::Arch::X86_64 ? 0x7ffffffff000 : 0xfffffffff000;
        CHECK(find_free_near({map(0, top)}, a, kMod, kModEnd, 0x1000) == 0);
        // Free space exists, but only terabytes away.
        CHECK(find_free_near({map(0x10000, 0x700000000000), map(0x700000000000, 0x7f0000000000)}, a,
                             kMod, kModEnd, 0x1000) == 0);
        CHECK(find_free_near({map(0x10000, kMod + 0x100000000)}, a, 0x20000, 0x30000, 0x1000) == 0);
        // Nothing is ever placed below mmap_min_addr, even in an empty address space.
        const std::uint64_t low = find_free_near({}, a, 0x20000, 0x21000, 0x1000);
        CHECK(low >= 0x10000);
        // Degenerate requests.
        CHECK(find_free_near({}, a, kMod, kMod, 0x1000) == 0);
        CHECK(find_free_near({}, a, kMod, kModEnd, 0) == 0);
    }
}

TEST_CASE("find_free_near_respects_a_larger_alignment") {
    const std::vector<proc::Mapping> maps = {map(kMod, kModEnd)};
    const std::uint64_t addr =
        find_free_near(maps, arch::Arch::AArch64, kMod, kModEnd, 0x20000, 0x10000);
    REQUIRE(addr != 0);
    CHECK(addr % 0x10000 == 0);
    CHECK(!overlaps_any(maps, addr - 0x10000, addr + 0x20000 + 0x10000));
}

// ---------------------------------------------------------------------------------------
// SymbolScope against a real process

namespace {

// The loader victim, started with the symbols to look up; killed and reaped on scope exit.
class Victim {
  public:
    explicit Victim(const std::vector<std::string>& names) {
        start(names);
        try {
            wait_ready();
        } catch (...) {
            stop(); // a failed REQUIRE throws: the destructor would not run
            throw;
        }
    }
    ~Victim() { stop(); }
    Victim(const Victim&) = delete;
    Victim& operator=(const Victim&) = delete;

    pid_t pid() const { return pid_; }
    // What the victim's dlsym/dlvsym returned for `name` (as given on its command line).
    std::uint64_t addr(const std::string& name) const { return addrs_.at(name); }

  private:
    void start(const std::vector<std::string>& names) {
        int in[2], out[2];
        REQUIRE(::pipe(in) == 0);
        REQUIRE(::pipe(out) == 0);
        std::vector<std::string> args{HP_FIXTURE_LOADER_VICTIM};
        args.insert(args.end(), names.begin(), names.end());
        std::vector<char*> argv;
        for (auto& s : args)
            argv.push_back(s.data());
        argv.push_back(nullptr);
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::dup2(in[0], 0);
            ::dup2(out[1], 1);
            ::close(in[0]), ::close(in[1]), ::close(out[0]), ::close(out[1]);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        ::close(in[0]);
        ::close(out[1]);
        stdin_ = in[1];
        stdout_ = out[0];
    }
    void wait_ready() {
        // Synchronise on the ready line: it is printed after the victim's GOT slots are bound.
        std::string line;
        char c;
        while (::read(stdout_, &c, 1) == 1 && c != '\n')
            line += c;
        std::istringstream ss(line);
        std::string word;
        ss >> word;
        REQUIRE_MESSAGE(word == "ready", "victim said: " << line);
        while (ss >> word) {
            const auto eq = word.rfind('=');
            if (eq != std::string::npos)
                addrs_[word.substr(0, eq)] = std::stoull(word.substr(eq + 1), nullptr, 0);
        }
    }
    void stop() {
        if (stdin_ >= 0) ::close(stdin_);
        if (stdout_ >= 0) ::close(stdout_);
        stdin_ = stdout_ = -1;
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }

    pid_t pid_ = -1;
    int stdin_ = -1, stdout_ = -1;
    std::map<std::string, std::uint64_t> addrs_;
};

package::Undefined undef(std::string name, std::string version = "", bool weak = false) {
    return {std::move(name), std::move(version), weak, "process"};
}

std::string error_of(SymbolScope& scope, const package::Undefined& u,
                     const package::Manifest& m = {}) {
    try {
        const std::uint64_t v = scope.resolve(u, m, {});
        FAIL("resolved " << u.name << " to " << hex_addr(v));
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::NotEligible);
        return e.what();
    }
    return {};
}

std::string basename_of(const std::string& p) {
    return p.substr(p.find_last_of('/') + 1);
}

} // namespace

TEST_CASE("symbol_scope_resolves_like_the_process_dynamic_loader") {
    const std::vector<std::string> names = {
        "strlen", "memcpy", "strcmp", "strstr", "printf", "cos", "hp_loader_victim_exported"};
    Victim v(names);
    REQUIRE_MESSAGE(v.addr("hp_loader_victim_exported") != 0,
                    "the loader victim must be linked with ENABLE_EXPORTS (-rdynamic)");
    const proc::Memory mem(v.pid());
    const auto mods = proc::modules(v.pid(), proc::read_maps(v.pid()));
    REQUIRE(!mods.empty());
    SymbolScope scope(mem, mods);

    // Load order from the link_map chain: the executable, then libm before libc (the
    // victim's DT_NEEDED order), and ld.so somewhere after libc.
    CHECK(scope.uses_link_map());
    const auto order = scope.load_order();
    REQUIRE(order.size() >= 4);
    CHECK(order[0]->path == mods[0].path);
    auto pos = [&](std::string_view prefix) {
        for (std::size_t i = 0; i < order.size(); ++i)
            if (basename_of(order[i]->path).rfind(prefix, 0) == 0) return i;
        return order.size();
    };
    CHECK(pos("libm.so") < pos("libc.so"));
    CHECK(pos("libc.so") < order.size());

    // Lookups are lazy: a libc symbol does not parse modules after libc.
    CHECK(scope.parsed_modules() == 0);
    CHECK(scope.resolve(undef("printf"), {}, {}) == v.addr("printf"));
    CHECK(scope.parsed_modules() <= pos("libc.so") + 1);
    CHECK(scope.parsed_modules() < order.size());

    // IFUNCs (strlen, memcpy, strcmp, strstr in libc; cos in libm) give the implementation
    // the process uses, which is what dlsym returns -- never the resolver.
    for (const std::string& n : names) {
        INFO("symbol " << n);
        CHECK(scope.resolve(undef(n), {}, {}) == v.addr(n));
    }
}

TEST_CASE("symbol_scope_resolver_is_not_returned_for_ifuncs") {
    // glibc's strlen, memcpy, strcmp are IFUNCs on x86-64 (ARM64: strlen and memcpy): the
    // answer is an implementation inside libc's .text, the one dlsym gives, never the resolver.
    Victim v({"strlen", "memcpy", "strcmp"});
    const proc::Memory mem(v.pid());
    const auto mods = proc::modules(v.pid(), proc::read_maps(v.pid()));
    const proc::Module* libc = nullptr;
    for (const auto& m : mods)
        if (basename_of(m.path).rfind("libc.so", 0) == 0) libc = &m;
    REQUIRE(libc != nullptr);
    const elf::ElfFile f = proc::open_module(*libc);
    SymbolScope scope(mem, mods);
    int ifuncs = 0;
    for (const char* n : {"strlen", "memcpy", "strcmp"}) {
        INFO("symbol " << n);
        std::uint64_t resolver = 0;
        for (const auto& s : f.dynsym())
            if (s.name == n && s.type == elf::STT_GNU_IFUNC && !s.version_hidden)
                resolver = libc->bias + s.value;
        const std::uint64_t impl = scope.resolve(undef(n), {}, {});
        CHECK(impl == v.addr(n));
        if (resolver == 0) continue; // not an IFUNC in this glibc
        ++ifuncs;
        CHECK(impl != resolver);
        const elf::Section* sec = f.section_at(impl - libc->bias);
        REQUIRE(sec != nullptr);
        CHECK(sec->name == ".text");
    }
    CHECK(ifuncs >= 2);
}

TEST_CASE("symbol_scope_honours_versions") {
    const bool x86 = arch::host() == arch::Arch::X86_64;
    // x86-64 glibc kept the old memcpy (an alias of memmove) as memcpy@GLIBC_2.2.5; the
    // default memcpy@@GLIBC_2.14 is an IFUNC. ARM64 glibc starts at GLIBC_2.17: no old one.
    const std::string base = x86 ? "GLIBC_2.2.5" : "GLIBC_2.17";
    std::vector<std::string> names = {"memcpy", "printf@" + base};
    if (x86) names.insert(names.end(), {"memcpy@GLIBC_2.2.5", "memcpy@GLIBC_2.14"});
    Victim v(names);
    const proc::Memory mem(v.pid());
    SymbolScope scope(mem, proc::modules(v.pid(), proc::read_maps(v.pid())));

    CHECK(scope.resolve(undef("printf", base), {}, {}) == v.addr("printf@" + base));
    if (x86) {
        const std::uint64_t def = scope.resolve(undef("memcpy"), {}, {});
        const std::uint64_t v214 = scope.resolve(undef("memcpy", "GLIBC_2.14"), {}, {});
        const std::uint64_t v225 = scope.resolve(undef("memcpy", "GLIBC_2.2.5"), {}, {});
        CHECK(def == v.addr("memcpy"));
        CHECK(v214 == v.addr("memcpy@GLIBC_2.14"));
        CHECK(v225 == v.addr("memcpy@GLIBC_2.2.5"));
        CHECK(def == v214); // the default version is 2.14
        CHECK(v225 != v214);
    }
    // A version nobody defines is missing, and the message names it.
    const std::string msg = error_of(scope, undef("printf", "GLIBC_9.99"));
    CHECK(contains(msg, "'printf@GLIBC_9.99'"));
}

TEST_CASE("symbol_scope_missing_symbols_and_providers") {
    Victim v({"hp_loader_victim_exported"});
    const proc::Memory mem(v.pid());
    const auto mods = proc::modules(v.pid(), proc::read_maps(v.pid()));
    SymbolScope scope(mem, mods);

    const std::string msg = error_of(scope, undef("hp_no_such_symbol_xyz"));
    CHECK(contains(msg, "'hp_no_such_symbol_xyz'"));
    CHECK(contains(msg, std::to_string(v.pid())));
    CHECK(scope.resolve(undef("hp_no_such_symbol_xyz", "", true), {}, {}) == 0); // weak: null

    // Pack-time provider: target module bias + the manifest's local symbol address.
    package::Manifest m;
    m.targets.resize(1);
    m.targets[0].local_symbols.push_back({"hidden_counter", 0x4010, "object"});
    m.undefined.push_back({"hidden_counter", "", false, "target:0"});
    const std::vector<const proc::Module*> targets = {&mods[0]};
    CHECK(scope.resolve({"hidden_counter", "", false, "target:0"}, m, targets) ==
          mods[0].bias + 0x4010);
    // An empty provider (as link() passes it) is taken from the manifest.
    CHECK(scope.resolve({"hidden_counter", "", false, ""}, m, targets) == mods[0].bias + 0x4010);
    // The target module's own exports come before the global scope.
    CHECK(scope.resolve(undef("hp_loader_victim_exported"), m, targets) ==
          v.addr("hp_loader_victim_exported"));
    // A provider naming a missing target is a bad package.
    try {
        (void)scope.resolve({"x", "", false, "target:3"}, m, targets);
        FAIL("resolved through a missing target");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::BadPackage);
    }
}

TEST_CASE("symbol_scope_refuses_an_ifunc_nobody_has_resolved") {
    // Look for a libc IFUNC with no IRELATIVE slot of its resolver and no GOT slot in any
    // module of the victim: its implementation cannot be told without running the resolver.
    Victim v({});
    const proc::Memory mem(v.pid());
    const auto mods = proc::modules(v.pid(), proc::read_maps(v.pid()));
    std::set<std::uint64_t> irelative;
    std::set<std::string> referenced;
    const proc::Module* libc = nullptr;
    for (const auto& m : mods) {
        const elf::ElfFile f = proc::open_module(m);
        if (basename_of(m.path).rfind("libc.so", 0) == 0) libc = &m;
        for (const auto& r : f.relocations()) {
            const auto k = arch::classify_reloc(*f.arch(), r.type);
            if (k == arch::RelocKind::IRelative && basename_of(m.path).rfind("libc.so", 0) == 0)
                irelative.insert(static_cast<std::uint64_t>(r.addend));
            if (r.symbol != nullptr) referenced.insert(r.symbol->name);
        }
    }
    REQUIRE(libc != nullptr);
    std::string candidate;
    const elf::ElfFile libc_file = proc::open_module(*libc);
    for (const auto& s : libc_file.dynsym())
        if (s.type == elf::STT_GNU_IFUNC && s.exported() && !s.version_hidden &&
            !irelative.count(s.value) && !referenced.count(s.name) && s.name.rfind("__", 0) != 0) {
            candidate = s.name;
            break;
        }
    if (candidate.empty()) {
        MESSAGE("this glibc has no unresolvable IFUNC to test with");
        return;
    }
    SymbolScope scope(mem, mods);
    const std::string msg = error_of(scope, undef(candidate));
    CHECK(contains(msg, "cannot tell which implementation of IFUNC '" + candidate));
}

TEST_CASE("symbol_scope_falls_back_when_the_link_map_is_garbage") {
    // A hostile (or corrupted) process controls r_debug and every link_map node: an
    // unreadable pointer, a cycle, or a bad version must give the fallback order, never a
    // hang or a crash; lookups keep working.
    Victim v({"_r_debug", "hp_loader_victim_scratch", "strlen"});
    const std::uint64_t r_debug = v.addr("_r_debug"), scratch = v.addr("hp_loader_victim_scratch");
    REQUIRE(r_debug != 0);
    REQUIRE_MESSAGE(scratch != 0,
                    "the loader victim must be linked with ENABLE_EXPORTS (-rdynamic)");
    const proc::Memory mem(v.pid(), true);
    const auto mods = proc::modules(v.pid(), proc::read_maps(v.pid()));
    {
        SymbolScope scope(mem, mods);
        REQUIRE(scope.uses_link_map());
    }
    auto expect_fallback = [&](const char* what) {
        INFO(what);
        SymbolScope scope(mem, mods);
        CHECK(!scope.uses_link_map());
        const auto order = scope.load_order();
        REQUIRE(order.size() == mods.size());
        for (std::size_t i = 0; i < mods.size(); ++i)
            CHECK(order[i]->path == mods[i].path);
        CHECK(scope.resolve(undef("strlen"), {}, {}) == v.addr("strlen"));
    };
    Bytes word(8);
    const std::uint64_t real_map = mem.read_u64(r_debug + 8);

    store_le64(word.data(), 0x10); // r_map -> unmapped page
    mem.write(r_debug + 8, word);
    expect_fallback("r_map points at an unmapped page");

    // A node whose l_next points at itself.
    Bytes node(40, 0);
    store_le64(node.data() + 24, scratch); // l_next
    mem.write(scratch, node);
    store_le64(word.data(), scratch);
    mem.write(r_debug + 8, word);
    expect_fallback("a cycle in the link_map chain");

    // A broken back link (l_prev of the second node is not the first).
    Bytes two(80, 0);
    store_le64(two.data() + 24, scratch + 40); // first.l_next = second
    store_le64(two.data() + 40 + 32, 0xdead0); // second.l_prev = garbage
    mem.write(scratch, two);
    expect_fallback("a broken l_prev link");

    // An unknown r_version.
    store_le64(word.data(), real_map);
    mem.write(r_debug + 8, word);
    const Bytes version = mem.read(r_debug, 4);
    mem.write(r_debug, Bytes{0x7f, 0, 0, 0});
    expect_fallback("r_version 127");
    mem.write(r_debug, version);
    SymbolScope again(mem, mods);
    CHECK(again.uses_link_map());
}

TEST_CASE("symbol_scope_hash_lookup_agrees_with_the_full_parse") {
    // Every bindable dynamic symbol of the victim's modules, looked up through the module's
    // hash table (GNU for the libraries; SysV for the victim, which CMake links with
    // --hash-style=sysv to cover that path), gives the address the full parse implies.
    Victim v({});
    const proc::Memory mem(v.pid());
    const auto mods = proc::modules(v.pid(), proc::read_maps(v.pid()));
    SymbolScope scope(mem, mods);
    {
        const elf::ElfFile exe = proc::open_module(mods[0]);
        if (exe.section(".gnu.hash") != nullptr || exe.section(".hash") == nullptr)
            MESSAGE(
                "the loader victim was not linked with --hash-style=sysv: SysV path not covered");
    }
    std::size_t checked = 0, ifuncs = 0, unknown = 0;
    for (const proc::Module& m : mods) {
        const elf::ElfFile f = proc::open_module(m);
        const std::vector<const proc::Module*> target = {&m};
        for (const elf::Symbol& s : f.dynsym()) {
            if (!s.exported() || s.value == 0 || s.type == elf::STT_TLS ||
                s.type == elf::STT_SECTION || s.type == elf::STT_FILE)
                continue;
            INFO(m.path << ": " << s.name << "@" << s.version);
            const std::uint64_t want = s.shndx == elf::SHN_ABS ? s.value : m.bias + s.value;
            if (s.type == elf::STT_GNU_IFUNC) {
                // Never the resolver; or the refusal when nothing in the process says which
                // implementation it uses (an IFUNC this process never called).
                std::uint64_t got = 0;
                try {
                    got = scope.resolve(undef(s.name, s.version), {}, target);
                } catch (const Error& e) {
                    CHECK(contains(e.what(), "cannot tell which implementation"));
                    ++unknown;
                    continue;
                }
                CHECK(got != want);
                CHECK(got != 0);
                ++ifuncs;
                continue;
            }
            CHECK(scope.resolve(undef(s.name, s.version), {}, target) == want);
            ++checked;
        }
    }
    MESSAGE(checked << " symbols agree; " << ifuncs << " IFUNCs resolved, " << unknown
                    << " refused");
    CHECK(checked > 1000);
}

TEST_CASE("symbol_scope_timing_on_the_victim") {
    // Not a benchmark, a guard against pathological regressions (parsing every module, a
    // quadratic scan): resolving a handful of libc symbols in a fresh scope, IFUNCs included.
    Victim v({});
    const proc::Memory mem(v.pid());
    const auto mods = proc::modules(v.pid(), proc::read_maps(v.pid()));
    const auto t0 = std::chrono::steady_clock::now();
    SymbolScope scope(mem, mods);
    for (const char* n : {"strlen", "memcpy", "printf", "malloc", "free"})
        (void)scope.resolve(undef(n), {}, {});
    const auto ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("resolved 5 libc symbols over " << mods.size() << " modules in " << ms << " ms");
    CHECK(ms < 500.0); // generous: a loaded CI machine must not flake; measured ~1-3 ms idle
}
