// sha256 and ed25519 through libsodium: one vetted library for both.
#pragma once

#include "common/bytes.hpp"

#include <array>

namespace hp {

using Sha256 = std::array<std::uint8_t, 32>;
Sha256 sha256(ByteView data);
std::string sha256_hex(ByteView data);

constexpr std::size_t kEd25519PublicKeySize = 32;
constexpr std::size_t kEd25519SecretKeySize = 64;
constexpr std::size_t kEd25519SignatureSize = 64;

struct KeyPair {
    Bytes public_key; // 32 bytes
    Bytes secret_key; // 64 bytes (libsodium's seed || public key form)
};
KeyPair ed25519_generate();
Bytes ed25519_sign(ByteView message, ByteView secret_key);
bool ed25519_verify(ByteView message, ByteView signature, ByteView public_key);

} // namespace hp
