// A member of a JSON document read from outside (a package manifest, an upstream document on
// standard input), walked with its path so that every error names the field:
// "manifest: targets[0].functions[1].site.expected: not lowercase hex bytes".
// Every check either returns a validated value or throws hp::Error; never a nlohmann
// exception, never a silently converted number.
#pragma once

#include "common/bytes.hpp"
#include "doc/error.hpp"

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace hp::doc {

// How the errors about one kind of document read. The wording differs between the kinds
// and each kind keeps its own, so it is given here rather than chosen by Field.
struct FieldErrors {
    ErrorCode code;           // of every error
    std::string_view prefix;  // "<prefix>: <path>: <what>"; at the root "<prefix>: <what>"
    bool root_path;           // at the root too "<prefix>: <path>: <what>", so "<prefix>: : <what>"
    std::string_view missing; // an absent member: "<missing> \"key\""
    std::string_view unit;    // a string too long: "longer than N <unit>"
    std::string_view address; // not an address: "not an address (<address>)"
    std::size_t max_string;   // the limit of str() when none is given
    std::size_t max_address;  // the limit of the string addr() reads
};

class Field {
  public:
    // `errors` must outlive the Field and every Field taken from it.
    Field(const FieldErrors& errors, const nlohmann::json& j, std::string path)
        : errors_(errors), j_(j), path_(std::move(path)) {}

    [[noreturn]] void bad(const std::string& what) const;

    // Whether this is an object with the member `key`.
    bool has(const char* key) const { return j_.is_object() && j_.contains(key); }
    // The member `key` of an object, which must be there.
    Field at(const char* key) const;
    // Element i of an array whose size array_size() has checked.
    Field at(std::size_t i) const;
    // The size of an array of at most `limit` entries.
    std::size_t array_size(std::size_t limit) const;

    std::string str() const { return str(errors_.max_string); }
    std::string str(std::size_t limit) const;
    bool boolean() const;
    // An integer in [min, max]. nlohmann's get<int>() would cast a float or an unsigned
    // value out of range without a word; the type and the range are checked first here.
    std::int64_t integer(std::int64_t min, std::int64_t max) const;
    // Any non-negative integer that fits 64 bits.
    std::uint64_t uint64() const;
    // A non-negative integer of at most `max`.
    std::uint64_t uint(std::uint64_t max) const;
    // A process ID: 1 to INT_MAX.
    int pid() const;
    // "0x..." of at most 64 bits.
    std::uint64_t addr() const;
    // 1 to max_bytes bytes in hex, of either case.
    Bytes hex(std::size_t max_bytes) const;
    // At most max_bytes bytes (maybe none) in hex as to_hex() spells them: lowercase.
    Bytes canonical_hex(std::size_t max_bytes) const;
    // 64 lowercase hex digits.
    std::string sha256() const;

  private:
    const FieldErrors& errors_;
    const nlohmann::json& j_;
    std::string path_;
};

} // namespace hp::doc
