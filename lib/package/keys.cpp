#include "package/keys.hpp"

#include "common/crypto.hpp"
#include "common/file.hpp"
#include "doc/error.hpp"

#include <algorithm>
#include <cstdlib>
#include <dirent.h>
#include <fmt/format.h>
#include <map>
#include <sodium.h>
#include <sys/stat.h>

namespace hp::package {

namespace {

constexpr std::string_view kSecretHeader = "hotpatch-secret-key-v1 ed25519";
constexpr std::string_view kPublicHeader = "hotpatch-public-key-v1 ed25519";

bool valid_key_name(std::string_view n) {
    if (n.empty() || n.size() > 64) return false;
    return std::all_of(n.begin(), n.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-' || c == '@';
    });
}

// "header\nname: X\nkey-id: Y\nfield: HEX\n" -> map; the header line must match.
std::map<std::string, std::string> parse_key_file(const std::string& path,
                                                  std::string_view header) {
    Bytes raw = read_file(path, 4096);
    std::string text(raw.begin(), raw.end());
    std::map<std::string, std::string> out;
    std::size_t pos = 0;
    bool first = true;
    while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        pos = nl == std::string::npos ? text.size() : nl + 1;
        if (first) {
            if (line != header)
                throw Error(ErrorCode::BadInput,
                            fmt::format("{}: not a hotpatch key file (first line is not \"{}\")",
                                        path, header));
            first = false;
            continue;
        }
        if (line.empty()) continue;
        auto colon = line.find(": ");
        if (colon == std::string::npos)
            throw Error(ErrorCode::BadInput, fmt::format("{}: malformed line \"{}\"", path, line));
        out[line.substr(0, colon)] = line.substr(colon + 2);
    }
    if (first) throw Error(ErrorCode::BadInput, fmt::format("{}: empty key file", path));
    return out;
}

Bytes hex_field(const std::map<std::string, std::string>& m, const std::string& key,
                std::size_t size, const std::string& path) {
    auto it = m.find(key);
    std::optional<Bytes> b;
    if (it != m.end()) b = from_hex(it->second);
    if (!b || b->size() != size)
        throw Error(ErrorCode::BadInput, fmt::format("{}: missing or malformed \"{}\"", path, key));
    return *b;
}

void write_new_file(const std::string& path, const std::string& text, unsigned mode) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0)
        throw Error(ErrorCode::Usage,
                    fmt::format("{}: already exists; not overwriting a key", path));
    write_file_atomic(
        path, ByteView(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()), mode);
}

} // namespace

std::string key_id(ByteView public_key) {
    Sha256 h = sha256(public_key);
    return to_hex(ByteView(h.data(), 8));
}

PublicKey keygen(const std::string& base, const std::string& name) {
    if (!valid_key_name(name))
        throw Error(
            ErrorCode::Usage,
            fmt::format("key name \"{}\" must be 1-64 characters of [A-Za-z0-9._@-]", name));
    for (const char* ext : {".key", ".pub"}) {
        struct stat st {};
        if (::stat((base + ext).c_str(), &st) == 0)
            throw Error(ErrorCode::Usage,
                        fmt::format("{}{}: already exists; not overwriting a key", base, ext));
    }
    KeyPair kp = ed25519_generate();
    PublicKey pub{name, kp.public_key, key_id(kp.public_key), base + ".pub"};
    std::string pub_text = fmt::format("{}\nname: {}\nkey-id: {}\npublic: {}\n", kPublicHeader,
                                       name, pub.key_id, to_hex(kp.public_key));
    std::string sec_text =
        fmt::format("{}\nname: {}\nkey-id: {}\npublic: {}\nsecret: {}\n", kSecretHeader, name,
                    pub.key_id, to_hex(kp.public_key), to_hex(kp.secret_key));
    write_new_file(base + ".key", sec_text, 0600);
    sodium_memzero(sec_text.data(), sec_text.size());
    sodium_memzero(kp.secret_key.data(), kp.secret_key.size());
    write_new_file(base + ".pub", pub_text, 0644);
    return pub;
}

SecretKey load_secret_key(const std::string& path) {
    auto m = parse_key_file(path, kSecretHeader);
    SecretKey k;
    k.name = m["name"];
    k.secret = hex_field(m, "secret", kEd25519SecretKeySize, path);
    k.pub.key = hex_field(m, "public", kEd25519PublicKeySize, path);
    // libsodium's secret key ends with the public key: a mismatch means a damaged file.
    if (!std::equal(k.pub.key.begin(), k.pub.key.end(), k.secret.begin() + 32))
        throw Error(ErrorCode::BadInput,
                    fmt::format("{}: public and secret key do not belong together", path));
    k.pub.name = k.name;
    k.pub.key_id = key_id(k.pub.key);
    k.pub.path = path;
    return k;
}

PublicKey load_public_key(const std::string& path) {
    auto m = parse_key_file(path, kPublicHeader);
    PublicKey k;
    k.name = m["name"];
    k.key = hex_field(m, "public", kEd25519PublicKeySize, path);
    k.key_id = key_id(k.key);
    k.path = path;
    if (m.count("key-id") && m["key-id"] != k.key_id)
        throw Error(ErrorCode::BadInput, fmt::format("{}: key-id does not match the key", path));
    return k;
}

std::string trusted_keys_dir() {
    const char* env = std::getenv("HOTPATCH_KEYS");
    return env != nullptr && *env != 0 ? env : "/etc/hotpatch/keys";
}

std::vector<PublicKey> load_trusted_keys(const std::string& dir) {
    std::vector<PublicKey> out;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return out;
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n.size() > 4 && n.ends_with(".pub")) names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names)
        out.push_back(load_public_key(dir + "/" + n));
    return out;
}

} // namespace hp::package
