#include "doc/field.hpp"

#include <climits>
#include <fmt/format.h>

namespace hp::doc {

void Field::bad(const std::string& what) const {
    throw Error(errors_.code, path_.empty() && !errors_.root_path
                                  ? fmt::format("{}: {}", errors_.prefix, what)
                                  : fmt::format("{}: {}: {}", errors_.prefix, path_, what));
}

Field Field::at(const char* key) const {
    if (!j_.is_object()) bad("not an object");
    auto it = j_.find(key);
    if (it == j_.end()) bad(fmt::format("{} \"{}\"", errors_.missing, key));
    return Field(errors_, *it, path_.empty() ? key : path_ + "." + key);
}

Field Field::at(std::size_t i) const {
    return Field(errors_, j_[i], fmt::format("{}[{}]", path_, i));
}

std::size_t Field::array_size(std::size_t limit) const {
    if (!j_.is_array()) bad("not an array");
    if (j_.size() > limit) bad(fmt::format("{} entries (limit {})", j_.size(), limit));
    return j_.size();
}

std::string Field::str(std::size_t limit) const {
    if (!j_.is_string()) bad("not a string");
    const auto& s = j_.get_ref<const std::string&>();
    if (s.size() > limit) bad(fmt::format("longer than {} {}", limit, errors_.unit));
    return s;
}

bool Field::boolean() const {
    if (!j_.is_boolean()) bad("not a boolean");
    return j_.get<bool>();
}

std::int64_t Field::integer(std::int64_t min, std::int64_t max) const {
    std::int64_t v = 0;
    if (j_.is_number_unsigned()) {
        auto u = j_.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(max)) bad(fmt::format("{} is out of range", u));
        v = static_cast<std::int64_t>(u);
    } else if (j_.is_number_integer()) {
        v = j_.get<std::int64_t>();
    } else {
        bad("not an integer");
    }
    if (v < min || v > max) bad(fmt::format("{} is out of range", v));
    return v;
}

std::uint64_t Field::uint64() const {
    if (j_.is_number_unsigned()) return j_.get<std::uint64_t>();
    if (!j_.is_number_integer()) bad("not a non-negative integer");
    const auto v = j_.get<std::int64_t>();
    if (v < 0) bad(fmt::format("{} is negative", v));
    return static_cast<std::uint64_t>(v);
}

std::uint64_t Field::uint(std::uint64_t max) const {
    if (!j_.is_number_unsigned() && !(j_.is_number_integer() && j_.get<std::int64_t>() >= 0))
        bad("not a non-negative integer");
    auto v = j_.get<std::uint64_t>();
    if (v > max) bad(fmt::format("{} exceeds the limit {}", v, max));
    return v;
}

int Field::pid() const {
    return static_cast<int>(integer(1, INT_MAX));
}

std::uint64_t Field::addr() const {
    auto a = parse_addr(str(errors_.max_address));
    if (!a) bad(fmt::format("not an address ({})", errors_.address));
    return *a;
}

Bytes Field::hex(std::size_t max_bytes) const {
    std::string s = str();
    auto h = s.size() <= 2 * max_bytes ? from_hex(s) : std::nullopt;
    if (!h || h->empty()) bad(fmt::format("not hex bytes (1..{})", max_bytes));
    return *h;
}

Bytes Field::canonical_hex(std::size_t max_bytes) const {
    std::string s = str(max_bytes * 2);
    auto b = from_hex(s);
    if (!b || to_hex(*b) != s) bad("not lowercase hex bytes");
    return *b;
}

std::string Field::sha256() const {
    std::string s = str(64);
    auto b = from_hex(s);
    if (s.size() != 64 || !b || to_hex(*b) != s) bad("not a sha256 (64 lowercase hex digits)");
    return s;
}

} // namespace hp::doc
