// hp-inspect: describe and validate a hotpatch package.
#include "common/file.hpp"
#include "doc/document.hpp"
#include "package/describe.hpp"

#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
    hp::doc::Tool tool("inspect");
    CLI::App app{
        "Describe and validate a hotpatch package: manifest, payload, integrity and signature.",
        "hp-inspect"};
    app.set_version_flag("--version", std::string(hp::doc::version()));
    std::string path, keys_dir;
    bool disasm = false;
    app.add_option("PACKAGE", path, "The package file, or - to read it from standard input")
        ->required();
    app.add_flag("--disasm", disasm,
                 "Disassemble each expected site and each replacement function");
    app.add_option("--keys", keys_dir,
                   "Directory of trusted public keys (*.pub; default $HOTPATCH_KEYS, else "
                   "/etc/hotpatch/keys)")
        ->type_name("DIR");
    tool.add_format_option(app);

    auto body = [&]() -> int {
        hp::Bytes file = path == "-" ? hp::read_stdin(std::size_t{512} << 20)
                                     : hp::read_file(path, std::size_t{512} << 20);
        hp::package::Package p;
        try {
            p = hp::package::read_package(file);
        } catch (const hp::Error& e) {
            if (e.code() == hp::ErrorCode::BadPackage || e.code() == hp::ErrorCode::Unsupported)
                throw hp::Error(e.code(),
                                (path == "-" ? std::string("<stdin>") : path) + ": " + e.what());
            throw;
        }
        // Trusted keys matter only for a signed package: a bad key file must not break
        // inspecting unsigned ones.
        std::vector<hp::package::PublicKey> trusted;
        if (p.signature)
            trusted = hp::package::load_trusted_keys(
                keys_dir.empty() ? hp::package::trusted_keys_dir() : keys_dir);
        hp::package::describe(p, path, file, disasm, trusted, tool.doc());
        return 0;
    };
    return tool.run(app, argc, argv, body, hp::package::describe_text);
}
