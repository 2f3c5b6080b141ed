#include "package/container.hpp"

#include "doc/error.hpp"
#include "package/payload.hpp"

#include <cstring>
#include <fmt/format.h>

namespace hp::package {

namespace {

[[noreturn]] void bad(const std::string& what) {
    throw Error(ErrorCode::BadPackage, what);
}

std::size_t align16(std::size_t v) {
    return (v + 15) & ~std::size_t{15};
}

Bytes signed_message(const Sha256& digest) {
    // Sized up front: g++ 12 warns falsely (-Warray-bounds) on a vector grown by insert here.
    Bytes msg(kSignedPrefix.size() + digest.size());
    std::memcpy(msg.data(), kSignedPrefix.data(), kSignedPrefix.size());
    std::memcpy(msg.data() + kSignedPrefix.size(), digest.data(), digest.size());
    return msg;
}

} // namespace

Bytes write_package(const Manifest& m, ByteView payload, const SecretKey* key) {
    std::string manifest = to_json(m).dump();
    Bytes out(kMagic, kMagic + 8);
    append_le32(out, kContainerVersion);
    append_le32(out, 0); // flags: none defined
    append_le64(out, manifest.size());
    append_le64(out, payload.size());
    out.insert(out.end(), manifest.begin(), manifest.end());
    out.resize(align16(out.size()), 0);
    out.insert(out.end(), payload.begin(), payload.end());
    Sha256 digest = sha256(out);
    out.insert(out.end(), digest.begin(), digest.end());
    if (key != nullptr) {
        Bytes sig = ed25519_sign(signed_message(digest), key->secret);
        out.insert(out.end(), kSignatureMagic, kSignatureMagic + 4);
        append_le32(out, kSigAlgEd25519);
        out.insert(out.end(), key->pub.key.begin(), key->pub.key.end());
        out.insert(out.end(), sig.begin(), sig.end());
    }
    return out;
}

Package read_package(ByteView file, const ReadOptions& opts) {
    Package p;
    p.file_size = file.size();
    if (file.size() < kHeaderSize + 32)
        bad(fmt::format("file is {} bytes, shorter than the smallest package ({} bytes)",
                        file.size(), kHeaderSize + 32));
    if (std::memcmp(file.data(), kMagic, 8) != 0)
        bad("not a hotpatch package (magic at offset 0 is not \"HOTPATCH\")");
    std::uint32_t version = load_le32(file.data() + 8);
    if (version != kContainerVersion)
        bad(fmt::format("container version {} at offset 8 is not supported (this tool reads {})",
                        version, kContainerVersion));
    std::uint32_t flags = load_le32(file.data() + 12);
    if (flags != 0) bad(fmt::format("unknown flags {:#x} at offset 12", flags));
    std::uint64_t manifest_size = load_le64(file.data() + 16);
    std::uint64_t payload_size = load_le64(file.data() + 24);
    if (manifest_size == 0 || manifest_size > kMaxManifestSize)
        bad(fmt::format("manifest size {} at offset 16 is out of range (1..{})", manifest_size,
                        kMaxManifestSize));
    if (payload_size == 0 || payload_size > kMaxPayloadSize)
        bad(fmt::format("payload size {} at offset 24 is out of range (1..{})", payload_size,
                        kMaxPayloadSize));
    std::size_t manifest_off = kHeaderSize;
    std::size_t payload_off = align16(manifest_off + manifest_size);
    std::size_t digest_off = payload_off + payload_size;
    if (digest_off + 32 > file.size())
        bad(fmt::format(
            "file is {} bytes but the header at offset 16 promises {} bytes before the signature",
            file.size(), digest_off + 32));
    std::size_t rest = file.size() - (digest_off + 32);
    if (rest != 0 && rest != kSignatureBlockSize)
        bad(fmt::format("{} unexpected bytes after the digest at offset {:#x}", rest,
                        digest_off + 32));
    for (std::size_t i = manifest_off + manifest_size; i < payload_off; ++i)
        if (file[i] != 0) bad(fmt::format("non-zero padding byte at offset {:#x}", i));

    std::memcpy(p.digest.data(), file.data() + digest_off, 32);
    Sha256 actual = sha256(file.first(digest_off));
    if (actual != p.digest && !opts.skip_digest)
        bad(fmt::format(
            "digest mismatch: the sha256 at offset {:#x} does not match the {} bytes before it "
            "(damaged or modified package)",
            digest_off, digest_off));

    if (rest == kSignatureBlockSize) {
        const std::uint8_t* s = file.data() + digest_off + 32;
        std::size_t sig_off = digest_off + 32;
        if (std::memcmp(s, kSignatureMagic, 4) != 0)
            bad(fmt::format("signature block at offset {:#x} has no \"SIG1\" magic", sig_off));
        std::uint32_t alg = load_le32(s + 4);
        if (alg != kSigAlgEd25519)
            bad(fmt::format("signature algorithm {} at offset {:#x} is not supported", alg,
                            sig_off + 4));
        Signature sig;
        sig.public_key.assign(s + 8, s + 40);
        sig.signature.assign(s + 40, s + 104);
        sig.key_id = key_id(sig.public_key);
        if (!ed25519_verify(signed_message(p.digest), sig.signature, sig.public_key))
            bad(fmt::format(
                "invalid signature at offset {:#x} (key id {}): the package was modified or "
                "signed with another key",
                sig_off + 40, sig.key_id));
        p.signature = std::move(sig);
    }

    p.manifest_bytes.assign(file.begin() + manifest_off,
                            file.begin() + manifest_off + manifest_size);
    nlohmann::json mj =
        nlohmann::json::parse(p.manifest_bytes.begin(), p.manifest_bytes.end(), nullptr,
                              /*allow_exceptions=*/false);
    if (mj.is_discarded())
        bad(fmt::format("manifest at offset {:#x} is not valid JSON", manifest_off));
    p.manifest = manifest_from_json(mj);
    p.payload.assign(file.begin() + payload_off, file.begin() + payload_off + payload_size);
    if (p.manifest.payload_size != payload_size)
        bad(fmt::format("manifest: payload.size {} differs from the container's {} (offset 24)",
                        p.manifest.payload_size, payload_size));
    if (sha256_hex(p.payload) != p.manifest.payload_sha256)
        bad(fmt::format("manifest: payload.sha256 does not match the payload at offset {:#x}",
                        payload_off));
    check_payload_against_manifest(p.payload, p.manifest);
    return p;
}

bool is_trusted(const Signature& sig, const std::vector<PublicKey>& trusted) {
    for (const PublicKey& k : trusted)
        if (k.key == sig.public_key) return true;
    return false;
}

} // namespace hp::package
