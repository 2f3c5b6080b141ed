// ed25519 key files for package signing (format in docs/package-format.md).
#pragma once

#include "common/bytes.hpp"

#include <optional>
#include <string>
#include <vector>

namespace hp::package {

struct PublicKey {
    std::string name;
    Bytes key;          // 32 bytes
    std::string key_id; // first 8 bytes of sha256(key), hex
    std::string path;   // where it was read from ("" if not from a file)
};

struct SecretKey {
    std::string name;
    Bytes secret; // 64 bytes
    PublicKey pub;
};

std::string key_id(ByteView public_key);

// Writes NAME.key (mode 0600) and NAME.pub next to `base` (base = directory/NAME); refuses
// to overwrite either. Returns the public key.
PublicKey keygen(const std::string& base, const std::string& name);
SecretKey load_secret_key(const std::string& path);
PublicKey load_public_key(const std::string& path);

// The directory of trusted public keys: $HOTPATCH_KEYS, else /etc/hotpatch/keys.
std::string trusted_keys_dir();
// Every *.pub file in `dir` (a missing directory gives none; a malformed key file is an
// error naming it).
std::vector<PublicKey> load_trusted_keys(const std::string& dir);

} // namespace hp::package
