// hp-check: can this host patch, this process be patched, this package go into it?
#include "check/checks.hpp"
#include "common/crypto.hpp"
#include "common/file.hpp"
#include "doc/document.hpp"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fmt/format.h>

using hp::doc::json;

int main(int argc, char** argv) {
    hp::doc::Tool tool("check");
    CLI::App app{
        "Check the eligibility of this host, a process (-p) and a package for that process.",
        "hp-check"};
    app.set_version_flag("--version", std::string(hp::doc::version()));
    int pid = 0;
    std::string path, keys_dir;
    bool allow_unsigned = false;
    app.add_option("-p,--pid", pid, "The process to check")->check(CLI::PositiveNumber);
    app.add_option("PACKAGE", path, "A package to check against the process (needs -p)");
    app.add_flag("--allow-unsigned", allow_unsigned,
                 "Accept an unsigned package or one signed by an untrusted key");
    app.add_option(
           "--keys", keys_dir,
           "Trusted public keys directory (default $HOTPATCH_KEYS, else /etc/hotpatch/keys)")
        ->type_name("DIR");
    tool.add_format_option(app);

    auto body = [&]() -> int {
        json& doc = tool.doc();
        if (!path.empty() && pid == 0)
            throw hp::Error(hp::ErrorCode::Usage,
                            "a PACKAGE is checked against a process: give -p PID");
        std::vector<hp::check::Check> checks = hp::check::host_checks();
        if (pid != 0) {
            // The instance before the checks: should the PID be reused while they run, the
            // document names the process that was there first, and hp-apply refuses the new one.
            try {
                auto inst = hp::proc::instance(pid);
                doc["process"] = {{"pid", pid}, {"start_time", inst.start_time}};
            } catch (const hp::Error&) {
                doc["process"] = {{"pid", pid}, {"start_time", nullptr}};
            }
            auto pc = hp::check::process_checks(pid);
            checks.insert(checks.end(), pc.begin(), pc.end());
        }
        if (!path.empty()) {
            hp::Bytes file = hp::read_file(path, std::size_t{512} << 20);
            std::string sha = hp::sha256_hex(file);
            hp::package::Package pkg;
            try {
                pkg = hp::package::read_package(file);
            } catch (const hp::Error& e) {
                throw hp::Error(e.code(), path + ": " + e.what());
            }
            // Absolute, so the document can be applied from another directory.
            char* real = ::realpath(path.c_str(), nullptr);
            std::string abs = real ? real : path;
            std::free(real);
            doc["package"] = {{"path", abs}, {"sha256", sha}, {"id", pkg.manifest.id}};
            auto pk = hp::check::package_checks(pid, pkg, sha, {allow_unsigned, keys_dir}, checks);
            checks.insert(checks.end(), pk.begin(), pk.end());
        }
        json list = json::array();
        bool ok = true;
        for (const auto& c : checks) {
            list.push_back(hp::check::to_json(c));
            if (c.status == "fail") ok = false;
        }
        doc["checks"] = list;
        doc["ok"] = ok;
        if (!ok) {
            std::string first;
            for (const auto& c : checks)
                if (c.status == "fail") {
                    std::fprintf(stderr, "hp-check: %s: %s\n", c.id.c_str(), c.detail.c_str());
                    if (first.empty()) first = c.id + ": " + c.detail;
                }
            doc["error"] = {{"code", "not-eligible"}, {"message", first}};
            return 1;
        }
        return 0;
    };
    auto text = [](const json& doc) {
        std::string out;
        for (const json& c : doc["checks"]) {
            out += fmt::format("{:<5} {:<22} {}\n", c["status"].get<std::string>(),
                               c["id"].get<std::string>(), c["detail"].get<std::string>());
            if (!c["hint"].get<std::string>().empty() && c["status"] != "pass")
                out += fmt::format("      {:<22} hint: {}\n", "", c["hint"].get<std::string>());
        }
        out += doc["ok"].get<bool>() ? "eligible\n" : "NOT eligible\n";
        return out;
    };
    return tool.run(app, argc, argv, body, text);
}
