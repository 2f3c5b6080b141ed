// hp-pack: build a patch package from a compiled patch .so and the target binary.
#include "common/bytes.hpp"
#include "common/crypto.hpp"
#include "common/file.hpp"
#include "doc/document.hpp"
#include "package/pack.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

using hp::doc::json;

int main(int argc, char** argv) {
    hp::doc::Tool tool("pack");
    CLI::App app{"Build a hotpatch package (.hpk) from a compiled patch shared object and the "
                 "target binary.\n"
                 "Each --replace applies to the --target before it.",
                 "hp-pack"};
    app.set_version_flag("--version", std::string(hp::doc::version()));
    std::string payload, output, id, description, sign, keygen, key_dir = ".";
    std::vector<std::string> targets, replaces, debug_dirs;
    bool strict = false;
    app.add_option("PATCH.so", payload, "The patch: an ELF shared object built with -shared -fPIC");
    auto* target_opt =
        app.add_option("--target", targets, "A target module (executable or library); repeatable")
            ->type_name("FILE")
            ->allow_extra_args(false);
    auto* replace_opt =
        app.add_option("--replace", replaces,
                       "OLD[=NEW]: replace OLD (symbol or 0xADDR) of the preceding --target by the "
                       "payload's NEW (default: OLD's name); repeatable")
            ->type_name("OLD[=NEW]")
            ->allow_extra_args(false);
    app.add_option("-o,--output", output, "Write the package here")->type_name("OUT.hpk");
    app.add_option("--id", id,
                   "Patch id [a-z0-9._-]{1,64} (default: the output file name without .hpk)");
    app.add_option("--description", description,
                   "Free text stored in the manifest (UTF-8, at most 64 KiB)");
    app.add_option("--sign", sign, "Sign with this secret key file (from --keygen)")
        ->type_name("KEYFILE");
    app.add_flag(
        "--strict", strict,
        "Refuse (unsupported) instead of warn: a replaced function with compiler clones, or a "
        "symbol the payload needs that no target defines or imports");
    app.add_option(
           "--debug-dir", debug_dirs,
           "Look for separate debug files as DIR/.build-id/xx/yyyy.debug (default /usr/lib/debug)")
        ->type_name("DIR")
        ->allow_extra_args(false);
    app.add_option("--keygen", keygen,
                   "Generate an ed25519 key pair NAME.key and NAME.pub, then exit")
        ->type_name("NAME");
    app.add_option("--key-dir", key_dir, "With --keygen: where to write the key files (default .)")
        ->type_name("DIR");
    tool.add_format_option(app);

    auto body = [&]() -> int {
        json& doc = tool.doc();
        if (!keygen.empty()) {
            if (!payload.empty() || !targets.empty())
                throw hp::Error(hp::ErrorCode::Usage, "--keygen takes no patch or --target");
            auto pub = hp::package::keygen(key_dir + "/" + keygen, keygen);
            doc["keygen"] = {{"name", pub.name},
                             {"key_id", pub.key_id},
                             {"public_key_file", key_dir + "/" + keygen + ".pub"},
                             {"secret_key_file", key_dir + "/" + keygen + ".key"}};
            return 0;
        }
        if (payload.empty())
            throw hp::Error(hp::ErrorCode::Usage, "no patch .so given (see --help)");
        if (description.size() > 64 * 1024)
            throw hp::Error(hp::ErrorCode::Usage, "--description is longer than 64 KiB");
        if (!hp::valid_utf8(description))
            throw hp::Error(hp::ErrorCode::Usage, "--description is not valid UTF-8");
        if (output.empty()) throw hp::Error(hp::ErrorCode::Usage, "no output given (-o OUT.hpk)");
        if (targets.empty()) throw hp::Error(hp::ErrorCode::Usage, "no --target given");

        hp::package::PackRequest req;
        req.payload_path = payload;
        req.description = description;
        req.sign_key_path = sign;
        req.strict = strict;
        req.debug_dirs = debug_dirs;
        req.debug_dirs.push_back("/usr/lib/debug");
        // --replace binds to the --target before it: walk the options in command-line order.
        std::size_t ti = 0, ri = 0;
        for (CLI::Option* o : app.parse_order()) {
            if (o == target_opt) {
                req.targets.push_back({targets.at(ti++), {}});
            } else if (o == replace_opt) {
                std::string spec = replaces.at(ri++);
                if (req.targets.empty())
                    throw hp::Error(hp::ErrorCode::Usage,
                                    fmt::format("--replace {} comes before any --target", spec));
                auto eq = spec.find('=');
                hp::package::ReplaceRequest r{spec.substr(0, eq),
                                              eq == std::string::npos ? "" : spec.substr(eq + 1)};
                if (r.old_spec.empty() || (eq != std::string::npos && r.new_name.empty()))
                    throw hp::Error(hp::ErrorCode::Usage,
                                    fmt::format("--replace \"{}\" is not OLD[=NEW]", spec));
                req.targets.back().replaces.push_back(std::move(r));
            }
        }
        req.id = id;
        if (req.id.empty()) {
            std::string base =
                output.substr(output.rfind('/') == std::string::npos ? 0 : output.rfind('/') + 1);
            if (base.size() > 4 && base.ends_with(".hpk")) base.resize(base.size() - 4);
            req.id = base;
        }
        auto result = hp::package::pack(req, [&](const std::string& w) { tool.warn(w); });
        hp::write_file_atomic(output, result.package);
        std::size_t nfun = 0;
        for (const auto& t : result.manifest.targets)
            nfun += t.functions.size();
        doc["output"] = output;
        doc["id"] = result.manifest.id;
        doc["size"] = result.package.size();
        doc["sha256"] = hp::sha256_hex(result.package);
        doc["functions"] = nfun;
        doc["signature"] = result.signer
                               ? json{{"status", "signed"}, {"key_id", result.signer->key_id}}
                               : json{{"status", "unsigned"}};
        doc["manifest"] = hp::package::to_json(result.manifest);
        return 0;
    };
    auto text = [](const json& doc) -> std::string {
        if (doc.contains("keygen"))
            return fmt::format("wrote {} and {} (key id {})\n",
                               doc["keygen"]["secret_key_file"].get<std::string>(),
                               doc["keygen"]["public_key_file"].get<std::string>(),
                               doc["keygen"]["key_id"].get<std::string>());
        std::string out =
            fmt::format("wrote {} ({} bytes): patch '{}', {} function(s), {}\n",
                        doc["output"].get<std::string>(), doc["size"].get<std::size_t>(),
                        doc["id"].get<std::string>(), doc["functions"].get<std::size_t>(),
                        doc["signature"]["status"] == "signed"
                            ? "signed by key " + doc["signature"]["key_id"].get<std::string>()
                            : std::string("unsigned"));
        for (const auto& t : doc["manifest"]["targets"])
            for (const auto& f : t["functions"])
                out += fmt::format(
                    "  {} {} @ {} -> {} (site {} bytes at +{})\n", t["module"].get<std::string>(),
                    f["symbol"].get<std::string>(), f["address"].get<std::string>(),
                    f["replacement"].get<std::string>(), f["site"]["length"].get<unsigned>(),
                    f["site"]["offset"].get<unsigned>());
        return out;
    };
    return tool.run(app, argc, argv, body, text);
}
