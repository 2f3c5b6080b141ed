// .eh_frame walking, only as far as needed to learn which address ranges the FDEs cover:
// a stripped binary still carries them, and they give a function's size when no symbol
// does. CFA programs are not interpreted.
#include "elf/elf_file.hpp"

#include <map>

namespace hp::elf {

namespace {

class Reader {
  public:
    Reader(ByteView d, std::uint64_t pos) : d_(d), pos_(pos) {}
    bool ok() const { return ok_; }
    std::uint64_t pos() const { return pos_; }
    void seek(std::uint64_t p) { pos_ = p; }

    std::uint64_t fixed(unsigned n) {
        if (!ok_ || pos_ > d_.size() || d_.size() - pos_ < n) return fail();
        std::uint64_t v = 0;
        for (unsigned i = 0; i < n; ++i)
            v |= std::uint64_t{d_[pos_ + i]} << (8 * i);
        pos_ += n;
        return v;
    }
    std::uint64_t uleb() {
        std::uint64_t v = 0;
        for (unsigned shift = 0; shift < 64; shift += 7) {
            std::uint64_t b = fixed(1);
            if (!ok_) return 0;
            v |= (b & 0x7f) << shift;
            if (!(b & 0x80)) return v;
        }
        return fail();
    }
    std::int64_t sleb() {
        std::uint64_t v = 0;
        unsigned shift = 0;
        std::uint64_t b = 0;
        do {
            if (shift >= 64) return static_cast<std::int64_t>(fail());
            b = fixed(1);
            if (!ok_) return 0;
            v |= (b & 0x7f) << shift;
            shift += 7;
        } while (b & 0x80);
        if (shift < 64 && (b & 0x40)) v |= ~std::uint64_t{0} << shift;
        return static_cast<std::int64_t>(v);
    }
    std::string cstr() {
        std::string s;
        while (ok_) {
            auto c = static_cast<char>(fixed(1));
            if (!ok_ || c == 0) break;
            s.push_back(c);
            if (s.size() > 16) fail();
        }
        return s;
    }
    // A DW_EH_PE-encoded pointer; `field_addr` is the virtual address of the field, for
    // pc-relative encodings. Returns nullopt for encodings we do not follow.
    std::optional<std::uint64_t> encoded(std::uint8_t enc, std::uint64_t field_addr) {
        if (enc == 0xff) return std::nullopt; // DW_EH_PE_omit
        std::uint64_t v = 0;
        switch (enc & 0x0f) {
        case 0x00:
            v = fixed(8);
            break; // absptr
        case 0x01:
            v = uleb();
            break; // uleb128
        case 0x02:
            v = fixed(2);
            break; // udata2
        case 0x03:
            v = fixed(4);
            break; // udata4
        case 0x04:
            v = fixed(8);
            break; // udata8
        case 0x09:
            v = static_cast<std::uint64_t>(sleb());
            break; // sleb128
        case 0x0a:
            v = static_cast<std::uint64_t>(static_cast<std::int16_t>(fixed(2)));
            break;
        case 0x0b:
            v = static_cast<std::uint64_t>(static_cast<std::int32_t>(fixed(4)));
            break;
        case 0x0c:
            v = fixed(8);
            break;
        default:
            fail();
            return std::nullopt;
        }
        switch (enc & 0x70) {
        case 0x00:
            break;
        case 0x10:
            v += field_addr;
            break; // pcrel
        default:
            return std::nullopt; // datarel/textrel/funcrel: not used in .eh_frame FDEs here
        }
        return v;
    }

  private:
    std::uint64_t fail() {
        ok_ = false;
        return 0;
    }
    ByteView d_;
    std::uint64_t pos_;
    bool ok_ = true;
};

struct Cie {
    std::uint8_t fde_encoding = 0; // absptr unless 'R' says otherwise
    bool has_z = false;
};

} // namespace

std::vector<Range> eh_frame_ranges(const ElfFile& f) {
    std::vector<Range> out;
    const Section* s = f.section(".eh_frame");
    if (s == nullptr || s->type == SHT_NOBITS) return out;
    ByteView d = f.section_data(*s);
    std::map<std::uint64_t, Cie> cies;
    std::uint64_t off = 0;
    while (off + 4 <= d.size()) {
        Reader r(d, off);
        std::uint64_t len = r.fixed(4);
        if (len == 0) break; // terminator
        if (len == 0xffffffff) len = r.fixed(8);
        std::uint64_t body = r.pos();
        if (!r.ok() || len > d.size() - body) break;
        std::uint64_t end = body + len;
        std::uint64_t id_pos = r.pos();
        std::uint64_t id = r.fixed(4);
        if (!r.ok()) break;
        if (id == 0) {
            Cie cie;
            std::uint64_t version = r.fixed(1);
            std::string aug = r.cstr();
            if (aug.find("eh") != std::string::npos) r.fixed(8);
            r.uleb(); // code alignment
            r.sleb(); // data alignment
            if (version == 1)
                r.fixed(1);
            else
                r.uleb(); // return address register
            if (!aug.empty() && aug[0] == 'z') {
                cie.has_z = true;
                r.uleb(); // augmentation data length
                for (char c : aug.substr(1)) {
                    if (c == 'R')
                        cie.fde_encoding = static_cast<std::uint8_t>(r.fixed(1));
                    else if (c == 'L')
                        r.fixed(1);
                    else if (c == 'P') {
                        auto penc = static_cast<std::uint8_t>(r.fixed(1));
                        r.encoded(penc & 0x7f, s->addr + r.pos());
                    } else if (c == 'S' || c == 'B' || c == 'G') {
                    } else
                        break; // unknown augmentation: the FDE encoding may still be set
                }
            }
            if (r.ok()) cies[off] = cie;
        } else if (id <= id_pos) {
            auto it = cies.find(id_pos - id);
            if (it != cies.end()) {
                std::uint8_t enc = it->second.fde_encoding;
                auto begin = r.encoded(enc, s->addr + r.pos());
                // The range is a plain length in the same format, never pc-relative.
                auto range = r.encoded(enc & 0x0f, 0);
                if (r.ok() && begin && range && *range > 0 && *begin + *range > *begin)
                    out.push_back({*begin, *begin + *range});
            }
        }
        off = end;
    }
    return out;
}

} // namespace hp::elf
