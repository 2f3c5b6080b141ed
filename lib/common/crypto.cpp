#include "common/crypto.hpp"

#include "doc/error.hpp"

#include <sodium.h>

namespace hp {

static void ensure_sodium() {
    static const bool ready = sodium_init() >= 0;
    if (!ready) throw Error(ErrorCode::Internal, "libsodium failed to initialise");
}

Sha256 sha256(ByteView data) {
    ensure_sodium();
    Sha256 out{};
    crypto_hash_sha256(out.data(), data.data(), data.size());
    return out;
}

std::string sha256_hex(ByteView data) {
    return to_hex(sha256(data));
}

KeyPair ed25519_generate() {
    ensure_sodium();
    KeyPair kp{Bytes(crypto_sign_PUBLICKEYBYTES), Bytes(crypto_sign_SECRETKEYBYTES)};
    crypto_sign_keypair(kp.public_key.data(), kp.secret_key.data());
    return kp;
}

Bytes ed25519_sign(ByteView message, ByteView secret_key) {
    ensure_sodium();
    if (secret_key.size() != crypto_sign_SECRETKEYBYTES)
        throw Error(ErrorCode::BadInput, "ed25519 secret key has the wrong size");
    Bytes sig(crypto_sign_BYTES);
    crypto_sign_detached(sig.data(), nullptr, message.data(), message.size(), secret_key.data());
    return sig;
}

bool ed25519_verify(ByteView message, ByteView signature, ByteView public_key) {
    ensure_sodium();
    if (signature.size() != crypto_sign_BYTES || public_key.size() != crypto_sign_PUBLICKEYBYTES)
        return false;
    return crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                       public_key.data()) == 0;
}

} // namespace hp
