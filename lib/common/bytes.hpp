// Byte buffers and their hex spelling (lowercase, as every document prints bytes).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hp {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

std::string to_hex(ByteView bytes);
// nullopt on odd length or a non-hex character.
std::optional<Bytes> from_hex(std::string_view hex);
// "0x401136"
std::string hex_addr(std::uint64_t addr);
// Accepts "0x..." (or bare hex digits when allow_bare); nullopt otherwise.
std::optional<std::uint64_t> parse_addr(std::string_view text, bool allow_bare = false);

// Little-endian loads and stores on possibly unaligned bytes. The loads are inline: the
// stack check of a switch makes one per stack word of every thread (docs/performance.md).
inline std::uint16_t load_le16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>(p[0] | p[1] << 8);
}
inline std::uint32_t load_le32(const std::uint8_t* p) {
    return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
           static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}
inline std::uint64_t load_le64(const std::uint8_t* p) {
    return static_cast<std::uint64_t>(load_le32(p)) | static_cast<std::uint64_t>(load_le32(p + 4))
                                                          << 32;
}
void store_le32(std::uint8_t* p, std::uint32_t v);
void store_le64(std::uint8_t* p, std::uint64_t v);
void append_le32(Bytes& out, std::uint32_t v);
void append_le64(Bytes& out, std::uint64_t v);

// Length of the well-formed UTF-8 sequence starting at s[i] (RFC 3629: no overlong forms,
// no surrogates, nothing above U+10FFFF; ASCII controls included), 0 if there is none.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i);
// A JSON document can hold only valid UTF-8 (nlohmann::json refuses to serialise the rest).
bool valid_utf8(std::string_view s);

} // namespace hp
