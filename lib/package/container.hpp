// The .hpk container: header, manifest, payload, digest, optional signature
// (docs/package-format.md gives the exact bytes).
#pragma once

#include "common/crypto.hpp"
#include "package/keys.hpp"
#include "package/manifest.hpp"

#include <optional>

namespace hp::package {

constexpr char kMagic[8] = {'H', 'O', 'T', 'P', 'A', 'T', 'C', 'H'};
constexpr std::uint32_t kContainerVersion = 1;
constexpr std::size_t kHeaderSize = 32;
constexpr std::size_t kMaxManifestSize = std::size_t{16} << 20;
constexpr std::size_t kMaxPayloadSize = std::size_t{256} << 20;
constexpr char kSignatureMagic[4] = {'S', 'I', 'G', '1'};
constexpr std::uint32_t kSigAlgEd25519 = 1;
constexpr std::size_t kSignatureBlockSize = 4 + 4 + 32 + 64;
// What the ed25519 signature signs: this prefix, then the 32-byte digest.
constexpr std::string_view kSignedPrefix = "hotpatch.package.v1";

struct Signature {
    Bytes public_key; // 32 bytes, as carried in the package
    Bytes signature;  // 64 bytes
    std::string key_id;
};

struct Package {
    Manifest manifest;
    Bytes manifest_bytes;               // the manifest JSON exactly as stored
    Bytes payload;                      // the patch ELF shared object
    Sha256 digest{};                    // as stored (checked unless skipped)
    std::optional<Signature> signature; // verified against its own key on read
    std::size_t file_size = 0;
};

struct ReadOptions {
    // TEST ONLY: accept a digest that does not match, so a fuzzer reaches the structure
    // checks behind it. Never set by the tools.
    bool skip_digest = false;
};

// Parses and validates a whole package: header, bounds, digest, signature (against the
// key it carries — trust is a separate decision), manifest, and the payload ELF against
// the manifest. Throws Error(BadPackage) naming the flaw and its file offset.
Package read_package(ByteView file, const ReadOptions& opts = {});

// Serialises a package; signs the digest when `key` is given.
Bytes write_package(const Manifest& m, ByteView payload, const SecretKey* key);

// Trust: the carried key's id is among `trusted`.
bool is_trusted(const Signature& sig, const std::vector<PublicKey>& trusted);

} // namespace hp::package
