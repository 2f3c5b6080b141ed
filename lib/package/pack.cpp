#include "package/pack.hpp"

#include "common/crypto.hpp"
#include "common/file.hpp"
#include "doc/document.hpp"
#include "elf/elf_file.hpp"
#include "package/payload.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <map>
#include <memory>
#include <pwd.h>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace hp::package {

using namespace hp::elf;

namespace {

[[noreturn]] void fail(ErrorCode code, const std::string& msg) {
    throw Error(code, msg);
}

// Names go into the manifest, a JSON document, which holds only UTF-8; ELF names are
// arbitrary bytes. `what` says whose name it is, naming the file.
void require_utf8(const std::string& name, const std::string& what) {
    if (!valid_utf8(name))
        fail(ErrorCode::Unsupported,
             printable(fmt::format(
                 "{} '{}' is not valid UTF-8, which the manifest (JSON) cannot hold", what, name)));
}

// " (wanted for --replace a, b)": a refusal of a whole target names the functions too.
std::string wanted_for(const TargetRequest& tr) {
    std::string list;
    for (const ReplaceRequest& rr : tr.replaces)
        list += (list.empty() ? "" : ", ") + rr.old_spec;
    return list.empty() ? "" : fmt::format(" (wanted for --replace {})", list);
}

std::string base_name(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

const char* type_name(std::uint8_t t) {
    switch (t) {
    case STT_FUNC:
        return "func";
    case STT_OBJECT:
        return "object";
    case STT_GNU_IFUNC:
        return "ifunc";
    case STT_TLS:
        return "tls";
    default:
        return "notype";
    }
}

// "f.isra.0", "f.constprop.3", "f.part.1", "f.cold", "f.constprop.0.isra.0": a compiler
// copy of f that callers may call instead of f itself.
bool is_clone_of(const std::string& name, const std::string& base) {
    if (name.size() <= base.size() + 1 || name.compare(0, base.size(), base) != 0 ||
        name[base.size()] != '.')
        return false;
    std::string rest = name.substr(base.size() + 1);
    std::size_t pos = 0;
    bool any = false;
    while (pos <= rest.size()) {
        std::size_t dot = rest.find('.', pos);
        std::string part =
            rest.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
        bool number = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
        if (part == "isra" || part == "constprop" || part == "part" || part == "cold" ||
            part == "lto_priv")
            any = true;
        else if (!number)
            return false;
        if (dot == std::string::npos) break;
        pos = dot + 1;
    }
    return any;
}

// A target module being packed against: its ELF file, and its separate debug file when a
// name is not in the file itself.
class TargetFile {
  public:
    TargetFile(const std::string& path, const std::vector<std::string>& debug_dirs)
        : path_(path), elf_(ElfFile::open(path)), debug_dirs_(debug_dirs) {}

    const ElfFile& elf() const { return elf_; }
    const std::string& path() const { return path_; }

    // The separate debug file found by build-id, if any (loaded once).
    const ElfFile* debug() {
        if (debug_tried_) return debug_.get();
        debug_tried_ = true;
        const auto& id = elf_.build_id();
        if (!id || id->size() < 4) return nullptr;
        for (const std::string& dir : debug_dirs_) {
            std::string p =
                fmt::format("{}/.build-id/{}/{}.debug", dir, id->substr(0, 2), id->substr(2));
            if (::access(p.c_str(), R_OK) != 0) continue;
            auto f = std::make_unique<ElfFile>(ElfFile::open(p));
            if (f->build_id() != id) continue;
            debug_ = std::move(f);
            break;
        }
        return debug_.get();
    }

    // Symbol tables in lookup order, each with its source name.
    std::vector<std::pair<const std::vector<Symbol>*, const char*>> tables(bool with_debug) {
        std::vector<std::pair<const std::vector<Symbol>*, const char*>> t = {
            {&elf_.dynsym(), "dynsym"}, {&elf_.symtab(), "symtab"}};
        if (with_debug)
            if (const ElfFile* d = debug()) t.push_back({&d->symtab(), "debug"});
        return t;
    }

  private:
    std::string path_;
    ElfFile elf_;
    std::vector<std::string> debug_dirs_;
    std::unique_ptr<ElfFile> debug_;
    bool debug_tried_ = false;
};

struct Resolved {
    std::string name;
    std::uint64_t address = 0, size = 0;
    std::string size_source;
};

Resolved resolve_old(TargetFile& t, const std::string& spec) {
    const std::string& file = t.path();
    if (auto addr = parse_addr(spec)) {
        Resolved r;
        r.address = *addr;
        for (auto [tab, src] : t.tables(true))
            for (const Symbol& s : *tab)
                if (s.defined() && (s.type == STT_FUNC) && s.value == *addr) {
                    if (r.name.empty()) r.name = s.name;
                    if (r.size == 0 && s.size > 0) r.size = s.size, r.size_source = src;
                }
        if (r.size == 0) {
            for (const Range& fde : eh_frame_ranges(t.elf())) {
                if (fde.begin == *addr) {
                    r.size = fde.end - fde.begin;
                    r.size_source = "eh_frame";
                    break;
                }
                if (*addr > fde.begin && *addr < fde.end)
                    fail(ErrorCode::BadInput,
                         fmt::format(
                             "{}: {} is inside the function at {} (.eh_frame), not at its start",
                             file, spec, hex_addr(fde.begin)));
            }
        }
        if (r.size == 0)
            fail(ErrorCode::BadInput,
                 fmt::format("{}: no symbol or .eh_frame entry gives the size of the "
                             "function at {}",
                             file, spec));
        return r;
    }
    for (auto [tab, src] : t.tables(true)) {
        std::map<std::uint64_t, const Symbol*> found;
        const Symbol* other = nullptr;
        for (const Symbol& s : *tab) {
            if (s.name != spec || !s.defined()) continue;
            if (s.type == STT_FUNC)
                found.emplace(s.value, &s);
            else
                other = &s;
        }
        if (found.empty() && other != nullptr) {
            if (other->type == STT_GNU_IFUNC)
                fail(ErrorCode::Unsupported, fmt::format("{}: '{}' is an IFUNC resolver; patch the "
                                                         "implementation it selects instead",
                                                         file, spec));
            fail(ErrorCode::BadInput, fmt::format("{}: '{}' is not a function (it is a {} symbol)",
                                                  file, spec, type_name(other->type)));
        }
        if (found.size() > 1) {
            std::string where;
            for (auto& [a, s] : found)
                where += (where.empty() ? "" : ", ") + hex_addr(a);
            fail(ErrorCode::BadInput,
                 fmt::format("{}: '{}' is ambiguous: {} functions of that name in {} (at {}); "
                             "name the one to replace by address",
                             file, spec, found.size(), src, where));
        }
        if (found.size() == 1) {
            const Symbol* s = found.begin()->second;
            Resolved r{s->name, s->value, s->size, src};
            if (r.size == 0) {
                for (const Range& fde : eh_frame_ranges(t.elf()))
                    if (fde.begin == r.address)
                        r.size = fde.end - fde.begin, r.size_source = "eh_frame";
                if (r.size == 0)
                    fail(ErrorCode::BadInput,
                         fmt::format("{}: '{}' has no size (symbol size 0 and no .eh_frame entry)",
                                     file, spec));
            }
            return r;
        }
    }
    fail(ErrorCode::BadInput,
         fmt::format("{}: no function '{}' (looked in .dynsym, .symtab{})", file, spec,
                     t.debug() ? " and the debug file" : " and found no debug file by build-id"));
}

// Bytes of the function plus whatever may be padding after it, up to the next function
// or the end of the section, at most 64 bytes more.
Bytes function_code(TargetFile& t, const Resolved& r, const std::string& label) {
    const ElfFile& e = t.elf();
    bool exec = false;
    for (const Segment& s : e.segments())
        if (s.type == PT_LOAD && (s.flags & PF_X) && r.address >= s.vaddr &&
            r.address - s.vaddr < s.filesz)
            exec = true;
    auto body = e.read_vaddr(r.address, r.size);
    if (!exec || !body)
        fail(ErrorCode::BadInput,
             fmt::format("{}: {} at {} (size {}) is not in an executable segment of the file",
                         t.path(), label, hex_addr(r.address), r.size));
    std::uint64_t end = r.address + r.size, limit = end + 64;
    if (const Section* s = e.section_at(r.address)) limit = std::min(limit, s->addr + s->size);
    for (auto [tab, src] : t.tables(false))
        for (const Symbol& s : *tab)
            if (s.defined() && s.type == STT_FUNC && s.value >= end && s.value < limit)
                limit = s.value;
    for (const Range& fde : eh_frame_ranges(e))
        if (fde.begin >= end && fde.begin < limit) limit = fde.begin;
    Bytes code(body->begin(), body->end());
    if (limit > end)
        if (auto tail = e.read_vaddr(end, limit - end))
            code.insert(code.end(), tail->begin(), tail->end());
    return code;
}

bool exports(const ElfFile& e, const std::string& name) {
    for (const Symbol& s : e.dynsym())
        if (s.name == name && s.exported()) return true;
    return false;
}

} // namespace

PackResult pack(const PackRequest& req, const std::function<void(const std::string&)>& warn) {
    auto warning = [&](const std::string& msg) {
        if (req.strict) fail(ErrorCode::Unsupported, msg + " (refused: --strict)");
        warn(msg);
    };
    if (req.targets.empty()) fail(ErrorCode::Usage, "no --target given");
    if (!valid_patch_id(req.id))
        fail(ErrorCode::Usage,
             fmt::format("patch id \"{}\" is not [a-z0-9._-]{{1,64}}; give --id", req.id));

    ElfFile payload = ElfFile::open(req.payload_path);
    auto parch = payload.arch();
    if (!parch)
        fail(ErrorCode::BadInput, fmt::format("{}: ELF machine {} is not supported",
                                              req.payload_path, payload.machine()));
    check_payload(payload, *parch);

    Manifest m;
    m.id = req.id;
    m.description = req.description;
    m.arch = *parch;
    char host[256] = "";
    ::gethostname(host, sizeof host - 1);
    std::string user = std::to_string(::getuid());
    if (const passwd* pw = ::getpwuid(::getuid())) user = pw->pw_name;
    m.creator = printable(fmt::format("hp-pack {} ({}@{})", doc::version(), user, host));
    m.created = doc::now_rfc3339();

    std::vector<std::unique_ptr<TargetFile>> files;
    std::set<std::string> build_ids;
    for (const TargetRequest& tr : req.targets) {
        auto tf = std::make_unique<TargetFile>(tr.path, req.debug_dirs);
        const ElfFile& e = tf->elf();
        if (e.type() != ET_EXEC && e.type() != ET_DYN)
            fail(ErrorCode::BadInput,
                 fmt::format("{}: not an executable or shared library", tr.path));
        auto tarch = e.arch();
        if (!tarch || *tarch != *parch)
            fail(ErrorCode::BadInput, fmt::format("architecture mismatch: {} is {}, but {} is {}{}",
                                                  req.payload_path, arch::name(*parch), tr.path,
                                                  tarch ? std::string(arch::name(*tarch))
                                                        : fmt::format("machine {}", e.machine()),
                                                  wanted_for(tr)));
        if (!e.build_id())
            fail(ErrorCode::BadInput,
                 fmt::format("{}: has no GNU build-id note{}, so a package cannot be bound to "
                             "it (link with -Wl,--build-id)",
                             tr.path, wanted_for(tr)));
        if (!build_ids.insert(*e.build_id()).second)
            fail(ErrorCode::Usage,
                 fmt::format("{}: the same module (build-id {}) is given twice as --target",
                             tr.path, *e.build_id()));
        if (tr.replaces.empty())
            fail(ErrorCode::Usage, fmt::format("--target {} has no --replace after it", tr.path));

        Target t;
        t.module = e.soname().value_or(base_name(tr.path));
        require_utf8(t.module, fmt::format("{}: its module name ({})", tr.path,
                                           e.soname() ? "DT_SONAME" : "the file name"));
        t.build_id = *e.build_id();
        std::set<std::uint64_t> seen;
        for (const ReplaceRequest& rr : tr.replaces) {
            Resolved r = resolve_old(*tf, rr.old_spec);
            require_utf8(r.name, fmt::format("{}: the symbol", tr.path));
            std::string label = r.name.empty() ? hex_addr(r.address) : "'" + r.name + "'";
            if (!seen.insert(r.address).second)
                fail(ErrorCode::Usage, fmt::format("{}: {} is replaced twice", tr.path, label));
            std::string new_name = rr.new_name.empty() ? r.name : rr.new_name;
            if (new_name.empty())
                fail(ErrorCode::Usage,
                     fmt::format("--replace {}: the function has no name; say which payload "
                                 "function replaces it ({}=NEW)",
                                 rr.old_spec, rr.old_spec));
            require_utf8(new_name, fmt::format("{}: the replacement", req.payload_path));
            const Symbol* not_fn = nullptr;
            const Symbol* nf = find_payload_function(payload, new_name, &not_fn);
            if (nf == nullptr && not_fn != nullptr)
                fail(ErrorCode::BadInput,
                     fmt::format("{}: replacement '{}' is not a function (it is a {} symbol)",
                                 req.payload_path, new_name, type_name(not_fn->type)));
            if (nf == nullptr)
                fail(ErrorCode::BadInput,
                     fmt::format("{}: has no function '{}' to replace {} of {}", req.payload_path,
                                 new_name, label, tr.path));

            Bytes code = function_code(*tf, r, label);
            arch::SitePlan plan;
            try {
                plan = arch::plan_site(*parch, code, r.size, r.address);
            } catch (const Error& err) {
                fail(err.code(), fmt::format("{}: {}: {}", tr.path, label, err.what()));
            }
            Function f;
            f.symbol = r.name;
            f.address = r.address;
            f.size = r.size;
            f.size_source = r.size_source;
            f.site.offset = plan.offset;
            f.site.length = plan.near_length;
            f.site.far_length = plan.far_length;
            f.site.landing_pad = plan.landing_pad;
            std::size_t cover = std::max(plan.near_length, plan.far_length);
            f.site.expected.assign(code.begin() + plan.offset, code.begin() + plan.offset + cover);
            f.sha256 = sha256_hex(ByteView(code.data(), r.size));
            f.replacement = new_name;
            f.replacement_address = nf->value;
            t.functions.push_back(std::move(f));

            if (!r.name.empty()) {
                std::set<std::string> clones;
                for (auto [tab, src] : tf->tables(true))
                    for (const Symbol& s : *tab)
                        if (s.defined() && is_clone_of(s.name, r.name)) clones.insert(s.name);
                if (!clones.empty()) {
                    std::string list;
                    for (const auto& c : clones)
                        list += (list.empty() ? "" : ", ") + c;
                    warning(fmt::format("{}: '{}' has compiler clones ({}) that callers may call "
                                        "instead; the patch "
                                        "would not reach them (replace them too, by name)",
                                        tr.path, r.name, list));
                }
            }
        }
        m.targets.push_back(std::move(t));
        files.push_back(std::move(tf));
    }

    // A payload that defines a data object the target also defines would silently use its
    // own, second copy.
    for (const Symbol* obj : payload_data_objects(payload))
        for (auto& tf : files)
            for (auto [tab, src] : tf->tables(true))
                for (const Symbol& s : *tab)
                    if (s.defined() && s.type == STT_OBJECT && s.name == obj->name)
                        fail(ErrorCode::Unsupported,
                             fmt::format(
                                 "{}: defines the data object '{}', which {} also defines (at {}): "
                                 "the patch "
                                 "would use a second copy; declare it 'extern' in the patch",
                                 req.payload_path, obj->name, tf->path(), hex_addr(s.value)));

    // Symbols the payload needs: non-exported ones of a target are resolved now, to module
    // addresses, so applying needs no symbol table.
    for (const PayloadUndefined& u : payload_undefined(payload)) {
        Undefined out{u.name, u.version, u.weak, "process"};
        require_utf8(u.name, fmt::format("{}: the undefined symbol", req.payload_path));
        require_utf8(u.version, fmt::format("{}: the version of the undefined symbol '{}'",
                                            req.payload_path, u.name));
        if (u.type == STT_TLS)
            fail(ErrorCode::Unsupported,
                 fmt::format("{}: needs the thread-local symbol '{}'", req.payload_path, u.name));
        std::vector<std::pair<std::size_t, const Symbol*>> candidates;
        for (std::size_t i = 0; i < files.size(); ++i) {
            if (exports(files[i]->elf(), u.name)) continue;
            std::map<std::uint64_t, const Symbol*> found;
            std::string src_used;
            for (auto [tab, src] : files[i]->tables(true)) {
                for (const Symbol& s : *tab)
                    if (s.name == u.name && s.defined() && s.shndx != SHN_ABS &&
                        (s.type == STT_FUNC || s.type == STT_OBJECT || s.type == STT_NOTYPE ||
                         s.type == STT_TLS))
                        found.emplace(s.value, &s);
                if (!found.empty()) {
                    src_used = src;
                    break;
                }
            }
            if (found.size() > 1) {
                std::string where;
                for (auto& [a, s] : found)
                    where += (where.empty() ? "" : ", ") + hex_addr(a);
                fail(ErrorCode::BadInput, fmt::format("{}: the payload needs '{}', and {} has {} "
                                                      "non-exported symbols of that name in "
                                                      "{} (at {}): ambiguous",
                                                      req.payload_path, u.name, files[i]->path(),
                                                      found.size(), src_used, where));
            }
            if (found.size() == 1) candidates.emplace_back(i, found.begin()->second);
        }
        if (candidates.size() > 1)
            fail(ErrorCode::BadInput,
                 fmt::format("{}: the payload needs '{}', which {} and {} both define without "
                             "exporting: ambiguous",
                             req.payload_path, u.name, files[candidates[0].first]->path(),
                             files[candidates[1].first]->path()));
        if (candidates.empty() && !u.weak && u.version.empty()) {
            // Unversioned (no library the patch was linked against defines it) and neither
            // defined nor imported by any target: likely a static the compiler inlined away.
            bool known = false;
            for (auto& tf : files)
                for (auto [tab, src] : tf->tables(true))
                    for (const Symbol& s : *tab)
                        if (s.name == u.name) known = true;
            if (!known)
                warning(fmt::format(
                    "{}: the payload needs '{}', which no target defines or imports; the process "
                    "must provide it from another library (was a static function inlined?)",
                    req.payload_path, u.name));
        }
        if (candidates.size() == 1) {
            auto [idx, sym] = candidates[0];
            if (sym->type == STT_TLS)
                fail(ErrorCode::Unsupported,
                     fmt::format("{}: the payload needs the thread-local '{}' of {}",
                                 req.payload_path, u.name, files[idx]->path()));
            m.targets[idx].local_symbols.push_back({u.name, sym->value, type_name(sym->type)});
            out.provider = fmt::format("target:{}", idx);
        }
        m.undefined.push_back(std::move(out));
    }

    m.payload_size = payload.data().size();
    m.payload_sha256 = sha256_hex(payload.data());
    PackResult result;
    std::optional<SecretKey> key;
    if (!req.sign_key_path.empty()) {
        key = load_secret_key(req.sign_key_path);
        result.signer = key->pub;
    }
    result.package = write_package(m, payload.data(), key ? &*key : nullptr);
    // Read back what we wrote: hp-pack never emits a package its readers would refuse.
    (void)read_package(result.package);
    result.manifest = std::move(m);
    return result;
}

} // namespace hp::package
